"""A recorded event: what the log holds for each position, and its exported form."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

import orjson

from events.canonical import chain_hash, content_hash, format_timestamp, parse_timestamp


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    """One row of the log. ``hash`` chains it to ``prev_hash``, the hash of position - 1."""

    position: int
    event_id: str
    type: str
    schema_version: int
    campaign: str
    region: str
    occurred_at: datetime
    recorded_at: datetime
    recorded_by: str
    request_id: str
    data: dict[str, Any]
    content_hash: bytes
    prev_hash: bytes
    hash: bytes

    @property
    def target(self) -> str | None:
        """The event a correction or retraction refers to, if any."""
        value = self.data.get("corrects") or self.data.get("retracts")
        return str(value) if value is not None else None

    def canonical_fields(self) -> dict[str, Any]:
        """The fields the chain hash covers, in canonical JSON-ready form."""
        return {
            "campaign": self.campaign,
            "data": self.data,
            "event_id": self.event_id,
            "occurred_at": format_timestamp(self.occurred_at),
            "position": self.position,
            "recorded_at": format_timestamp(self.recorded_at),
            "recorded_by": self.recorded_by,
            "region": self.region,
            "request_id": self.request_id,
            "schema_version": self.schema_version,
            "type": self.type,
        }

    def computed_hash(self) -> bytes:
        """Recompute this event's chain hash from its content and ``prev_hash``."""
        return chain_hash(self.prev_hash, self.canonical_fields())

    def row(self) -> "EventRow":
        """This event as a row of the events table."""
        return EventRow(self.position, self.event_id, self.type, self.schema_version, self.campaign, self.region,
                        self.occurred_at, self.recorded_at, self.recorded_by, self.request_id, self.target,
                        orjson.dumps(self.data).decode(), self.content_hash, self.prev_hash, self.hash)

    def exported(self) -> dict[str, Any]:
        """The export / API form: canonical fields plus hex hashes."""
        out = self.canonical_fields()
        out["prev_hash"] = self.prev_hash.hex()
        out["hash"] = self.hash.hex()
        return out


def from_exported(item: dict[str, Any]) -> RecordedEvent:
    """Read an exported event back; the caller verifies its hash."""
    return RecordedEvent(
        position=int(item["position"]),
        event_id=str(item["event_id"]),
        type=str(item["type"]),
        schema_version=int(item["schema_version"]),
        campaign=str(item["campaign"]),
        region=str(item["region"]),
        occurred_at=parse_timestamp(item["occurred_at"]),
        recorded_at=parse_timestamp(item["recorded_at"]),
        recorded_by=str(item["recorded_by"]),
        request_id=str(item["request_id"]),
        data=item["data"],
        content_hash=content_hash(item),
        prev_hash=bytes.fromhex(item["prev_hash"]),
        hash=bytes.fromhex(item["hash"]),
    )


class EventRow(NamedTuple):
    """One row of the events table, in column order, as the writer appends it (COPY takes it as it is).

    The writer builds one per appended event instead of a ``RecordedEvent``: ``data`` stays the JSON text
    it was hashed as, and no object is made per event beyond the tuple the driver needs anyway.
    """

    position: int
    event_id: str
    type: str
    schema_version: int
    campaign: str
    region: str
    occurred_at: datetime
    recorded_at: datetime
    recorded_by: str
    request_id: str
    target_event_id: str | None
    data: str
    content_hash: bytes
    prev_hash: bytes
    hash: bytes

    def record(self) -> RecordedEvent:
        """The row as a recorded event."""
        return RecordedEvent(self.position, self.event_id, self.type, self.schema_version, self.campaign,
                             self.region, self.occurred_at, self.recorded_at, self.recorded_by, self.request_id,
                             orjson.loads(self.data), self.content_hash, self.prev_hash, self.hash)
