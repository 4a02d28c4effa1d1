"""Validation straight from the body's bytes keeps to ``read_events(parse_json(body))``, or stands aside.

``drafts_from_json`` may decline a body (None: the handler parses it exactly and validates it the usual way);
it may never accept a body that way refuses (malformed JSON, a duplicate key, a fraction it would read
exactly), nor accept one with different drafts.
"""

import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from events.batch_intake import drafts_from_json
from events.drafts import DraftEvent
from events.errors import DomainError, MalformedRequest
from events.intake import parse_json, read_events
from tests.factories import FACT_TYPES, SAMPLE_DATA, event
from tests.unit.test_batch_intake import bent_items

MAX_BATCH = 1000


class Pairs(list[tuple[str, Any]]):
    """A JSON object written pair by pair, so a key may appear twice."""


def encode(value: Any, colon: str = ":") -> str:
    """JSON text of ``value``; a Decimal is written as the number it is (NaN as the invalid literal NaN)."""
    if isinstance(value, dict):
        value = Pairs(value.items())
    if isinstance(value, Pairs):
        return "{" + ",".join(json.dumps(k) + colon + encode(v, colon) for k, v in value) + "}"
    if isinstance(value, list):
        return "[" + ",".join(encode(v, colon) for v in value) + "]"
    if isinstance(value, Decimal):
        return str(value)
    return json.dumps(value, ensure_ascii=False)


def reference(body: bytes) -> list[DraftEvent] | None:
    try:
        return read_events(parse_json(body), MAX_BATCH)
    except DomainError:
        return None


def test_a_fact_and_a_batch_of_facts_are_read_from_the_bytes_into_the_reference_drafts() -> None:
    one = encode(event("inspection_completed")).encode()
    batch = encode({"events": [event(t) for t in FACT_TYPES * 2]}).encode()
    for body in (one, batch, json.dumps(json.loads(batch), ensure_ascii=False).encode()):
        drafts = drafts_from_json(body, MAX_BATCH)
        assert drafts is not None
        assert drafts == reference(body)
        assert [d.occurred_at.utcoffset() for d in drafts] == [d.occurred_at.utcoffset() for d in reference(body) or []]


def test_a_duplicate_key_anywhere_is_left_to_the_exact_parser_which_refuses_it() -> None:
    fact = event("raid_conducted")
    twice_in_envelope = Pairs([*fact.items(), ("region", "110000")])
    twice_in_data = {**fact, "data": Pairs([*fact["data"].items(), ("cases", 3)])}
    twice_at_the_top = Pairs([("events", [fact]), ("events", [event()])])
    for value in (twice_in_envelope, twice_in_data, twice_at_the_top, {"events": [event(), twice_in_data]}):
        body = encode(value).encode()
        assert drafts_from_json(body, MAX_BATCH) is None
        with pytest.raises(MalformedRequest, match="duplicate key"):
            parse_json(body)
    # Written with a space before the colon, a duplicate would escape the count of '":': such bodies decline.
    spaced = encode(Pairs([*fact.items(), ("type", fact["type"])]), colon=" : ").encode()
    assert drafts_from_json(spaced, MAX_BATCH) is None


def test_what_the_exact_parser_reads_differently_is_left_to_it() -> None:
    fact = event("goods_destroyed")
    exact_money = encode({**fact, "data": {**SAMPLE_DATA["goods_destroyed"], "destroyed_value_yuan": Decimal("12.50")}})
    assert drafts_from_json(exact_money.encode(), MAX_BATCH) is None
    drafts = reference(exact_money.encode())
    assert drafts is not None
    assert drafts[0].data["destroyed_value_yuan"] == "12.50"
    lone_surrogate = encode(fact).replace('"category":"', '"category":"\\udc00').encode()
    assert drafts_from_json(lone_surrogate, MAX_BATCH) is None
    for count in ("Infinity", "NaN", "1E2", "1.0"):
        text = encode({**event("pledge_signed"), "data": {"enterprises": 0}})
        assert drafts_from_json(text.replace('"enterprises":0', '"enterprises":' + count).encode(), MAX_BATCH) is None
    assert drafts_from_json(encode({"events": []}).encode(), MAX_BATCH) is None
    assert drafts_from_json(encode({"events": [fact, event()]}).encode(), 1) is None


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    """Bent items as one event or a batch, sometimes with a key written twice or spaced from its colon."""
    items: list[Any] = draw(bent_items())
    if draw(st.booleans()):
        target = draw(st.sampled_from(items))
        if isinstance(target, dict) and target:
            inner = target.get("data") if draw(st.booleans()) else None
            holder = inner if isinstance(inner, dict) and inner else target
            key = draw(st.sampled_from(sorted(holder)))
            again = holder[key] if draw(st.booleans()) else draw(st.sampled_from([None, 1, "2017", "x"]))
            pairs = Pairs([*holder.items(), (key, again)])
            if holder is target:
                items[items.index(target)] = pairs
            else:
                target["data"] = pairs
    value: Any = items[0] if len(items) == 1 and draw(st.booleans()) else {"events": items}
    return encode(value, draw(st.sampled_from([":", ":", " :", ": "]))).encode()


@settings(max_examples=600, deadline=None)
@given(body=bodies())
def test_from_bytes_accepts_only_what_the_exact_way_accepts_and_gives_the_same_drafts(body: bytes) -> None:
    drafts = drafts_from_json(body, MAX_BATCH)
    if drafts is not None:
        expected = reference(body)
        assert expected is not None, "accepted from the bytes what parse_json and read_events refuse"
        assert drafts == expected
        assert [d.occurred_at.utcoffset() for d in drafts] == [d.occurred_at.utcoffset() for d in expected]
