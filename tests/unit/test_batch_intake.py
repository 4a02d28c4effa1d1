"""The one-call validation of a request keeps to the item-by-item reference: the same drafts, or it stands aside.

``drafts_at_once`` may decline a body (None: the caller validates item by item, which words the 422); it may
never accept a body the reference refuses, nor accept one with different drafts.
"""

import json
import uuid
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from events.batch_intake import drafts_at_once
from events.errors import DomainError, ValidationFailed
from events.intake import drafts_one_by_one, parse_json, read_events, read_events_stepwise
from tests.factories import CAMPAIGN, FACT_TYPES, SAMPLE_DATA, event, retraction
from tests.unit.scenario import closed, opened, reopened


def reference(items: list[Any]) -> list[Any] | None:
    try:
        return drafts_one_by_one(items)
    except DomainError:
        return None


def test_a_batch_of_every_type_but_corrections_is_validated_at_once_into_the_reference_drafts() -> None:
    items = [*(event(t) for t in FACT_TYPES), retraction(str(uuid.uuid4())),
             opened(), closed(), reopened(), event("publicity_held", region="000000")]
    items.append({**event("brand_awarded"), "type": "flag_reviewed",
                  "data": {"flag_id": "0123456789abcdef", "verdict": "false_alarm", "note": " 核实无误 "}})
    items.append({**opened(), "data": {**CAMPAIGN, "id": "2018"}})
    parsed = parse_json(json.dumps({"events": items}).encode())["events"]
    at_once = drafts_at_once(parsed)
    assert at_once is not None
    assert at_once == drafts_one_by_one(parsed)


def test_what_the_reference_alone_can_word_is_left_to_it() -> None:
    upper = event()
    upper["event_id"] = upper["event_id"].upper()
    for item in (upper, {**event(), "data": {**SAMPLE_DATA["raid_conducted"], "cases": -1}},
                 {**event(), "region": "990000"}, {**event(), "type": "event_corrected",
                                                   "data": {"corrects": str(uuid.uuid4()), "replacement": {}}}):
        assert drafts_at_once([item]) is None
    assert read_events(upper)[0].event_id == upper["event_id"].lower()


ODD_VALUES: list[Any] = [
    None, True, False, 0, 1, -1, 2, 10**9, 10**9 + 1, 10**13, 10**30, Decimal("1.0"), Decimal("1.5"), Decimal("1.505"),
    Decimal("-0.0"), Decimal("1E+2"), Decimal("NaN"), "", " ", "1", "1.5", "1.505", "-1", " 1.00", "1.00\n",
    "0012.5", "1e3", "999999999999.99", "1000000000000.01", "liquor", " liquor ", "酒\u0085", "a" * 65, [], {},
    "2017-09-08T10:00:00+08:00", "2017-09-08t10:00:00Z", "2017-09-08 10:00:00.123456+08:00", "2017-09-08T10:00:00",
    "1504836000", "0001-01-01T00:00:00+08:00", "2017-09-31T10:00:00+08:00", "2017-09-08T10:00:00.1234567+08:00",
    "330102", "000000", "330100", "990000", "330102\n", "2017", "2017 ", "6F1C2A4E-0D1B-4A57-9D6E-5B0F3C9A7E11",
    "6f1c2a4e0d1b4a579d6e5b0f3c9a7e11", "6f1c2a4e-0d1b-4a57-9d6e-5b0f3c9a7e11", "raid_conducted", "event_corrected",
    "campaign_opened", "2017-09-01", "2018-09-30", "confirmed", "0123456789abcdef",
]
FIELDS = ["event_id", "type", "schema_version", "campaign", "region", "occurred_at", "data", "extra"]
DATA_FIELDS = sorted({k for data in SAMPLE_DATA.values() for k in data} | {"id", "theme", "starts_on", "ends_on",
                                                                           "retracts", "reason", "force", "note"})


@st.composite
def bent_items(draw: st.DrawFn) -> list[Any]:
    """A few valid events of random types with some envelope and payload fields replaced by odd values."""
    makers = [lambda t=t: event(t) for t in FACT_TYPES] + [opened, closed, lambda: retraction(str(uuid.uuid4()))]
    items: list[Any] = [draw(st.sampled_from(makers))() for _ in range(draw(st.integers(1, 4)))]
    if draw(st.booleans()):
        items[0]["event_id"] = items[-1]["event_id"]  # a request repeating an event_id
    for _ in range(draw(st.integers(0, 3))):
        item = draw(st.sampled_from(items))
        if draw(st.booleans()):
            key = draw(st.sampled_from(FIELDS))
            if draw(st.booleans()) and key != "extra":
                item.pop(key, None)
            else:
                item[key] = draw(st.sampled_from(ODD_VALUES))
        elif isinstance(item.get("data"), dict):
            key = draw(st.sampled_from(DATA_FIELDS))
            if draw(st.booleans()):
                item["data"].pop(key, None)
            else:
                item["data"][key] = draw(st.sampled_from(ODD_VALUES))
    return items


@settings(max_examples=600, deadline=None)
@given(items=bent_items())
def test_at_once_accepts_only_what_the_reference_accepts_and_gives_the_same_drafts(items: list[Any]) -> None:
    at_once = drafts_at_once(items)
    expected = reference(items)
    if at_once is not None:
        assert expected is not None, "accepted at once what the reference refuses"
        assert at_once == expected
        assert [d.occurred_at.utcoffset() for d in at_once] == [d.occurred_at.utcoffset() for d in expected]


def test_validating_a_slice_at_a_time_gives_the_drafts_and_the_422_of_the_whole_request() -> None:
    items = [event(t) for t in FACT_TYPES * 3]
    whole = read_events({"events": items})
    assert [d for part in read_events_stepwise({"events": items}, step=4) for d in part] == whole
    assert [d.index for d in whole] == list(range(len(items)))
    # A correction (never validated at once) in a later slice: from that slice on, one by one, the same drafts.
    corrected = [*items[:9], {**event(), "type": "event_corrected", "data": {
        "corrects": items[0]["event_id"], "replacement": SAMPLE_DATA[items[0]["type"]]}}, *items[9:]]
    with_correction = read_events({"events": corrected})
    assert [d for part in read_events_stepwise({"events": corrected}, step=4) for d in part] == with_correction
    assert [d.index for d in with_correction] == list(range(len(corrected)))
    items[9]["data"] = {**items[9]["data"], "unknown": 1}
    items[2]["region"] = "33010"
    with pytest.raises(ValidationFailed) as whole_refusal:
        read_events({"events": items})
    with pytest.raises(ValidationFailed) as stepwise_refusal:
        list(read_events_stepwise({"events": items}, step=4))
    assert stepwise_refusal.value.errors == whole_refusal.value.errors
    assert [e.index for e in whole_refusal.value.errors] == [2, 9]
    # Only a later slice fails: it and the rest are validated one by one, numbered as in the whole request.
    items[2]["region"] = whole[2].region
    with pytest.raises(ValidationFailed) as whole_refusal:
        read_events({"events": items})
    with pytest.raises(ValidationFailed) as stepwise_refusal:
        list(read_events_stepwise({"events": items}, step=4))
    assert stepwise_refusal.value.errors == whole_refusal.value.errors
    assert [e.index for e in whole_refusal.value.errors] == [9]
