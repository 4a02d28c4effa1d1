"""POST /v1/events as a regional system sends it: created, retried, refused (and then nothing stored)."""

import asyncio
import io
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from services.app import create_app
from tests.conftest import Database, Keys
from tests.conftest import test_settings as app_settings
from tests.e2e.wire import expect_problem, read_log, stored_ids
from tests.factories import FACT_TYPES, event, retraction

pytestmark = pytest.mark.usefixtures("campaign")

MiB = 1024 * 1024
CHINA = timezone(timedelta(hours=8))


async def test_one_event_is_created_at_the_next_position(client: TestClient, keys: Keys) -> None:
    sent = event()
    response = await client.post("/v1/events", json=sent, headers=keys.reporter)
    assert response.status == 201
    assert response.content_type == "application/json"
    assert await response.json() == {"results": [{"event_id": sent["event_id"], "status": "created",
                                                  "position": 2}], "last_position": 2}


async def test_a_batch_of_every_fact_type_is_created_in_order(client: TestClient, keys: Keys) -> None:
    batch = [event(t, region="330100") for t in FACT_TYPES]
    response = await client.post("/v1/events", json={"events": batch}, headers=keys.reporter)
    assert response.status == 201
    body = await response.json()
    assert body["results"] == [{"event_id": e["event_id"], "status": "created", "position": 2 + i}
                               for i, e in enumerate(batch)]
    assert body["last_position"] == 1 + len(batch)
    stored = await read_log(client, keys, after=1)
    assert [(e["event_id"], e["type"], e["data"]) for e in stored] == [
        (e["event_id"], e["type"], e["data"]) for e in batch]


async def test_a_retried_batch_answers_200_with_the_original_positions(client: TestClient, keys: Keys) -> None:
    batch = {"events": [event(), event("publicity_held"), event("pledge_signed")]}
    first = await client.post("/v1/events", json=batch, headers=keys.reporter)
    assert first.status == 201
    retry = await client.post("/v1/events", json=batch, headers=keys.reporter)
    assert retry.status == 200
    body = await retry.json()
    assert body == {"results": [{"event_id": e["event_id"], "status": "duplicate", "position": 2 + i}
                                for i, e in enumerate(batch["events"])], "last_position": 4}
    assert len(await read_log(client, keys)) == 4


async def test_a_batch_mixing_retried_and_new_events_is_201(client: TestClient, keys: Keys) -> None:
    old = event()
    await client.post("/v1/events", json=old, headers=keys.reporter)
    new = event("materials_distributed")
    response = await client.post("/v1/events", json={"events": [old, new]}, headers=keys.reporter)
    assert response.status == 201
    assert (await response.json())["results"] == [
        {"event_id": old["event_id"], "status": "duplicate", "position": 2},
        {"event_id": new["event_id"], "status": "created", "position": 3}]


async def test_a_retry_spelling_the_same_facts_differently_is_a_duplicate(client: TestClient, keys: Keys) -> None:
    sent = event()
    assert (await client.post("/v1/events", json=sent, headers=keys.reporter)).status == 201
    respelled = sent | {"occurred_at": "2017-09-08T02:00:00Z",
                        "data": dict(reversed(list(sent["data"].items()))) | {"seized_value_yuan": "152000.5"}}
    retry = await client.post("/v1/events", json=respelled, headers=keys.reporter)
    assert retry.status == 200, await retry.text()
    assert (await retry.json())["results"][0] == {"event_id": sent["event_id"], "status": "duplicate", "position": 2}


async def test_money_sent_as_a_json_number_is_stored_exactly(client: TestClient, keys: Keys) -> None:
    sent = event()
    body = orjson.dumps(sent).replace(b'"152000.50"', b"152000.5")
    response = await client.post("/v1/events", data=body, headers=keys.reporter | {
        "Content-Type": "application/json"})
    assert response.status == 201
    (stored,) = await read_log(client, keys, type="raid_conducted")
    assert stored["data"]["seized_value_yuan"] == "152000.50"


NOT_JSON = {
    "truncated": b'{"event_id": ',
    "duplicate key": b'{"event_id": "a", "event_id": "b"}',
    "NaN": b'{"events": [{"data": {"dens_busted": NaN}}]}',
    "Infinity": b'{"events": [{"data": {"personnel": Infinity}}]}',
    "invalid UTF-8": b'{"region": "\xff\xfe"}',
    "an array": b"[1, 2, 3]",
    "empty": b"",
    "nested too deeply": b"[" * 100_000,
    "an integer too long to read": b'{"events": [{"data": {"cases": ' + b"1" * 5000 + b"}}]}",
}


async def test_a_body_that_is_not_json_is_400(client: TestClient, keys: Keys) -> None:
    for case, body in NOT_JSON.items():
        response = await client.post("/v1/events", data=body, headers=keys.reporter | {
            "Content-Type": "application/json"})
        await expect_problem(response, 400, "malformed-json", case)
    assert await read_log(client, keys, after=1) == []


async def test_a_body_over_one_mebibyte_is_413(client: TestClient, keys: Keys) -> None:
    body = b'{"events": [' + b" " * MiB + b"]}"
    response = await client.post("/v1/events", data=io.BytesIO(body), headers=keys.reporter | {
        "Content-Type": "application/json"})
    await expect_problem(response, 413, "too-large")


async def test_a_batch_of_1001_events_is_413_and_stores_nothing(client: TestClient, keys: Keys) -> None:
    batch = [event() for _ in range(1001)]
    response = await client.post("/v1/events", json={"events": batch}, headers=keys.reporter)
    body = await expect_problem(response, 413, "too-large")
    assert "1000" in body["detail"]
    assert await read_log(client, keys, after=1) == []


async def test_a_body_not_declared_as_json_is_415(client: TestClient, keys: Keys) -> None:
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "application/json; charset=latin-1"):
        response = await client.post("/v1/events", data=orjson.dumps(event()),
                                     headers=keys.reporter | {"Content-Type": content_type})
        await expect_problem(response, 415, "unsupported-media-type", content_type)
    assert await read_log(client, keys, after=1) == []
    declared = await client.post("/v1/events", data=orjson.dumps(event()),
                                 headers=keys.reporter | {"Content-Type": "application/json; charset=UTF-8"})
    assert declared.status == 201


async def test_a_body_without_content_type_is_415(client: TestClient, keys: Keys) -> None:
    response = await client.post("/v1/events", data=orjson.dumps(event()), headers=keys.reporter,
                                 skip_auto_headers=["Content-Type"])
    body = await expect_problem(response, 415, "unsupported-media-type")
    assert "missing" in body["detail"]


async def test_reusing_an_event_id_for_other_content_is_409_and_stores_nothing(client: TestClient,
                                                                              keys: Keys) -> None:
    original = event()
    await client.post("/v1/events", json=original, headers=keys.reporter)
    changed = original | {"data": original["data"] | {"dens_busted": 4}}
    innocent = event("publicity_held")
    response = await client.post("/v1/events", json={"events": [innocent, changed]}, headers=keys.reporter)
    body = await expect_problem(response, 409, "event-id-conflict")
    assert body["event_id"] == original["event_id"]
    assert body["index"] == 1
    stored = await read_log(client, keys, after=1)
    assert [(e["event_id"], e["data"]["dens_busted"]) for e in stored] == [(original["event_id"], 3)]


async def test_one_event_id_twice_in_a_batch_with_other_content_is_409(client: TestClient, keys: Keys) -> None:
    first = event()
    second = first | {"region": "330103"}
    response = await client.post("/v1/events", json={"events": [first, second]}, headers=keys.reporter)
    await expect_problem(response, 409, "event-id-conflict")
    assert await read_log(client, keys, after=1) == []


def _bad(item: dict[str, Any], index: int) -> dict[str, Any]:
    if index == 1:
        return item | {"data": item["data"] | {"dens_busted": -1}}
    return item | {"data": item["data"] | {"smuggled": True}}


async def test_a_batch_with_two_bad_items_lists_both_and_stores_none(client: TestClient, keys: Keys) -> None:
    batch = [event() for _ in range(5)]
    batch[1], batch[3] = _bad(batch[1], 1), _bad(batch[3], 3)
    response = await client.post("/v1/events", json={"events": batch}, headers=keys.reporter)
    body = await expect_problem(response, 422, "validation-failed")
    errors = body["errors"]
    assert [(e["index"], e["event_id"], e["loc"]) for e in errors] == [
        (1, batch[1]["event_id"], ["data", "dens_busted"]),
        (3, batch[3]["event_id"], ["data", "smuggled"])]
    assert all(isinstance(e["msg"], str) and e["msg"] for e in errors)
    assert await stored_ids(client, keys) & {e["event_id"] for e in batch} == set()


async def test_a_thousand_event_batch_with_a_bad_last_item_stores_none(client: TestClient, keys: Keys) -> None:
    batch = [event() for _ in range(1000)]
    batch[999] = batch[999] | {"region": "33010"}
    response = await client.post("/v1/events", json={"events": batch}, headers=keys.reporter)
    body = await expect_problem(response, 422, "validation-failed")
    assert [(e["index"], e["event_id"], e["loc"]) for e in body["errors"]] == [
        (999, batch[999]["event_id"], ["region"])]
    assert await read_log(client, keys, after=1) == []


async def test_a_batch_declined_in_a_later_slice_of_its_drafts_takes_the_exact_way(client: TestClient,
                                                                                   keys: Keys) -> None:
    # Read straight from the bytes, the first slices of drafts are made before a later one declines: a code
    # under no province (only events.regions knows), then an event that is not a fact. The request is then
    # read the exact way, whole: the 422 of the whole batch, or every event created.
    batch = [event() for _ in range(600)]
    batch[520] = batch[520] | {"region": "990000"}
    response = await client.post("/v1/events", json={"events": batch}, headers=keys.reporter)
    body = await expect_problem(response, 422, "validation-failed")
    assert [(e["index"], e["loc"]) for e in body["errors"]] == [(520, ["region"])]
    assert await read_log(client, keys, after=1) == []
    batch[520] = event()
    batch.append(retraction(batch[0]["event_id"]))
    response = await client.post("/v1/events", json={"events": batch}, headers=keys.reporter)
    assert response.status == 201, await response.text()
    assert [e["type"] for e in await read_log(client, keys, after=1)][-1] == "event_retracted"


async def test_a_batch_where_one_event_names_an_unknown_campaign_stores_none(client: TestClient,
                                                                            keys: Keys) -> None:
    batch = [event(), event(campaign="2099", occurred_at="2099-09-08T10:00:00+08:00"), event()]
    response = await client.post("/v1/events", json={"events": batch}, headers=keys.reporter)
    body = await expect_problem(response, 422, "validation-failed")
    assert [(e["index"], e["loc"]) for e in body["errors"]] == [(1, ["campaign"])]
    assert "2099" in body["errors"][0]["msg"]
    assert await read_log(client, keys, after=1) == []


async def test_an_event_outside_the_campaign_window_is_422(client: TestClient, keys: Keys) -> None:
    for occurred_at in ("2017-08-31T23:59:59+08:00", "2017-10-01T00:00:00+08:00", "2017-08-31T15:59:59+00:00",
                        "2016-09-08T10:00:00+08:00"):
        response = await client.post("/v1/events", json=event(occurred_at=occurred_at), headers=keys.reporter)
        body = await expect_problem(response, 422, "validation-failed", occurred_at)
        assert [(e["index"], e["loc"]) for e in body["errors"]] == [(0, ["occurred_at"])]
    assert await read_log(client, keys, after=1) == []


async def test_the_edges_of_the_campaign_window_are_inside(client: TestClient, keys: Keys) -> None:
    """The window is whole days in China Standard Time, whatever offset the client writes."""
    for occurred_at in ("2017-09-01T00:00:00+08:00", "2017-09-30T23:59:59+08:00", "2017-08-31T16:00:00Z"):
        response = await client.post("/v1/events", json=event(occurred_at=occurred_at), headers=keys.reporter)
        assert response.status == 201, (occurred_at, await response.text())


_RAID = {"dens_busted": 1, "personnel": 1, "vehicles": 1, "cases": 1, "seized_value_yuan": "1", "category": "liquor"}
INVALID: list[tuple[dict[str, Any], list[str]]] = [
    ({"occurred_at": "2017-09-08T10:00:00"}, ["occurred_at"]),
    ({"event_id": "not-a-uuid"}, ["event_id"]),
    ({"type": "parade_held"}, ["type"]),
    ({"schema_version": 2}, ["schema_version"]),
    ({"region": "990000"}, ["region"]),
    ({"data": _RAID | {"dens_busted": 1.5}}, ["data", "dens_busted"]),
    ({"data": _RAID | {"personnel": True}}, ["data", "personnel"]),
    ({"data": _RAID | {"seized_value_yuan": "1.005"}}, ["data", "seized_value_yuan"]),
    ({"data": {k: v for k, v in _RAID.items() if k != "cases"}}, ["data", "cases"]),
    ({"recorded_at": "2017-09-08T10:00:00+08:00"}, ["recorded_at"]),
]


async def test_an_invalid_event_is_422_naming_the_field(client: TestClient, keys: Keys) -> None:
    for change, loc in INVALID:
        sent = event() | change
        response = await client.post("/v1/events", json=sent, headers=keys.reporter)
        body = await expect_problem(response, 422, "validation-failed", change)
        assert [(e["index"], e["loc"]) for e in body["errors"]] == [(0, loc)], change
    assert await read_log(client, keys, after=1) == []


async def test_an_empty_batch_is_422(client: TestClient, keys: Keys) -> None:
    response = await client.post("/v1/events", json={"events": []}, headers=keys.reporter)
    await expect_problem(response, 422, "validation-failed")


async def test_a_supplied_request_id_is_echoed_and_recorded(client: TestClient, keys: Keys) -> None:
    rid = f"zj-gateway:{uuid.uuid4().hex}"
    sent = event()
    response = await client.post("/v1/events", json=sent, headers=keys.reporter | {"X-Request-ID": rid})
    assert response.status == 201
    assert response.headers["X-Request-ID"] == rid
    (stored,) = await read_log(client, keys, after=1)
    assert stored["request_id"] == rid


async def test_a_request_id_is_generated_when_absent_or_unusable(client: TestClient, keys: Keys) -> None:
    plain = event()
    response = await client.post("/v1/events", json=plain, headers=keys.reporter)
    generated = response.headers["X-Request-ID"]
    assert generated
    hostile = event()
    response = await client.post("/v1/events", json=hostile, headers=keys.reporter | {
        "X-Request-ID": "bad id with spaces"})
    replaced = response.headers["X-Request-ID"]
    assert replaced not in ("bad id with spaces", generated)
    stored = {e["event_id"]: e["request_id"] for e in await read_log(client, keys, after=1)}
    assert stored == {plain["event_id"]: generated, hostile["event_id"]: replaced}


async def test_an_error_carries_the_request_id(client: TestClient, keys: Keys) -> None:
    response = await client.post("/v1/events", data=b"{", headers=keys.reporter | {
        "Content-Type": "application/json", "X-Request-ID": "trace-400"})
    body = await expect_problem(response, 400, "malformed-json")
    assert body["request_id"] == "trace-400"


async def test_occurred_at_may_lead_the_server_clock_only_by_the_configured_skew(client: TestClient, keys: Keys,
                                                                               database: Database) -> None:
    today = datetime.now(CHINA).date()
    live = {"id": "live", "theme": "质量月 (this month)", "starts_on": (today - timedelta(days=1)).isoformat(),
            "ends_on": (today + timedelta(days=1)).isoformat()}
    assert (await client.post("/v1/campaigns", json=live, headers=keys.admin)).status == 201

    def at(minutes_ahead: int) -> dict[str, Any]:
        when = datetime.now(CHINA) + timedelta(minutes=minutes_ahead)
        return event(campaign="live", occurred_at=when.isoformat(timespec="seconds"))

    assert (await client.post("/v1/events", json=at(1), headers=keys.reporter)).status == 201
    ahead = at(30)
    body = await expect_problem(await client.post("/v1/events", json=ahead, headers=keys.reporter), 422,
                                "validation-failed")
    assert [e["loc"] for e in body["errors"]] == [["occurred_at"]]
    assert "future" in body["errors"][0]["msg"]

    lenient = create_app(app_settings(clock_skew_seconds=3600), database.service_url)
    async with TestClient(TestServer(lenient)) as other:
        response = await other.post("/v1/events", json=ahead, headers=keys.reporter)
        assert response.status == 201, await response.text()


async def test_concurrent_requests_get_distinct_gapless_positions(client: TestClient, keys: Keys) -> None:
    batches = [[event() for _ in range(3)] for _ in range(12)]
    responses = await asyncio.gather(*(client.post("/v1/events", json={"events": b}, headers=keys.reporter)
                                       for b in batches))
    assert [r.status for r in responses] == [201] * 12
    bodies = [await r.json() for r in responses]
    positions = sorted(r["position"] for body in bodies for r in body["results"])
    assert positions == list(range(2, 2 + 36))
    log = await read_log(client, keys)
    assert [e["position"] for e in log] == list(range(1, 38))


async def test_concurrent_retries_of_one_event_store_it_once(client: TestClient, keys: Keys) -> None:
    sent = event()
    responses = await asyncio.gather(*(client.post("/v1/events", json=sent, headers=keys.reporter)
                                       for _ in range(10)))
    bodies = [await r.json() for r in responses]
    assert sorted(r.status for r in responses) == [200] * 9 + [201]
    assert {b["results"][0]["position"] for b in bodies} == {2}
    assert [b["results"][0]["status"] for b in bodies].count("created") == 1
    assert len(await read_log(client, keys, after=1)) == 1
