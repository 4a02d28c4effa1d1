"""The canonical form of an event and the hash chain over the log.

Canonical bytes are UTF-8 JSON with object keys sorted, no insignificant whitespace,
non-ASCII characters written as themselves, integers in decimal, money as strings with
two decimals and timestamps in UTC as ``YYYY-MM-DDTHH:MM:SS.ffffffZ``. The same bytes
come out of ``json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)``,
so anyone can recompute a hash from an exported event (docs/canonical-form.md).

``hash = sha256(prev_hash ‖ canonical bytes)`` where ``prev_hash`` is the previous event's
32 raw hash bytes, or 32 zero bytes before the first event.
"""

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Final

import orjson

GENESIS_HASH: Final = bytes(32)
CONTENT_FIELDS: Final = ("campaign", "data", "event_id", "occurred_at", "region", "schema_version", "type")
RECORD_FIELDS: Final = (*CONTENT_FIELDS, "position", "recorded_at", "recorded_by", "request_id")


@lru_cache(maxsize=4096)
def format_timestamp(moment: datetime) -> str:
    """A timestamp in the canonical UTC form, microsecond precision.

    Memoised: the writer formats every event's occurred_at twice and its group's one recorded_at once per
    event. The result depends only on the instant, and equal aware datetimes are the same instant.
    """
    if moment.tzinfo is None:
        raise ValueError("canonical timestamps must be timezone-aware")
    # isoformat, not strftime: strftime("%Y") does not pad years before 1000 on every platform.
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def parse_timestamp(text: str) -> datetime:
    """Read a canonical (or any RFC 3339) timestamp back as an aware datetime."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def canonical_bytes(fields: Mapping[str, Any]) -> bytes:
    """Canonical JSON of already-normalised fields (str, int, bool, None, lists and dicts only)."""
    return orjson.dumps(fields, option=orjson.OPT_SORT_KEYS)


def content_hash(content: Mapping[str, Any]) -> bytes:
    """Digest of what the client sent, normalised: two sends with equal meaning hash equal."""
    return hashlib.sha256(canonical_bytes({k: content[k] for k in CONTENT_FIELDS})).digest()


def chain_hash(prev_hash: bytes, record: Mapping[str, Any]) -> bytes:
    """The chain link of a recorded event: sha256(prev_hash ‖ canonical bytes of the record)."""
    body = canonical_bytes({k: record[k] for k in RECORD_FIELDS})
    return hashlib.sha256(prev_hash + body).digest()


@dataclass(frozen=True, slots=True)
class RecordParts:
    """A record's canonical bytes split around what only the append lock decides (position, recorded_at).

    ``before`` runs up to ``"position":``, ``after`` from ``,"recorded_by"`` to the closing brace: the sorted
    keys put position and recorded_at between them, so ``before ‖ position ‖ ,"recorded_at":… ‖ after`` is
    byte for byte ``canonical_bytes`` of the whole record.
    """

    content_hash: bytes
    before: bytes
    after: bytes


def record_parts(content: Mapping[str, Any], recorded_by: str, request_id: str) -> RecordParts:
    """Everything of a record's canonical form that is known before the append lock, built once."""
    content_bytes = canonical_bytes({k: content[k] for k in CONTENT_FIELDS})
    before = canonical_bytes({k: content[k] for k in ("campaign", "data", "event_id", "occurred_at")})
    after = canonical_bytes({"recorded_by": recorded_by, "region": content["region"], "request_id": request_id,
                             "schema_version": content["schema_version"], "type": content["type"]})
    return RecordParts(hashlib.sha256(content_bytes).digest(), before[:-1] + b',"position":', b"," + after[1:])


def recorded_at_bytes(moment: datetime) -> bytes:
    """The ``,"recorded_at":"…"`` fragment of a group's canonical records."""
    return b',"recorded_at":' + orjson.dumps(format_timestamp(moment))


def chain_hash_of_parts(prev_hash: bytes, parts: RecordParts, position: int, recorded_at: bytes) -> bytes:
    """``chain_hash`` from pre-built parts: one concatenation and one sha256 under the append lock."""
    return hashlib.sha256(b"".join((prev_hash, parts.before, str(position).encode(), recorded_at,
                                    parts.after))).digest()
