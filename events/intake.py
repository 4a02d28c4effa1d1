"""From request bytes to validated drafts: exact JSON parsing and stateless validation.

Pure: no I/O. What needs the log (duplicates, campaign state, correction targets) is
decided later, under the append lock, by ``events.decide``.
"""

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Final
from uuid import UUID

from pydantic import AfterValidator, AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from events.catalogue import CATALOGUE, EventType
from events.errors import BatchTooLarge, ItemError, MalformedRequest, ValidationFailed
from events.fields import CampaignId, RegionCode
from events.regions import is_structurally_valid
from events.validation_messages import explain

MAX_BATCH: Final = 1000


def _reject_constant(name: str) -> Any:
    raise MalformedRequest(f"{name} is not valid JSON")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        dup = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise MalformedRequest(f"duplicate key {dup!r} in a JSON object")
    return obj


def parse_json(body: bytes) -> Any:
    """Parse JSON exactly: numbers with a fraction become Decimal, duplicate keys and NaN are refused."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedRequest("the body is not valid UTF-8") from exc
    try:
        return json.loads(text, parse_float=Decimal, parse_constant=_reject_constant,
                          object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as exc:
        raise MalformedRequest(f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from exc
    except RecursionError as exc:
        raise MalformedRequest("JSON nested too deeply") from exc
    except ValueError as exc:  # e.g. an integer literal longer than Python accepts
        raise MalformedRequest(f"malformed JSON: {exc}") from exc


_RFC3339_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ]")


def _require_text_timestamp(value: Any) -> Any:
    # pydantic would also read numbers, and strings of digits, as Unix times.
    if not isinstance(value, str) or not _RFC3339_DATE.match(value):
        raise ValueError("must be an RFC 3339 date and time with its UTC offset, such as 2017-09-08T10:00:00+08:00")
    return value


def _in_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError as exc:  # e.g. 0001-01-01T00:00:00+08:00 is before the first UTC instant
        raise ValueError("is out of range") from exc


class Envelope(BaseModel):
    """What a regional system sends around every payload."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: UUID
    type: str
    schema_version: Annotated[int, Field(strict=True, ge=1)] = 1
    campaign: CampaignId
    region: RegionCode
    occurred_at: Annotated[AwareDatetime, BeforeValidator(_require_text_timestamp), AfterValidator(_in_utc)]
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class DraftEvent:
    """A statelessly valid event; ``data`` is normalised JSON except a correction's replacement."""

    index: int
    event_id: str
    type: EventType
    schema_version: int
    campaign: str
    region: str
    occurred_at: datetime
    data: dict[str, Any]

    @property
    def target(self) -> str | None:
        """The event a correction or retraction refers to."""
        value = self.data.get("corrects") or self.data.get("retracts")
        return str(value) if value is not None else None


def _errors_of(exc: ValidationError, index: int, event_id: str | None,
               prefix: tuple[str | int, ...] = ()) -> list[ItemError]:
    return [ItemError(index, event_id, prefix + tuple(e["loc"]), explain(e)) for e in exc.errors()]


def validate_payload(event_type: EventType, version: int, data: dict[str, Any]) -> dict[str, Any]:
    """Validate a payload against its type's model and return it in normalised JSON form."""
    model = event_type.versions[version]
    return model.model_validate(data).model_dump(mode="json", exclude_none=True)


def _draft(index: int, raw: Any) -> DraftEvent | list[ItemError]:
    event_id = raw.get("event_id") if isinstance(raw, dict) else None
    shown_id = event_id if isinstance(event_id, str) else None
    if not isinstance(raw, dict):
        return [ItemError(index, None, (), "each event must be a JSON object")]
    try:
        env = Envelope.model_validate(raw)
    except ValidationError as exc:
        return _errors_of(exc, index, shown_id)
    errors: list[ItemError] = []
    event_type = CATALOGUE.get(env.type)
    if event_type is None:
        errors.append(ItemError(index, str(env.event_id), ("type",), f"unknown event type {env.type!r}"))
    elif env.schema_version not in event_type.versions:
        errors.append(ItemError(index, str(env.event_id), ("schema_version",),
                                f"{env.type} has no schema version {env.schema_version}"))
    if not is_structurally_valid(env.region):
        errors.append(ItemError(index, str(env.event_id), ("region",),
                                f"{env.region} is not a GB/T 2260 code under a known province"))
    if errors or event_type is None:
        return errors
    try:
        data = validate_payload(event_type, env.schema_version, env.data)
    except ValidationError as exc:
        return _errors_of(exc, index, str(env.event_id), ("data",))
    if event_type.kind == "correction":
        data["replacement"] = env.data["replacement"]  # validated once the original's type is known
    return DraftEvent(index, str(env.event_id), event_type, env.schema_version, env.campaign,
                      env.region, env.occurred_at, data)


def read_events(body: Any, max_batch: int = MAX_BATCH) -> list[DraftEvent]:
    """Validate a parsed body (one event, or ``{"events": [...]}``); raise listing every bad item."""
    if isinstance(body, dict) and "events" in body:
        extra = sorted(set(body) - {"events"})
        if extra:
            raise ValidationFailed([ItemError(None, None, ("body", extra[0]), "unexpected key beside events")])
        items = body["events"]
        if not isinstance(items, list) or not items:
            raise ValidationFailed([ItemError(None, None, ("body", "events"), "events must be a non-empty list")])
        if len(items) > max_batch:
            raise BatchTooLarge(f"{len(items)} events in one request; the limit is {max_batch}")
    elif isinstance(body, dict):
        items = [body]
    else:
        raise MalformedRequest("the body must be a JSON object: one event or {\"events\": [...]}")
    drafts: list[DraftEvent] = []
    errors: list[ItemError] = []
    for index, raw in enumerate(items):
        result = _draft(index, raw)
        if isinstance(result, list):
            errors.extend(result)
        else:
            drafts.append(result)
    if errors:
        raise ValidationFailed(errors)
    return drafts
