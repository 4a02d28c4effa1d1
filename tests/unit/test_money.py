"""Money round trips: every exact amount with at most two places is kept, every other one is refused."""

import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from events.errors import ValidationFailed
from events.fields import MAX_YUAN
from events.intake import parse_json, read_events
from tests.factories import SAMPLE_DATA, event

MAX_CENTS = int(MAX_YUAN * 100)


def goods_destroyed_body(literal: str) -> bytes:
    """The bytes a client sends, with ``literal`` written as the money value exactly as given."""
    sent = event("goods_destroyed", data={**SAMPLE_DATA["goods_destroyed"], "destroyed_value_yuan": "@"})
    return json.dumps(sent).replace('"@"', literal).encode()


def stored_money(value: Any) -> str:
    sent = event("goods_destroyed", data={**SAMPLE_DATA["goods_destroyed"], "destroyed_value_yuan": value})
    [draft] = read_events(sent)
    result = draft.data["destroyed_value_yuan"]
    assert isinstance(result, str)
    return result


@st.composite
def cents_amount(draw: st.DrawFn) -> Decimal:
    """An amount in range with at most two decimal places, possibly written with extra trailing zeros."""
    cents = draw(st.integers(min_value=0, max_value=MAX_CENTS))
    zeros = draw(st.integers(min_value=0, max_value=4))
    return Decimal(f"{cents * 10**zeros}E-{2 + zeros}")


@settings(max_examples=150)
@given(cents_amount())
def test_exact_amounts_are_kept_whatever_their_spelling(amount: Decimal) -> None:
    expected = f"{amount.quantize(Decimal('0.01')):f}"
    spellings: list[Any] = [amount, parse_json(f"{amount:f}".encode())]
    if amount == amount.to_integral_value():
        spellings.append(int(amount))
    if amount == amount.quantize(Decimal("0.01")) and len(f"{amount:f}".split(".")[-1]) <= 2:
        spellings.append(f"{amount:f}")
    for spelling in spellings:
        assert stored_money(spelling) == expected
        assert Decimal(stored_money(spelling)) == amount


@settings(max_examples=100)
@given(cents_amount())
def test_exact_amounts_survive_the_wire(amount: Decimal) -> None:
    [draft] = read_events(parse_json(goods_destroyed_body(f"{amount:f}")))
    assert Decimal(draft.data["destroyed_value_yuan"]) == amount
    assert draft.data["destroyed_value_yuan"] == f"{amount:.2f}"


@st.composite
def sub_cent_amount(draw: st.DrawFn) -> Decimal:
    """An amount in range with a non-zero digit beyond the second decimal place."""
    places = draw(st.integers(min_value=3, max_value=40))
    cents = draw(st.integers(min_value=0, max_value=MAX_CENTS - 1))
    tail = draw(st.integers(min_value=1, max_value=10 ** (places - 2) - 1))
    return Decimal(f"{cents * 10 ** (places - 2) + tail}E-{places}")  # exact: no context rounding


@settings(max_examples=150)
@given(sub_cent_amount())
def test_amounts_with_more_than_two_places_are_refused_not_rounded(amount: Decimal) -> None:
    assert amount != amount.quantize(Decimal("0.01"))
    for body in (goods_destroyed_body(f"{amount:f}"), goods_destroyed_body(f'"{amount:f}"')):
        with pytest.raises(ValidationFailed) as info:
            read_events(parse_json(body))
        assert [e.loc for e in info.value.errors] == [("data", "destroyed_value_yuan")]


@settings(max_examples=100)
@given(st.one_of(st.integers(min_value=MAX_CENTS + 1, max_value=10**40).map(lambda c: Decimal(f"{c}E-2")),
                 st.integers(min_value=1, max_value=10**40).map(lambda c: Decimal(f"-{c}E-2"))))
def test_amounts_out_of_range_are_refused(amount: Decimal) -> None:
    with pytest.raises(ValidationFailed) as info:
        read_events(parse_json(goods_destroyed_body(f"{amount:f}")))
    assert [e.loc for e in info.value.errors] == [("data", "destroyed_value_yuan")]
