"""C2SP signed notes with Ed25519: signing, verifier keys (vkeys) and verification.

A signed note is its text (ending in a newline), a blank line, and signature lines
``— <key name> base64(key id ‖ signature)``. The key id is ``SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key)[:4]``;
a vkey is ``<name>+<hex key id>+base64(0x01 ‖ public key)``. Signing keys are written as Go's
``golang.org/x/mod/sumdb/note`` does: ``PRIVATE+KEY+<name>+<hex key id>+base64(0x01 ‖ 32-byte seed)``.
"""

import base64
import binascii
import hashlib
from dataclasses import dataclass
from typing import Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

ED25519: Final = 0x01
SIGNATURE_PREFIX: Final = "— "
MAX_SIGNATURES: Final = 100


class NoteError(ValueError):
    """A note, key or signature that is malformed or does not verify."""


def _check_name(name: str) -> str:
    if not name or any(c.isspace() or c == "+" for c in name):
        raise NoteError("a key name is non-empty and has no spaces and no '+'")
    return name


def key_id(name: str, public_key: bytes) -> bytes:
    """The 4-byte signed-note key id of an Ed25519 key."""
    return hashlib.sha256(name.encode() + b"\n" + bytes([ED25519]) + public_key).digest()[:4]


def _b64decode(text: str) -> bytes:
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise NoteError("not valid base64") from None
    # Only the canonical spelling: unused low bits before '=' would otherwise let one signature be
    # written several ways (a changed note that still verifies).
    if base64.b64encode(raw).decode() != text:
        raise NoteError("not canonical base64")
    return raw


@dataclass(frozen=True, slots=True)
class Verifier:
    """A trusted Ed25519 signed-note key."""

    name: str
    key_id: bytes
    public_key: bytes

    @classmethod
    def parse(cls, vkey: str) -> "Verifier":
        """Read a vkey ``name+hex id+base64(0x01 ‖ key)``."""
        parts = vkey.strip().split("+", 2)  # base64 may itself hold '+'; names never do
        if len(parts) != 3 or len(parts[1]) != 8:
            raise NoteError("a verifier key is <name>+<8 hex digits>+<base64 key>")
        name = _check_name(parts[0])
        try:
            kid = bytes.fromhex(parts[1])
        except ValueError:
            raise NoteError("the key id is 8 hex digits") from None
        material = _b64decode(parts[2])
        if len(material) != 33 or material[0] != ED25519:
            raise NoteError("only Ed25519 verifier keys (type 0x01, 32 bytes) are supported")
        if key_id(name, material[1:]) != kid:
            raise NoteError("the key id does not match the key name and public key")
        return cls(name, kid, material[1:])

    @property
    def vkey(self) -> str:
        """The text form of this verifier key."""
        return f"{self.name}+{self.key_id.hex()}+{base64.b64encode(bytes([ED25519]) + self.public_key).decode()}"

    def verifies(self, text: bytes, signature: bytes) -> bool:
        """Whether ``signature`` is this key's Ed25519 signature of ``text``."""
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, text)
        except InvalidSignature:
            return False
        return True


class Signer:
    """An Ed25519 signed-note signing key. Its repr never shows the private key."""

    __slots__ = ("_private", "name", "verifier")

    def __init__(self, name: str, seed: bytes) -> None:
        self.name = _check_name(name)
        self._private = Ed25519PrivateKey.from_private_bytes(seed)
        public = self._private.public_key().public_bytes_raw()
        self.verifier = Verifier(name, key_id(name, public), public)

    def __repr__(self) -> str:
        return f"Signer({self.verifier.vkey!r})"

    @classmethod
    def generate(cls, name: str) -> "Signer":
        """A new random key."""
        return cls(name, Ed25519PrivateKey.generate().private_bytes_raw())

    @classmethod
    def parse(cls, text: str) -> "Signer":
        """Read ``PRIVATE+KEY+<name>+<hex id>+base64(0x01 ‖ seed)``."""
        parts = text.strip().split("+", 4)
        if len(parts) != 5 or parts[:2] != ["PRIVATE", "KEY"]:
            raise NoteError("a signing key is PRIVATE+KEY+<name>+<hex key id>+<base64 key>")
        material = _b64decode(parts[4])
        if len(material) != 33 or material[0] != ED25519:
            raise NoteError("only Ed25519 signing keys (type 0x01, 32-byte seed) are supported")
        signer = cls(parts[2], material[1:])
        if signer.verifier.key_id.hex() != parts[3].lower():
            raise NoteError("the key id does not match the key")
        return signer

    def private_text(self) -> str:
        """The signing key in its text form (to store; never to log or serve)."""
        seed = self._private.private_bytes_raw()
        return (f"PRIVATE+KEY+{self.name}+{self.verifier.key_id.hex()}+"
                f"{base64.b64encode(bytes([ED25519]) + seed).decode()}")

    def sign(self, text: str) -> str:
        """The signed note of ``text`` (which must end in a newline) with this key's signature line."""
        if not text.endswith("\n"):
            raise NoteError("note text ends with a newline")
        signature = self.verifier.key_id + self._private.sign(text.encode())
        return f"{text}\n{SIGNATURE_PREFIX}{self.name} {base64.b64encode(signature).decode()}\n"


@dataclass(frozen=True, slots=True)
class Signature:
    """One signature line of a note."""

    name: str
    key_id: bytes
    signature: bytes


def split_note(note: str) -> tuple[str, list[Signature]]:
    """The text and signature lines of a signed note (nothing verified yet)."""
    if any(ord(c) < 0x20 and c != "\n" for c in note):
        raise NoteError("a signed note has no control characters other than newline")
    if not note.endswith("\n"):
        raise NoteError("a signed note ends with a newline")
    text, sep, block = note[:-1].rpartition("\n\n")
    if not sep or not text:
        raise NoteError("a signed note is text, a blank line, then signature lines")
    signatures = []
    for line in block.split("\n"):
        if not line.startswith(SIGNATURE_PREFIX):
            raise NoteError("a signature line starts with an em dash and a space")
        name, space, b64 = line[len(SIGNATURE_PREFIX):].partition(" ")
        if not space:
            raise NoteError("a signature line is: — <key name> <base64 signature>")
        raw = _b64decode(b64)
        if len(raw) < 5:
            raise NoteError("a signature is a 4-byte key id and the signature bytes")
        signatures.append(Signature(_check_name(name), raw[:4], raw[4:]))
    if len(signatures) > MAX_SIGNATURES:
        raise NoteError("too many signatures")
    return text + "\n", signatures


def open_note(note: str, verifiers: list[Verifier]) -> str:
    """The text of ``note`` once a known key's signature verifies; NoteError otherwise.

    Signatures of unknown keys are ignored; a known key whose signature fails rejects the note.
    """
    text, signatures = split_note(note)
    known = {(v.name, v.key_id): v for v in verifiers}
    verified = False
    for sig in signatures:
        verifier = known.get((sig.name, sig.key_id))
        if verifier is None:
            continue
        if not verifier.verifies(text.encode(), sig.signature):
            raise NoteError(f"the signature of {sig.name} ({sig.key_id.hex()}) does not verify")
        verified = True
    if not verified:
        raise NoteError("no signature by a known key")
    return text
