"""From request bytes to validated drafts: exact JSON parsing and stateless validation.

Pure: no I/O. What needs the log (duplicates, campaign state, correction targets) is
decided later, under the append lock, by ``events.decide``.
"""

import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Annotated, Any, Final
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import ErrorDetails

from events.batch_intake import drafts_at_once
from events.catalogue import CATALOGUE, EventType
from events.drafts import DraftEvent, OccurredAt
from events.errors import BatchTooLarge, ItemError, MalformedRequest, ValidationFailed
from events.fields import CampaignId, RegionCode
from events.regions import is_structurally_valid
from events.rules import check_in_event
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


class Envelope(BaseModel):
    """What a regional system sends around every payload."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: UUID
    type: str
    schema_version: Annotated[int, Field(strict=True, ge=1)] = 1
    campaign: CampaignId
    region: RegionCode
    occurred_at: OccurredAt
    data: dict[str, Any]


_RULE_CODES: Final = frozenset(rule.code for t in CATALOGUE.values() for rule in t.rules)


def item_message(error: ErrorDetails) -> str:
    """An error item's text: a catalogue rule's own (bilingual) message, else the API's wording (``explain``)."""
    return str(error["msg"]) if error["type"] in _RULE_CODES else explain(error)


def _errors_of(exc: ValidationError, index: int, event_id: str | None,
               prefix: tuple[str | int, ...] = ()) -> list[ItemError]:
    return [ItemError(index, event_id, prefix + tuple(e["loc"]), item_message(e), e["type"]) for e in exc.errors()]


def validate_payload(event_type: EventType, version: int, data: dict[str, Any]) -> dict[str, Any]:
    """Validate a payload against its type's model and catalogue rules; return it in normalised JSON form.

    A broken catalogue rule raises a ValidationError whose error type is the rule's code.
    """
    model = event_type.versions[version]
    payload = model.model_validate(data)
    check_in_event(event_type.rules, payload.__dict__, model.__name__)
    return payload.model_dump(mode="json", exclude_none=True)


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
    items = event_items(body, max_batch)
    at_once = drafts_at_once(items)
    return at_once if at_once is not None else drafts_one_by_one(items)


def read_events_stepwise(body: Any, max_batch: int = MAX_BATCH, step: int = 250) -> Iterator[list[DraftEvent]]:
    """``read_events`` a slice of ``step`` items at a time, so a server can do other work between slices.

    Together the slices are exactly ``read_events(body)``: when a slice cannot be validated at once, the items
    from it on are validated one by one (raising the 422 of the whole request, or yielding the rest). The
    slices before it were accepted at once, which only valid items are, so they add no error to that 422.
    """
    items = event_items(body, max_batch)
    for start in range(0, len(items), step):
        part = drafts_at_once(items[start:start + step], start)
        if part is None:
            yield drafts_one_by_one(items[start:], start)
            return
        yield part


def event_items(body: Any, max_batch: int = MAX_BATCH) -> list[Any]:
    """The items of a parsed body (one event, or ``{"events": [...]}``); raise if the body has another shape."""
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
    return items


def drafts_one_by_one(items: list[Any], first_index: int = 0) -> list[DraftEvent]:
    """Validate items (numbered from ``first_index``) one at a time; raise listing every bad item. The
    reference ``drafts_at_once`` keeps to, and the only path that words a 422."""
    drafts: list[DraftEvent] = []
    errors: list[ItemError] = []
    for index, raw in enumerate(items, first_index):
        result = _draft(index, raw)
        if isinstance(result, list):
            errors.extend(result)
        else:
            drafts.append(result)
    if errors:
        raise ValidationFailed(errors)
    return drafts
