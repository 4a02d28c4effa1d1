"""The canonical form: the bytes anyone can recompute, the idempotency digest and the chain link."""

import hashlib
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from events.canonical import (
    CONTENT_FIELDS,
    GENESIS_HASH,
    RECORD_FIELDS,
    canonical_bytes,
    chain_hash,
    chain_hash_of_parts,
    content_hash,
    format_timestamp,
    parse_timestamp,
    record_parts,
    recorded_at_bytes,
    utc_text,
)
from events.decide import Accepted, AppendRequest, GroupDecider, prepare
from events.records import RecordedEvent, from_exported
from tests.factories import SAMPLE_DATA, event, retraction
from tests.unit.scenario import NOW, REPORTER, accept, drafts, fresh_state, recorded_chain


def python_json(obj: Any) -> bytes:
    """The recipe docs/canonical-form.md gives to auditors."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


TRICKY_TEXT = st.text(
    alphabet=st.one_of(st.sampled_from('"\\/\n\r\t\b\f\x00\x1f\x7f\u2028\u2029\ufeff全国质量月捣毁窝点😀é'),
                       st.characters(exclude_categories=["Cs"])),  # intake refuses lone surrogates
    max_size=12,
)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**63 - 1) | TRICKY_TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TRICKY_TEXT, inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=120)
@given(st.dictionaries(TRICKY_TEXT, JSON_VALUES, max_size=6))
def test_canonical_bytes_are_what_python_json_produces(payload: dict[str, Any]) -> None:
    assert canonical_bytes(payload) == python_json(payload)


PRINTABLE = st.characters(exclude_categories=["Cc", "Cs"])


@settings(max_examples=100)
@given(category=st.text(st.sampled_from('"\\/全国质量月😀é') | PRINTABLE, min_size=1, max_size=20)
       .filter(lambda t: t.strip() != ""),
       reason=st.text(st.sampled_from('"\\/\n\t 重复上报😀é\u2028') | PRINTABLE, min_size=1, max_size=40)
       .filter(lambda t: t.strip() != ""))
def test_recorded_events_with_any_text_hash_as_the_documented_recipe_says(category: str, reason: str) -> None:
    fact = event("raid_conducted", data={**SAMPLE_DATA["raid_conducted"], "category": category})
    records = accept(GroupDecider(fresh_state(), NOW), fact, retraction(fact["event_id"], reason=reason)).records
    assert len(records) == 2
    prev = GENESIS_HASH
    for item in records:
        exported = json.loads(json.dumps(item.exported(), ensure_ascii=False))
        body = python_json({k: exported[k] for k in RECORD_FIELDS})
        assert canonical_bytes(item.canonical_fields()) == body
        assert hashlib.sha256(prev + body).hexdigest() == exported["hash"]
        prev = item.hash


def test_a_realistic_export_recomputes_with_the_documented_recipe() -> None:
    records = recorded_chain(12)
    prev = GENESIS_HASH
    for line in [json.dumps(r.exported(), ensure_ascii=False) for r in records]:
        exported = json.loads(line)
        assert bytes.fromhex(exported["prev_hash"]) == prev
        digest = hashlib.sha256(prev + python_json({k: exported[k] for k in RECORD_FIELDS})).digest()
        assert digest.hex() == exported["hash"]
        prev = digest
    assert prev == records[-1].hash


def test_chinese_text_is_written_as_itself_in_utf8() -> None:
    assert canonical_bytes({"category": "白酒", "b": 1, "a": [True, None]}) == \
        '{"a":[true,null],"b":1,"category":"白酒"}'.encode()


# --- the idempotency digest -------------------------------------------------------------------


def content_hash_of(sent: dict[str, Any]) -> bytes:
    """The digest the log stores for one send, decided alone against a fresh log."""
    [record] = accept(GroupDecider(fresh_state(), NOW), sent).records
    return record.content_hash


EVENT_ID = "6f1c2d3e-0000-4000-8000-000000000001"


@pytest.mark.parametrize(("money", "occurred_at", "event_id"), [
    ("152000.5", "2017-09-08T10:00:00+08:00", EVENT_ID),
    ("152000.50", "2017-09-08T02:00:00Z", EVENT_ID),
    ("152000.50", "2017-09-08T02:00:00.000000+00:00", EVENT_ID.upper()),
    ("152000.50", "2017-09-07T21:00:00-05:00", EVENT_ID.replace("-", "")),
])
def test_content_hash_is_equal_for_sends_with_equal_meaning(money: str, occurred_at: str, event_id: str) -> None:
    base = event(event_id=EVENT_ID, occurred_at="2017-09-08T10:00:00+08:00")
    other = event(event_id=event_id, occurred_at=occurred_at,
                  data={**SAMPLE_DATA["raid_conducted"], "seized_value_yuan": money})
    assert content_hash_of(other) == content_hash_of(base)


def test_content_hash_ignores_where_and_when_the_event_was_recorded() -> None:
    sent = event(event_id=EVENT_ID)
    first = accept(GroupDecider(fresh_state(), NOW), sent, request_id="a").records[0]
    later = accept(GroupDecider(fresh_state(head_position=99, head_hash=b"\x01" * 32), NOW + timedelta(days=3)),
                   sent, request_id="b").records[0]
    assert first.position != later.position
    assert first.hash != later.hash
    assert first.content_hash == later.content_hash


@pytest.mark.parametrize("change", [
    {"occurred_at": "2017-09-08T10:00:01+08:00"},
    {"region": "330103"},
    {"event_id": "6f1c2d3e-0000-4000-8000-000000000002"},
    {"data": {**SAMPLE_DATA["raid_conducted"], "seized_value_yuan": "152000.51"}},
    {"data": {**SAMPLE_DATA["raid_conducted"], "dens_busted": 4}},
    {"data": {**SAMPLE_DATA["raid_conducted"], "category": "Liquor"}},
    {"type": "goods_destroyed", "data": dict(SAMPLE_DATA["goods_destroyed"])},
])
def test_content_hash_differs_when_the_meaning_changes(change: dict[str, Any]) -> None:
    base = event(event_id=EVENT_ID)
    assert content_hash_of(base | change) != content_hash_of(base)


CONTENT = {"campaign": "2017", "data": {"copies": 5000}, "event_id": EVENT_ID,
           "occurred_at": "2017-09-08T02:00:00.000000Z", "region": "330102", "schema_version": 1,
           "type": "materials_distributed"}
RECORD = CONTENT | {"position": 7, "recorded_at": "2017-10-15T04:00:00.000000Z", "recorded_by": "key-1",
                    "request_id": "req-1"}
OTHER_VALUES = {"campaign": "2018", "data": {"copies": 5001}, "event_id": EVENT_ID[:-1] + "2",
                "occurred_at": "2017-09-08T02:00:00.000001Z", "region": "330100", "schema_version": 2,
                "type": "pledge_signed", "position": 8, "recorded_at": "2017-10-15T04:00:00.000001Z",
                "recorded_by": "key-2", "request_id": "req-2"}


@pytest.mark.parametrize("field", CONTENT_FIELDS)
def test_content_hash_covers_every_content_field(field: str) -> None:
    assert content_hash(CONTENT | {field: OTHER_VALUES[field]}) != content_hash(CONTENT)


def test_content_hash_is_sha256_of_the_canonical_content() -> None:
    assert content_hash(RECORD) == hashlib.sha256(python_json(CONTENT)).digest()


# --- the chain link ---------------------------------------------------------------------------


@pytest.mark.parametrize("field", RECORD_FIELDS)
def test_chain_hash_covers_every_record_field(field: str) -> None:
    assert chain_hash(GENESIS_HASH, RECORD | {field: OTHER_VALUES[field]}) != chain_hash(GENESIS_HASH, RECORD)


def test_chain_hash_depends_on_the_previous_hash() -> None:
    assert chain_hash(GENESIS_HASH, RECORD) != chain_hash(b"\x00" * 31 + b"\x01", RECORD)
    assert chain_hash(GENESIS_HASH, RECORD) == hashlib.sha256(bytes(32) + python_json(RECORD)).digest()


# --- records and their export -----------------------------------------------------------------


def test_export_round_trips_and_the_hash_recomputes() -> None:
    for record in recorded_chain(10):
        exported = record.exported()
        assert exported["hash"] == record.hash.hex()
        assert exported["prev_hash"] == record.prev_hash.hex()
        back = from_exported(json.loads(json.dumps(exported, ensure_ascii=False)))
        assert back == record
        assert back.computed_hash() == record.hash


def test_a_changed_record_no_longer_matches_its_hash() -> None:
    record = recorded_chain(1)[0]
    assert record.computed_hash() == record.hash
    for changed in (replace(record, data={**record.data, "dens_busted": 4}), replace(record, position=2),
                    replace(record, recorded_by="someone-else"), replace(record, prev_hash=b"\x01" * 32),
                    replace(record, occurred_at=record.occurred_at + timedelta(microseconds=1))):
        assert changed.computed_hash() != record.hash


def test_timestamps_are_utc_with_six_fraction_digits() -> None:
    cst = timezone(timedelta(hours=8))
    assert format_timestamp(datetime(2017, 9, 8, 10, 0, tzinfo=cst)) == "2017-09-08T02:00:00.000000Z"
    assert format_timestamp(datetime(2017, 9, 8, 2, 0, 0, 5, tzinfo=UTC)) == "2017-09-08T02:00:00.000005Z"
    with pytest.raises(ValueError, match="timezone-aware"):
        format_timestamp(datetime(2017, 9, 8, 10, 0))


@settings(max_examples=150)
@given(st.datetimes(min_value=datetime(2, 1, 1), max_value=datetime(9998, 12, 31),
                    timezones=st.sampled_from([UTC, timezone(timedelta(hours=8)), timezone(timedelta(hours=-5))])))
def test_timestamps_round_trip_in_the_documented_shape(moment: datetime) -> None:
    text = format_timestamp(moment)
    assert len(text) == len("YYYY-MM-DDTHH:MM:SS.ffffffZ")
    assert (text[4], text[7], text[10], text[-1]) == ("-", "-", "T", "Z")
    assert parse_timestamp(text) == moment


def test_record_equality_is_by_value() -> None:
    record = recorded_chain(1)[0]
    assert isinstance(record, RecordedEvent)
    assert replace(record) == record


@settings(max_examples=60)
@given(category=st.text(st.sampled_from('"\\/全国质量月😀é') | PRINTABLE, min_size=1, max_size=20)
       .filter(lambda t: t.strip() != ""),
       position=st.integers(min_value=0, max_value=2**53))
def test_records_prepared_before_the_lock_are_byte_identical_to_those_built_under_it(category: str,
                                                                                      position: int) -> None:
    sent = [event("raid_conducted", data={**SAMPLE_DATA["raid_conducted"], "category": category}),
            event("publicity_held", region="110000"), event("media_reported")]
    prepared_request = prepare(drafts(*sent), REPORTER, "req-prepared")
    assert all(parts is not None for parts in prepared_request.prepared)
    plain = GroupDecider(fresh_state(head_position=position), NOW).decide(
        AppendRequest(prepared_request.drafts, REPORTER, "req-prepared"))
    prepared = GroupDecider(fresh_state(head_position=position), NOW).decide(prepared_request)
    assert isinstance(plain, Accepted)
    assert isinstance(prepared, Accepted)
    assert prepared.records == plain.records
    prev = GENESIS_HASH
    for record in prepared.records:
        body = python_json(json.loads(json.dumps(record.canonical_fields(), ensure_ascii=False)))
        assert record.prev_hash == prev
        assert record.hash == hashlib.sha256(prev + body).digest() == record.computed_hash()
        prev = record.hash


@settings(max_examples=300, deadline=None)
@given(campaign=TRICKY_TEXT, region=TRICKY_TEXT, recorded_by=TRICKY_TEXT, request_id=TRICKY_TEXT,
       type_=TRICKY_TEXT, data=st.dictionaries(TRICKY_TEXT, JSON_VALUES, max_size=4),
       version=st.integers(min_value=1, max_value=2**15), position=st.integers(min_value=1, max_value=2**62),
       moment=st.datetimes(timezones=st.just(UTC)))
def test_parts_built_from_pieces_are_the_canonical_bytes_of_the_whole_record(
        campaign: str, region: str, recorded_by: str, request_id: str, type_: str, data: dict[str, Any],
        version: int, position: int, moment: datetime) -> None:
    record = {"campaign": campaign, "data": data, "event_id": "6f1c2a4e-0d1b-4a57-9d6e-5b0f3c9a7e11",
              "occurred_at": utc_text(moment), "region": region, "schema_version": version, "type": type_,
              "position": position, "recorded_at": format_timestamp(NOW), "recorded_by": recorded_by,
              "request_id": request_id}
    parts = record_parts(record, recorded_by, request_id)
    assert parts.content_hash == content_hash(record)
    assert parts.data.encode() == python_json(data)
    assert chain_hash_of_parts(GENESIS_HASH, parts, position, recorded_at_bytes(NOW)) == \
        hashlib.sha256(GENESIS_HASH + python_json(record)).digest() == chain_hash(GENESIS_HASH, record)


@given(moment=st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=8)),
                                                      timezone(timedelta(hours=-3, minutes=-30))])))
def test_utc_text_is_the_canonical_timestamp(moment: datetime) -> None:
    try:
        expected = moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"
    except OverflowError:
        return
    assert utc_text(moment) == format_timestamp(moment) == expected
