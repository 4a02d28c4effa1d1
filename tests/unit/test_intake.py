"""Intake: exact JSON parsing and stateless validation of what regional systems send."""

import json
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from events.catalogue import CATALOGUE
from events.errors import BatchTooLarge, ItemError, MalformedRequest, ValidationFailed
from events.fields import MAX_COUNT, MAX_YUAN
from events.intake import MAX_BATCH, parse_json, read_events
from tests.factories import FACT_TYPES, SAMPLE_DATA, correction, event, retraction

COUNT_FIELDS = [(t, m.field) for t in FACT_TYPES for m in CATALOGUE[t].metrics if m.kind == "count"]
MONEY_FIELDS = [(t, m.field) for t in FACT_TYPES for m in CATALOGUE[t].metrics if m.kind == "money"]
LABEL_FIELDS = [(t, CATALOGUE[t].category_field) for t in FACT_TYPES if CATALOGUE[t].category_field]
DATA_FIELDS = [(t, f) for t in FACT_TYPES for f in SAMPLE_DATA[t]]


def refused(body: Any) -> list[ItemError]:
    """The item errors a body is refused with (fails the test if it is accepted)."""
    with pytest.raises(ValidationFailed) as info:
        read_events(body)
    return info.value.errors


def refused_at(body: Any) -> list[tuple[str | int, ...]]:
    return [e.loc for e in refused(body)]


def with_data(type_: str = "raid_conducted", **changes: Any) -> dict[str, Any]:
    return event(type_, data={**SAMPLE_DATA[type_], **changes})


def normalised_money(value: Any, field: str = "seized_value_yuan") -> str:
    type_ = next(t for t, f in MONEY_FIELDS if f == field)
    [draft] = read_events(with_data(type_, **{field: value}))
    result = draft.data[field]
    assert isinstance(result, str)
    return result


# --- parse_json -------------------------------------------------------------------------------


def test_parse_json_reads_fractions_as_decimal_and_integers_as_int() -> None:
    parsed = parse_json(b'{"money": 0.1000000000000000055511151231257827, "n": 3, "e": 1.5e2}')
    assert parsed["money"] == Decimal("0.1000000000000000055511151231257827")
    assert isinstance(parsed["money"], Decimal)
    assert parsed["n"] == 3
    assert type(parsed["n"]) is int
    assert parsed["e"] == Decimal("150")


def test_parse_json_keeps_chinese_text() -> None:
    assert parse_json('{"category": "月饼"}'.encode()) == {"category": "月饼"}


@pytest.mark.parametrize("body", [b'{"a": 1, "a": 2}', b'{"outer": {"k": 1, "k": 1}}', b'[{"x": 0, "y": 0, "x": 0}]'])
def test_parse_json_refuses_duplicate_keys(body: bytes) -> None:
    with pytest.raises(MalformedRequest, match="duplicate key"):
        parse_json(body)


@pytest.mark.parametrize("constant", [b"NaN", b"Infinity", b"-Infinity"])
def test_parse_json_refuses_non_finite_constants(constant: bytes) -> None:
    with pytest.raises(MalformedRequest):
        parse_json(b'{"seized_value_yuan": ' + constant + b"}")


@pytest.mark.parametrize("body", [b'{"category": "\xff\xfe"}', b'{"category": "\xe6\x9c"}', b"\xc0\xaf"])
def test_parse_json_refuses_invalid_utf8(body: bytes) -> None:
    with pytest.raises(MalformedRequest, match="UTF-8"):
        parse_json(body)


@pytest.mark.parametrize("body", [b"", b"{", b'{"a": }', b"{'a': 1}", b"[1, 2,]", b"{} {}", b'{"a": 01}',
                                  b'"unterminated', b'{"a": 1} trailing'])
def test_parse_json_refuses_malformed_json(body: bytes) -> None:
    with pytest.raises(MalformedRequest, match="malformed JSON"):
        parse_json(body)


@pytest.mark.parametrize("body", [b"[" * 200_000 + b"]" * 200_000, b'{"a":' * 200_000 + b"1" + b"}" * 200_000])
def test_parse_json_refuses_absurd_nesting(body: bytes) -> None:
    with pytest.raises(MalformedRequest):
        parse_json(body)


def test_parse_json_refuses_an_integer_literal_python_will_not_read() -> None:
    with pytest.raises(MalformedRequest):
        parse_json(b'{"copies": ' + b"9" * 5000 + b"}")


# --- every catalogue fact type ----------------------------------------------------------------


@pytest.mark.parametrize("type_", FACT_TYPES)
def test_each_fact_type_accepts_its_sample(type_: str) -> None:
    sent = event(type_)
    [draft] = read_events(sent)
    assert draft.type.name == type_
    assert draft.event_id == sent["event_id"]
    assert draft.region == "330102"
    assert draft.campaign == "2017"
    assert draft.data == SAMPLE_DATA[type_]


@pytest.mark.parametrize("type_", FACT_TYPES)
def test_each_fact_type_accepts_its_sample_sent_as_json_bytes(type_: str) -> None:
    [draft] = read_events(parse_json(json.dumps(event(type_), ensure_ascii=False).encode()))
    assert draft.data == SAMPLE_DATA[type_]


@pytest.mark.parametrize("type_", FACT_TYPES)
def test_unknown_data_fields_are_refused(type_: str) -> None:
    assert refused_at(with_data(type_, remarks="extra")) == [("data", "remarks")]


@pytest.mark.parametrize(("type_", "field"), DATA_FIELDS)
def test_missing_data_fields_are_refused(type_: str, field: str) -> None:
    data = {k: v for k, v in SAMPLE_DATA[type_].items() if k != field}
    [error] = refused(event(type_, data=data))
    assert error.loc == ("data", field)
    assert "required" in error.msg.lower()


@pytest.mark.parametrize(("type_", "field"), COUNT_FIELDS)
@pytest.mark.parametrize("bad", [-1, True, False, Decimal("3.0"), Decimal("2.5"), MAX_COUNT + 1, "3", None])
def test_counts_must_be_non_negative_bounded_integers(type_: str, field: str, bad: Any) -> None:
    assert refused_at(with_data(type_, **{field: bad})) == [("data", field)]


@pytest.mark.parametrize("type_", FACT_TYPES)
def test_counts_at_the_bounds_are_accepted(type_: str) -> None:
    for value in (0, MAX_COUNT):
        counts = {f: value for t, f in COUNT_FIELDS if t == type_}
        [draft] = read_events(with_data(type_, **counts))
        assert all(draft.data[f] == value for f in counts)


def test_batches_passed_cannot_exceed_batches_sampled() -> None:
    [error] = refused(with_data("inspection_completed", batches_sampled=10, batches_passed=11))
    # A catalogue rule (events.catalogue): the item points at the field and carries the rule's stable code.
    assert (error.loc, error.code) == (("data", "batches_passed"), "passed_exceeds_sampled")
    assert "batches_passed" in error.msg
    [draft] = read_events(with_data("inspection_completed", batches_sampled=10, batches_passed=10))
    assert draft.data["batches_passed"] == 10


# --- money ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("type_", "field"), MONEY_FIELDS)
@pytest.mark.parametrize("bad", [
    parse_json(b"0.1000000000000000055511151231257827"),
    parse_json(b"152000.505"),
    parse_json(b"1e-3"),
    Decimal("0.001"),
    "0.001",
    "-1.00",
    -1,
    parse_json(b"-0.01"),
    MAX_YUAN + Decimal("0.01"),
    int(MAX_YUAN) + 1,
    "10000000000000",
    "abc",
    "",
    " 1.00",
    "1,000.00",
    "1e3",
    "NaN",
    Decimal("NaN"),
    Decimal("Infinity"),
    0.5,
    True,
    None,
    ["1.00"],
])
def test_money_that_is_not_exact_non_negative_and_bounded_is_refused(type_: str, field: str, bad: Any) -> None:
    assert refused_at(with_data(type_, **{field: bad})) == [("data", field)]


def test_float_artefact_is_refused_not_rounded() -> None:
    literal = "0.1000000000000000055511151231257827"  # the double nearest 0.1, written out in full
    body = parse_json(json.dumps(with_data(seized_value_yuan="@")).replace('"@"', literal).encode())
    assert body["data"]["seized_value_yuan"] == Decimal("0.1000000000000000055511151231257827")
    [error] = refused(body)
    assert error.loc == ("data", "seized_value_yuan")
    assert "2 decimal places" in error.msg


@pytest.mark.parametrize("digits", [b"12345678901234567890123456789.123", b"9" * 40 + b".999", b"1" * 60])
def test_money_with_too_many_digits_is_refused_cleanly(digits: bytes) -> None:
    assert refused_at(with_data(seized_value_yuan=parse_json(digits))) == [("data", "seized_value_yuan")]


@pytest.mark.parametrize(("sent", "stored"), [
    ("152000.5", "152000.50"),
    (parse_json(b"152000.5"), "152000.50"),
    ("152000.50", "152000.50"),
    (parse_json(b"152000.50"), "152000.50"),
    (parse_json(b"152000.500"), "152000.50"),
    (152000, "152000.00"),
    ("152000", "152000.00"),
    (parse_json(b"1.52e5"), "152000.00"),
    (0, "0.00"),
    ("0.00", "0.00"),
    (parse_json(b"-0.0"), "0.00"),
    (parse_json(b"0.10"), "0.10"),
    (int(MAX_YUAN), "1000000000000.00"),
    (f"{MAX_YUAN}.00", "1000000000000.00"),
])
def test_money_is_normalised_to_a_two_decimal_string(sent: Any, stored: str) -> None:
    assert normalised_money(sent) == stored


def test_money_formats_normalise_identically_for_goods_destroyed() -> None:
    sent = ("152000.5", parse_json(b"152000.5"), "152000.50", Decimal("152000.50"))
    assert {normalised_money(v, "destroyed_value_yuan") for v in sent} == {"152000.50"}


# --- labels -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("type_", "field"), LABEL_FIELDS)
@pytest.mark.parametrize("bad", ["liq\x00uor", "liq\nuor", "a\tb", "bell\x07", "del\x7f", "c1\x85c1", "csi\x9b31m",
                                 "esc\x1b[31m", "", "   ", "x" * 65, 7])
def test_labels_refuse_control_characters_blank_and_overlong_text(type_: str, field: str, bad: Any) -> None:
    assert refused_at(with_data(type_, **{field: bad})) == [("data", field)]


def test_labels_are_stripped_and_keep_chinese() -> None:
    [draft] = read_events(with_data(category="  白酒 "))
    assert draft.data["category"] == "白酒"
    [draft] = read_events(with_data(category="月" * 64))
    assert draft.data["category"] == "月" * 64


# --- envelope ---------------------------------------------------------------------------------


@pytest.mark.parametrize("naive", ["2017-09-08T10:00:00", "2017-09-08 10:00:00", "2017-09-08"])
def test_occurred_at_needs_an_offset(naive: str) -> None:
    assert refused_at(event(occurred_at=naive)) == [("occurred_at",)]


@pytest.mark.parametrize("number", [1504836000, Decimal("1504836000.5"), "1504836000", "20170908"])
def test_occurred_at_must_be_an_rfc3339_string_not_a_number(number: Any) -> None:
    assert refused_at(event(occurred_at=number)) == [("occurred_at",)]


@pytest.mark.parametrize("extreme", ["0001-01-01T00:00:00+08:00", "9999-12-31T23:59:59-08:00"])
def test_occurred_at_beyond_the_representable_range_is_refused_not_crashed(extreme: str) -> None:
    assert refused_at(event(occurred_at=extreme)) == [("occurred_at",)]


def test_occurred_at_is_held_in_utc() -> None:
    [a, b] = read_events({"events": [event(occurred_at="2017-09-08T10:00:00+08:00"),
                                     event(occurred_at="2017-09-08T02:00:00Z")]})
    assert a.occurred_at == b.occurred_at == datetime(2017, 9, 8, 2, tzinfo=UTC)
    assert a.occurred_at.utcoffset() is not None
    assert a.occurred_at.utcoffset().total_seconds() == 0  # type: ignore[union-attr]


def test_unknown_type_is_refused() -> None:
    [error] = refused(event() | {"type": "raid_conductd"})
    assert error.loc == ("type",)
    assert "raid_conductd" in error.msg


@pytest.mark.parametrize("version", [2, 0, "1", True])
def test_unknown_schema_version_is_refused(version: Any) -> None:
    assert refused_at(event() | {"schema_version": version}) == [("schema_version",)]


def test_schema_version_defaults_to_one() -> None:
    sent = event()
    del sent["schema_version"]
    [draft] = read_events(sent)
    assert draft.schema_version == 1


@pytest.mark.parametrize("region", ["33010", "3301020", "990000", "000001", "330012", "110011", "XX00YY",
                                    "33a102", "330102\n", " 330102", 330102])
def test_bad_region_codes_are_refused(region: Any) -> None:
    assert refused_at(event(region=region)) == [("region",)]


@pytest.mark.parametrize("region", ["000000", "110000", "110101", "330100", "330102", "419001", "710000"])
def test_structurally_valid_regions_are_accepted(region: str) -> None:
    assert read_events(event(region=region))[0].region == region


@pytest.mark.parametrize("campaign", ["", "20 17", "-2017", "x" * 33, 2017])
def test_bad_campaign_ids_are_refused(campaign: Any) -> None:
    assert refused_at(event(campaign=campaign)) == [("campaign",)]


@pytest.mark.parametrize("key", ["position", "recorded_at", "hash"])
def test_unknown_envelope_keys_are_refused(key: str) -> None:
    assert refused_at(event() | {key: 1}) == [(key,)]


def test_event_id_must_be_a_uuid_and_is_echoed_in_the_error() -> None:
    [error] = refused(event(event_id="not-a-uuid"))
    assert (error.index, error.event_id, error.loc) == (0, "not-a-uuid", ("event_id",))


def test_event_id_is_normalised_to_lowercase_hyphenated() -> None:
    raw = uuid.uuid4()
    [draft] = read_events(event(event_id=raw.hex.upper()))
    assert draft.event_id == str(raw)


def test_correction_keeps_its_replacement_for_the_decider_and_normalises_the_target() -> None:
    target = uuid.uuid4()
    [draft] = read_events(correction(str(target).upper(), {"anything": "checked later"}))
    assert draft.data == {"corrects": str(target), "replacement": {"anything": "checked later"}}
    assert draft.target == str(target)


def test_retraction_needs_a_uuid_target_and_a_reason() -> None:
    assert refused_at(retraction("not-a-uuid")) == [("data", "retracts")]
    assert refused_at(retraction(str(uuid.uuid4()), reason="")) == [("data", "reason")]
    target = str(uuid.uuid4())
    [draft] = read_events(retraction(target, reason="  重复上报\n "))
    assert draft.data == {"retracts": target, "reason": "重复上报"}


@pytest.mark.parametrize(("starts_on", "ends_on"), [("2017-09-30", "2017-09-01"), ("2017-01-01", "2018-01-03")])
def test_campaign_window_must_be_sane(starts_on: str, ends_on: str) -> None:
    opened = event(region="000000", data={}) | {"type": "campaign_opened", "data": {
        "id": "2017", "theme": "质量月", "starts_on": starts_on, "ends_on": ends_on}}
    assert refused_at(opened) == [("data",)]


# --- batches ----------------------------------------------------------------------------------


@pytest.mark.parametrize("events", [[], {}, "x", None])
def test_batch_events_must_be_a_non_empty_list(events: Any) -> None:
    [error] = refused({"events": events})
    assert (error.index, error.loc) == (None, ("body", "events"))


def test_batch_refuses_keys_beside_events() -> None:
    [error] = refused({"events": [event()], "campaign": "2017"})
    assert error.loc == ("body", "campaign")


@pytest.mark.parametrize("body", [[event()], "event", 42, None])
def test_body_must_be_an_object(body: Any) -> None:
    with pytest.raises(MalformedRequest):
        read_events(body)


def test_batch_over_the_limit_is_too_large() -> None:
    with pytest.raises(BatchTooLarge, match="1001"):
        read_events({"events": [event() for _ in range(MAX_BATCH + 1)]})
    with pytest.raises(BatchTooLarge):
        read_events({"events": [event(), event(), event()]}, max_batch=2)


def test_batch_at_the_limit_is_accepted_in_order() -> None:
    sent = [event() for _ in range(MAX_BATCH)]
    drafts = read_events({"events": sent})
    assert [d.event_id for d in drafts] == [e["event_id"] for e in sent]
    assert [d.index for d in drafts] == list(range(MAX_BATCH))


def test_only_the_last_of_a_thousand_bad_is_listed_alone() -> None:
    sent = [event() for _ in range(MAX_BATCH)]
    sent[-1]["data"]["dens_busted"] = -3
    [error] = refused({"events": sent})
    assert error.index == MAX_BATCH - 1
    assert error.event_id == sent[-1]["event_id"]
    assert error.loc == ("data", "dens_busted")


def test_every_bad_item_of_a_batch_is_listed() -> None:
    sent = [event() for _ in range(6)]
    sent[1]["region"] = "990000"
    sent[3]["data"]["category"] = "bad\x00label"
    sent[3]["data"]["cases"] = True
    sent[4] = 42  # type: ignore[call-overload]
    sent[5]["occurred_at"] = "2017-09-08T10:00:00"
    errors = refused({"events": sent})
    got = sorted(((e.index, e.event_id, e.loc) for e in errors), key=repr)
    assert got == [
        (1, sent[1]["event_id"], ("region",)),
        (3, sent[3]["event_id"], ("data", "cases")),
        (3, sent[3]["event_id"], ("data", "category")),
        (4, None, ()),
        (5, sent[5]["event_id"], ("occurred_at",)),
    ]
    assert all(e.msg for e in errors)


@pytest.mark.parametrize("escaped", [b"liq\\ud800uor", b"\\udfff"])
def test_lone_surrogates_from_json_escapes_are_refused(escaped: bytes) -> None:
    body = parse_json(json.dumps(event()).encode().replace(b'"liquor"', b'"' + escaped + b'"'))
    assert refused_at(body) == [("data", "category")]
