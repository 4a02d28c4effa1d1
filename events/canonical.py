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
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Final, NamedTuple

import orjson

GENESIS_HASH: Final = bytes(32)
CONTENT_FIELDS: Final = ("campaign", "data", "event_id", "occurred_at", "region", "schema_version", "type")
RECORD_FIELDS: Final = (*CONTENT_FIELDS, "position", "recorded_at", "recorded_by", "request_id")


@lru_cache(maxsize=4096)
def format_timestamp(moment: datetime) -> str:
    """A timestamp in the canonical UTC form, microsecond precision.

    Memoised: a group's one recorded_at is formatted once per event when records are exported or folded.
    The result depends only on the instant, and equal aware datetimes are the same instant.
    """
    return utc_text(moment)


def parse_timestamp(text: str) -> datetime:
    """Read a canonical (or any RFC 3339) timestamp back as an aware datetime."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def canonical_bytes(fields: object) -> bytes:
    """Canonical JSON of already-normalised fields (str, int, bool, None, lists and dicts only)."""
    return orjson.dumps(fields, option=orjson.OPT_SORT_KEYS)


def content_hash(content: Mapping[str, Any]) -> bytes:
    """Digest of what the client sent, normalised: two sends with equal meaning hash equal."""
    return hashlib.sha256(canonical_bytes({k: content[k] for k in CONTENT_FIELDS})).digest()


def chain_hash(prev_hash: bytes, record: Mapping[str, Any]) -> bytes:
    """The chain link of a recorded event: sha256(prev_hash ‖ canonical bytes of the record)."""
    body = canonical_bytes({k: record[k] for k in RECORD_FIELDS})
    return hashlib.sha256(prev_hash + body).digest()


class RecordParts(NamedTuple):
    """A record's canonical bytes split around what only the append lock decides (position, recorded_at).

    ``before`` runs up to ``"position":``, ``after`` from ``,"recorded_by"`` to the closing brace: the sorted
    keys put position and recorded_at between them, so ``before ‖ position ‖ ,"recorded_at":… ‖ after`` is
    byte for byte ``canonical_bytes`` of the whole record. ``data`` is the payload's canonical JSON (as
    text), which is also what the log stores. A tuple, not a dataclass: one is built per event.
    """

    content_hash: bytes
    before: bytes
    after: bytes
    data: str


def record_parts(content: Mapping[str, Any], recorded_by: str, request_id: str) -> RecordParts:
    """Everything of a record's canonical form that is known before the append lock, built once."""
    return RecordBuilder(recorded_by, request_id).parts(
        content["campaign"], content["data"], content["event_id"], content["occurred_at"], content["region"],
        content["schema_version"], content["type"])


class RecordBuilder:
    """Builds the ``RecordParts`` of one request's events: what every event shares is serialised once.

    The parts are assembled from pieces instead of serialising a dict per part; every piece is a
    ``canonical_bytes`` of its own value, so the result is the same bytes (tests/unit/test_canonical.py).
    """

    def __init__(self, recorded_by: str, request_id: str) -> None:
        self._recorded_by = _recorded_by_piece(recorded_by)
        self._request_id = b',"request_id":' + canonical_bytes(request_id)
        self._tails: dict[tuple[str, int, str], tuple[bytes, bytes]] = {}

    def _tail(self, region: str, schema_version: int, type_: str) -> tuple[bytes, bytes]:
        # What follows occurred_at in the content, and the record's part after recorded_at: the same for
        # every event of a region, version and type in the request.
        fields, version_and_type = _region_piece(region), _version_and_type_piece(schema_version, type_)
        tail = self._tails[region, schema_version, type_] = (
            fields + version_and_type, b"".join((self._recorded_by, fields, self._request_id, version_and_type)))
        return tail

    def parts(self, campaign: str, data: Mapping[str, Any], event_id: str, occurred_at: str, region: str,
              schema_version: int, type_: str) -> RecordParts:
        """The parts of one event's record (``occurred_at`` already in the canonical form)."""
        content_tail, after = self._tails.get((region, schema_version, type_)) or self._tail(
            region, schema_version, type_)
        data_bytes = orjson.dumps(data, option=orjson.OPT_SORT_KEYS)
        # A string has no keys to sort: orjson's plain output is its canonical form.
        head = b"".join((_campaign_piece(campaign), data_bytes, b',"event_id":', orjson.dumps(event_id),
                         b',"occurred_at":', orjson.dumps(occurred_at)))
        return RecordParts(hashlib.sha256(head + content_tail).digest(), head + b',"position":', after,
                           data_bytes.decode())


# The pieces requests share, serialised once per process (a handful of keys, campaigns, types; the regions
# of a few thousand codes): a single-event request otherwise serialises every one of them again.
@lru_cache(maxsize=256)
def _recorded_by_piece(recorded_by: str) -> bytes:
    return b',"recorded_by":' + canonical_bytes(recorded_by)


@lru_cache(maxsize=256)
def _campaign_piece(campaign: str) -> bytes:
    return b'{"campaign":' + canonical_bytes(campaign) + b',"data":'


@lru_cache(maxsize=8192)
def _region_piece(region: str) -> bytes:
    return b',"region":' + canonical_bytes(region)


@lru_cache(maxsize=256)
def _version_and_type_piece(schema_version: int, type_: str) -> bytes:
    return b"".join((b',"schema_version":', canonical_bytes(schema_version), b',"type":', canonical_bytes(type_),
                     b"}"))


def utc_text(moment: datetime) -> str:
    """``format_timestamp`` without its memo: for instants that rarely repeat (each event's occurred_at)."""
    if moment.tzinfo is None:
        raise ValueError("canonical timestamps must be timezone-aware")
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    # isoformat, not strftime: strftime("%Y") does not pad years before 1000 on every platform. An aware
    # UTC instant reads YYYY-MM-DDTHH:MM:SS[.ffffff]+00:00.
    text = moment.isoformat()
    return text[:19] + ".000000Z" if len(text) == 25 else text[:26] + "Z"


def recorded_at_bytes(moment: datetime) -> bytes:
    """The ``,"recorded_at":"…"`` fragment of a group's canonical records."""
    return b',"recorded_at":' + orjson.dumps(format_timestamp(moment))


def chain_hash_of_parts(prev_hash: bytes, parts: RecordParts, position: int, recorded_at: bytes) -> bytes:
    """``chain_hash`` from pre-built parts: one concatenation and one sha256 under the append lock."""
    return hashlib.sha256(b"".join((prev_hash, parts.before, str(position).encode(), recorded_at,
                                    parts.after))).digest()
