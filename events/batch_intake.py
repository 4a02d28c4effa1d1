"""A whole request's events validated in one call into pydantic-core. Pure: no I/O.

``read_events`` (events.intake) validates item by item: an envelope model, then the payload model of its
type, then a dump to normalised JSON, each a separate call from Python. For a 1000-event batch that is
most of the request's cost. Here one ``TypeAdapter`` over the list does the same work in Rust: each item is
an envelope whose ``data`` is the payload model picked by (type, schema_version), and one more call dumps
every payload to its normalised JSON form (each payload by its own serializer).

``envelopes_from_json`` goes one step further for bodies of plain facts: the same validation straight from
the body's bytes, without ``parse_json`` (why that is exact, and when it declines, is in its docstring;
tests/unit/test_intake_from_bytes.py holds it to ``read_events(parse_json(body))``).

This path only *accepts*. It takes the same parsed body (``parse_json``: exact Decimals, duplicate keys
and NaN refused) and the same field types, and it refuses anything it is not sure the item-by-item path
would accept unchanged: a correction (its replacement is validated once the log is read), an event_id not
already in the canonical lowercase form, any validation error at all. Then the caller runs the item-by-item
path, which alone words the 422 (so every error message stays exactly as it is). Identical drafts for
every accepted body are asserted by tests/unit/test_batch_intake.py.
"""

import re
from datetime import UTC, datetime
from functools import lru_cache
from typing import Annotated, Any, Final, Literal, NotRequired, Union, cast

from pydantic import ConfigDict, Discriminator, Field, GetCoreSchemaHandler, Tag, TypeAdapter, ValidationError
from pydantic import StringConstraints as Constraint
from pydantic_core import CoreSchema, core_schema
from typing_extensions import TypedDict

from events.catalogue import CATALOGUE, EventType
from events.drafts import RFC3339_DATE, DraftEvent
from events.fields import CampaignId, RegionCode
from events.regions import is_structurally_valid

CANONICAL_UUID: Final = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
"""The form ``str(UUID(...))`` writes; an id sent in any other spelling takes the item-by-item path."""


class _OccurredAt:
    """``events.drafts.OccurredAt`` without its two Python calls: the same text check, then the same parser."""

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.chain_schema([core_schema.str_schema(pattern="^" + RFC3339_DATE),
                                         core_schema.datetime_schema(tz_constraint="aware")])


def _version_tag(item: Any) -> str | None:
    return str(item.get("schema_version", 1)) if isinstance(item, dict) else None


def _envelope(event_type: EventType, version: int) -> Any:
    """The TypedDict of one (type, version): the envelope's fields with ``data`` as that version's payload."""
    model = event_type.versions[version]
    fields = {
        "event_id": Annotated[str, Constraint(pattern=CANONICAL_UUID)],
        "type": Literal[event_type.name],
        "schema_version": NotRequired[Annotated[int, Field(strict=True, ge=1)]],
        "campaign": CampaignId,
        "region": RegionCode,
        "occurred_at": _OccurredAt,
        "data": model,
    }
    # The functional form, since the fields depend on the type; ``extra="forbid"`` as on ``Envelope``.
    envelope = cast(Any, TypedDict)(f"{model.__name__}V{version}Envelope", fields)
    envelope.__pydantic_config__ = ConfigDict(extra="forbid")
    return envelope


def _variant(event_type: EventType) -> Any:
    """One type's envelope; a type with several versions picks its version's envelope by schema_version."""
    if len(event_type.versions) == 1:
        return Annotated[_envelope(event_type, *event_type.versions), Tag(event_type.name)]
    by_version = tuple(Annotated[_envelope(event_type, v), Tag(str(v))] for v in event_type.versions)
    return Annotated[Union[by_version], Discriminator(_version_tag), Tag(event_type.name)]  # noqa: UP007


_VARIANTS: Final = tuple(_variant(t) for t in CATALOGUE.values() if t.kind != "correction")
_ITEM: Final[Any] = Annotated[Union[_VARIANTS], Discriminator("type")]  # noqa: UP007
_ITEMS: Final[TypeAdapter[list[dict[str, Any]]]] = TypeAdapter(list[_ITEM])
_ONE: Final[TypeAdapter[dict[str, Any]]] = TypeAdapter(_ITEM)
_BATCH_BODY: Final = cast(Any, TypedDict)("BatchBody", {"events": list[_ITEM]})
_BATCH_BODY.__pydantic_config__ = ConfigDict(extra="forbid")
_BATCH: Final[TypeAdapter[dict[str, list[dict[str, Any]]]]] = TypeAdapter(_BATCH_BODY)
_SPACED_KEY: Final = re.compile(rb'"[ \t\n\r]+:')


def drafts_at_once(items: list[Any], first_index: int = 0) -> list[DraftEvent] | None:
    """The drafts ``read_events`` would return for these items (numbered from ``first_index``), or None when
    they must be validated item by item."""
    try:
        envelopes = _ITEMS.validate_python(items)
    except ValidationError:
        return None
    return _drafts(envelopes, first_index, facts_only=False)


def drafts_from_json(body: bytes, max_batch: int) -> list[DraftEvent] | None:
    """The drafts ``read_events(parse_json(body), max_batch)`` returns, validated straight from the body's
    bytes; None when the body must take that way (which words every refusal). ``envelopes_from_json``, then
    ``fact_drafts`` of all of them."""
    envelopes = envelopes_from_json(body, max_batch)
    return None if envelopes is None else fact_drafts(envelopes)


def envelopes_from_json(body: bytes, max_batch: int) -> list[dict[str, Any]] | None:
    """The body's events validated in one call straight from its bytes (one event, or ``{"events": [...]}``
    of at most ``max_batch``), or None when the body must be parsed by ``parse_json`` and validated the usual way.

    pydantic's JSON parser differs from ``parse_json`` in two ways, and both decline. A number with a fraction
    or an exponent (and NaN, Infinity) becomes a float, which ``parse_json`` would have made a Decimal or
    refused: so only plain facts are taken (``fact_drafts``), every field of which refuses a float (counts are
    strict integers, money refuses floats, the rest are strings). Of two equal keys it keeps the last, which
    ``parse_json`` refuses: so every key the validated body holds is counted, and must be as many as the
    ``":`` in the bytes. A ``":`` inside a string only adds to the bytes' count (a decline), so equal counts
    mean no key was dropped, once no key is written with whitespace before its colon (those decline too).
    """
    try:
        if b'"events"' in body:
            envelopes = _BATCH.validate_json(body)["events"]
            keys = 1
        else:
            envelopes = [_ONE.validate_json(body)]
            keys = 0
    except ValidationError:
        return None
    if not 0 < len(envelopes) <= max_batch:
        return None
    for envelope in envelopes:
        keys += len(envelope) + len(envelope["data"].model_fields_set)
    if body.count(b'":') != keys or _SPACED_KEY.search(body) is not None:
        return None
    return envelopes


def fact_drafts(envelopes: list[dict[str, Any]], first_index: int = 0) -> list[DraftEvent] | None:
    """Drafts of envelopes from ``envelopes_from_json`` (numbered from ``first_index``), or None unless every
    one is a fact that passes what pydantic-core does not check."""
    return _drafts(envelopes, first_index, facts_only=True)


@lru_cache(maxsize=4096)
def _region_is_valid(code: str) -> bool:
    return is_structurally_valid(code)


def _drafts(envelopes: list[dict[str, Any]], first_index: int, *, facts_only: bool) -> list[DraftEvent] | None:
    """Drafts of validated envelopes, or None when a check pydantic-core does not make fails (or, with
    ``facts_only``, an event is not a fact)."""
    drafts: list[DraftEvent] = []
    for index, envelope in enumerate(envelopes, first_index):
        event_type = CATALOGUE[envelope["type"]]
        if facts_only and event_type.kind != "fact":
            return None
        payload = envelope["data"]
        version = envelope.get("schema_version", 1)
        if type(payload) is not event_type.versions.get(version) or not _region_is_valid(envelope["region"]):
            return None
        if event_type.rules and not all(rule.holds(payload.__dict__) for rule in event_type.rules):
            return None
        try:
            occurred_at: datetime = envelope["occurred_at"].astimezone(UTC)
        except OverflowError:
            return None
        # The payload's own serializer: what dumping a list of payloads (serialize_as_any) runs for each.
        data = payload.__pydantic_serializer__.to_python(payload, mode="json", exclude_none=True)
        drafts.append(DraftEvent(index, envelope["event_id"], event_type, version, envelope["campaign"],
                                 envelope["region"], occurred_at, data))
    return drafts
