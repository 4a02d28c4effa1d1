"""Validation errors speak the API's language, in one voice: never pydantic's wording or a raw regex."""

import uuid
from typing import Any

import pytest

from events.errors import ItemError, ValidationFailed
from events.intake import read_events

LIBRARY_WORDING = ("Value error", "Input should", "String should", "pattern", "Field required", "^", "[0-9]",
                   "valid dictionary", "Extra inputs", "type=", "pydantic")


def _event(**changes: Any) -> dict[str, Any]:
    event = {"event_id": str(uuid.uuid4()), "type": "raid_conducted", "schema_version": 1, "campaign": "2017",
             "region": "330102", "occurred_at": "2017-09-08T10:00:00+08:00",
             "data": {"dens_busted": 3, "personnel": 120, "vehicles": 14, "cases": 2,
                      "seized_value_yuan": "152000.50", "category": "liquor"}}
    return event | changes


def _raid(**data: Any) -> dict[str, Any]:
    return _event(data=_event()["data"] | data)


BAD = [
    (_event(event_id="x"), ("event_id",), "must be a UUID such as"),
    (_event(region="33010"), ("region",), "must be a six-digit GB/T 2260 region code"),
    (_event(campaign="2 017"), ("campaign",), "must be a campaign id such as 2017"),
    (_event(occurred_at="2017-09-08T10:00:00"), ("occurred_at",), "must give the UTC offset"),
    (_event(occurred_at=1234), ("occurred_at",), "must be an RFC 3339 date and time"),
    (_event(schema_version=0), ("schema_version",), "must be at least 1"),
    (_event(data=[1]), ("data",), "must be a JSON object"),
    (_raid(dens_busted=-1), ("data", "dens_busted"), "must be at least 0"),
    (_raid(dens_busted=10**12), ("data", "dens_busted"), "must be at most 1,000,000,000"),
    (_raid(personnel="3"), ("data", "personnel"), "must be a whole number"),
    (_raid(seized_value_yuan="1.234"), ("data", "seized_value_yuan"), "at most 2 decimal places"),
    (_raid(category=""), ("data", "category"), "must not be empty"),
    (_raid(category="a\x01"), ("data", "category"), "must not contain control characters"),
    (_raid(colour="red"), ("data", "colour"), "is not a field of this event type"),
    (_event(data={"dens_busted": 1}), ("data", "personnel"), "is required"),
    (_event(type="event_corrected", data={"corrects": "nope"}), ("data", "corrects"), "must be a UUID"),
    (_event(type="campaign_opened", region="000000",
            data={"id": "2017", "theme": "t", "starts_on": "2017/09/01", "ends_on": "2017-09-30"}),
     ("data", "starts_on"), "must be a date written YYYY-MM-DD"),
]


def _errors(event: dict[str, Any]) -> list[ItemError]:
    with pytest.raises(ValidationFailed) as refused:
        read_events(event)
    return refused.value.errors


@pytest.mark.parametrize(("event", "loc", "message"), BAD)
def test_each_error_says_what_the_field_must_be(event: dict[str, Any], loc: tuple[str, ...], message: str) -> None:
    errors = {e.loc: e.msg for e in _errors(event)}
    assert loc in errors, errors
    assert message in errors[loc]


@pytest.mark.parametrize(("event", "loc", "message"), BAD)
def test_no_error_leaks_library_wording(event: dict[str, Any], loc: tuple[str, ...], message: str) -> None:
    for error in _errors(event):
        for words in LIBRARY_WORDING:
            assert words not in error.msg, (error.loc, error.msg)
        assert error.msg != "is not valid here", f"unmapped pydantic error at {error.loc}"
        assert error.msg[:1].islower(), "one voice: a predicate of the field named in loc"


def test_an_unknown_field_of_a_body_that_is_no_event_is_not_called_a_field_of_an_event_type() -> None:
    from events.validation_messages import explain

    error: Any = {"type": "extra_forbidden", "loc": ("budget",), "msg": "Extra inputs are not permitted", "input": 1}
    assert "GET /v1/catalogue" in explain(error)
    assert explain(error, of_event=False) == "is not a field of this request; remove it"
