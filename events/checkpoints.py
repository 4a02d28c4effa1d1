"""Checkpoints (C2SP tlog-checkpoint) and offline receipts (C2SP tlog-proof), and their verification.

A checkpoint's note text is ``origin\\nsize\\nbase64(root)\\n``. A receipt is ``c2sp.org/tlog-proof@v1``,
``index N``, the base64 inclusion path (leaf sibling first), a blank line, and the signed checkpoint.
"""

import base64
import re
from dataclasses import dataclass
from typing import Final

from events.merkle import HASH_SIZE, verify_inclusion
from events.notes import NoteError, Verifier, open_note

RECEIPT_HEADER: Final = "c2sp.org/tlog-proof@v1"
_DECIMAL = re.compile(r"0|[1-9][0-9]*")


class ProofError(ValueError):
    """A checkpoint, proof or receipt that is malformed or does not verify."""


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The tree head a checkpoint states."""

    origin: str
    size: int
    root: bytes

    def text(self) -> str:
        """The note text (to be signed)."""
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode()}\n"


def _hash(text: str) -> bytes:
    try:
        raw = base64.b64decode(text, validate=True)
    except ValueError:
        raise ProofError(f"not a base64 hash: {text[:60]!r}") from None
    if base64.b64encode(raw).decode() != text:
        raise ProofError(f"not a canonical base64 hash: {text[:60]!r}")
    if len(raw) != HASH_SIZE:
        raise ProofError("a hash is 32 bytes")
    return raw


def parse_checkpoint_text(text: str) -> Checkpoint:
    """Read the origin, size and root of a checkpoint's (verified) note text."""
    lines = text.split("\n")
    if len(lines) < 4 or lines[-1] != "" or not lines[0] or not _DECIMAL.fullmatch(lines[1]):
        raise ProofError("a checkpoint is an origin line, a decimal tree size and a base64 root hash")
    return Checkpoint(lines[0], int(lines[1]), _hash(lines[2]))


def open_checkpoint(note: str, verifier: Verifier, *, origin: str | None = None) -> Checkpoint:
    """The checkpoint of a signed note once its signature verifies with ``verifier``."""
    try:
        text = open_note(note, [verifier])
    except NoteError as exc:
        raise ProofError(f"checkpoint signature: {exc}") from None
    checkpoint = parse_checkpoint_text(text)
    expected = origin if origin is not None else verifier.name
    if checkpoint.origin != expected:
        raise ProofError(f"the checkpoint is from {checkpoint.origin!r}, not {expected!r}")
    return checkpoint


@dataclass(frozen=True, slots=True)
class Receipt:
    """An offline inclusion proof: leaf index, audit path and the signed checkpoint it leads to."""

    index: int
    path: list[bytes]
    checkpoint: str
    extra: bytes | None = None

    def text(self) -> str:
        """The c2sp.org/tlog-proof@v1 form."""
        lines = [RECEIPT_HEADER]
        if self.extra is not None:
            lines.append(f"extra {base64.b64encode(self.extra).decode()}")
        lines.append(f"index {self.index}")
        lines.extend(base64.b64encode(h).decode() for h in self.path)
        return "\n".join(lines) + "\n\n" + self.checkpoint


def parse_receipt(text: str) -> Receipt:
    """Read a c2sp.org/tlog-proof@v1 receipt."""
    head, sep, checkpoint = text.partition("\n\n")
    lines = head.split("\n")
    if not sep or lines[0] != RECEIPT_HEADER:
        raise ProofError(f"a receipt starts with {RECEIPT_HEADER} and has a blank line before the checkpoint")
    rest = lines[1:]
    extra = None
    if rest and rest[0].startswith("extra "):
        extra = base64.b64decode(rest.pop(0)[6:])
    if not rest or not rest[0].startswith("index ") or not _DECIMAL.fullmatch(rest[0][6:]):
        raise ProofError("a receipt names its leaf: index <decimal>")
    return Receipt(int(rest[0][6:]), [_hash(line) for line in rest[1:]], checkpoint, extra)


def check_inclusion(leaf_hash: bytes, index: int, path: list[bytes], note: str, verifier: Verifier) -> Checkpoint:
    """Verify that ``leaf_hash`` is leaf ``index`` of the signed checkpoint ``note``; ProofError otherwise."""
    checkpoint = open_checkpoint(note, verifier)
    if index >= checkpoint.size:
        raise ProofError(f"leaf {index} is beyond the checkpoint's tree of size {checkpoint.size}")
    if not verify_inclusion(index, checkpoint.size, leaf_hash, path, checkpoint.root):
        raise ProofError(f"the audit path does not lead from leaf {index} to the checkpoint's root")
    return checkpoint
