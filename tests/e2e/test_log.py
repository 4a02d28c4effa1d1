"""GET /v1/events as an auditor replays it: pages, filters, NDJSON, provenance and the hash chain."""

import itertools

import orjson
import pytest
from aiohttp.test_utils import TestClient

from events.records import from_exported
from tests.conftest import Keys
from tests.e2e.wire import expect_problem, read_log
from tests.factories import event

pytestmark = pytest.mark.usefixtures("campaign")

ZERO_HASH = "0" * 64


async def _post(client: TestClient, keys: Keys, *events: dict[str, object], as_admin: bool = False) -> None:
    response = await client.post("/v1/events", json={"events": list(events)},
                                 headers=keys.admin if as_admin else keys.reporter)
    assert response.status == 201, await response.text()


async def test_only_auditors_and_admins_read_the_log(client: TestClient, keys: Keys) -> None:
    for role in ("auditor", "admin"):
        response = await client.get("/v1/events", headers=getattr(keys, role))
        assert response.status == 200, role
    for role in ("viewer", "reporter"):
        response = await client.get("/v1/events", headers=getattr(keys, role))
        await expect_problem(response, 403, "forbidden", role)
    await expect_problem(await client.get("/v1/events"), 401, "unauthenticated")


async def test_pages_follow_next_after_in_position_order(client: TestClient, keys: Keys) -> None:
    await _post(client, keys, *[event() for _ in range(7)])
    seen: list[int] = []
    after, pages = 0, 0
    while True:
        response = await client.get("/v1/events", params={"after": after, "limit": 3}, headers=keys.auditor)
        page = await response.json()
        if not page["events"]:
            assert page["next_after"] == after
            break
        assert len(page["events"]) <= 3
        seen.extend(e["position"] for e in page["events"])
        assert page["next_after"] == page["events"][-1]["position"]
        after, pages = page["next_after"], pages + 1
    assert seen == list(range(1, 9))
    assert pages == 3


async def test_limit_must_be_an_integer_from_1_to_10000(client: TestClient, keys: Keys) -> None:
    for limit in ("0", "10001", "x", "-1", "1.5"):
        response = await client.get("/v1/events", params={"limit": limit}, headers=keys.auditor)
        body = await expect_problem(response, 422, "invalid-parameter", limit)
        assert "limit" in body["detail"]
    for query in ({"after": "-1"}, {"after": "y"}, {"region": "33"}, {"region": "990000"},
                  {"type": "parade_held"}):
        response = await client.get("/v1/events", params=query, headers=keys.auditor)
        await expect_problem(response, 422, "invalid-parameter", query)
    for limit in ("1", "10000"):
        assert (await client.get("/v1/events", params={"limit": limit}, headers=keys.auditor)).status == 200


async def test_filters_by_campaign_type_and_region_subtree(client: TestClient, keys: Keys) -> None:
    opened = await client.post("/v1/campaigns", headers=keys.admin, json={
        "id": "2018", "theme": "质量第一", "starts_on": "2018-09-01", "ends_on": "2018-09-30"})
    assert opened.status == 201
    hangzhou = event(region="330102")
    zhejiang = event("publicity_held", region="330000")
    ningbo = event("publicity_held", region="330203")
    guangzhou = event(region="440103")
    next_year = event(region="330102", campaign="2018", occurred_at="2018-09-03T09:00:00+08:00")
    await _post(client, keys, hangzhou, zhejiang, ningbo, next_year)
    await _post(client, keys, guangzhou, as_admin=True)

    async def ids(**query: str) -> list[str]:
        return [e["event_id"] for e in await read_log(client, keys, **query)]

    assert await ids(region="330000") == [hangzhou["event_id"], zhejiang["event_id"], ningbo["event_id"],
                                          next_year["event_id"]]
    assert await ids(region="330100") == [hangzhou["event_id"], next_year["event_id"]]
    assert await ids(region="330102", campaign="2017") == [hangzhou["event_id"]]
    assert await ids(region="440000") == [guangzhou["event_id"]]
    assert await ids(type="publicity_held") == [zhejiang["event_id"], ningbo["event_id"]]
    assert await ids(campaign="2018", type="raid_conducted") == [next_year["event_id"]]
    assert len(await ids(type="campaign_opened")) == 2
    assert len(await ids(region="000000")) == 7
    assert await ids(campaign="1999") == []


async def test_ndjson_streams_one_event_per_line_in_position_order(client: TestClient, keys: Keys) -> None:
    sent = [event() for _ in range(5)]
    await _post(client, keys, *sent)
    response = await client.get("/v1/events", headers=keys.auditor | {"Accept": "application/x-ndjson"})
    assert response.status == 200
    assert response.content_type == "application/x-ndjson"
    raw = await response.read()
    assert raw.endswith(b"\n")
    lines = [orjson.loads(line) for line in raw.splitlines()]
    assert [e["position"] for e in lines] == [1, 2, 3, 4, 5, 6]
    assert [e["event_id"] for e in lines[1:]] == [e["event_id"] for e in sent]
    assert lines == await read_log(client, keys)

    filtered = await client.get("/v1/events", params={"after": 3, "type": "raid_conducted"},
                                headers=keys.auditor | {"Accept": "application/x-ndjson"})
    assert [orjson.loads(line)["position"] for line in (await filtered.read()).splitlines()] == [4, 5, 6]


async def test_every_event_carries_its_provenance(client: TestClient, keys: Keys) -> None:
    sent = event()
    await client.post("/v1/events", json=sent, headers=keys.reporter | {"X-Request-ID": "zj-0001"})
    opened, stored = await read_log(client, keys)
    assert opened["type"] == "campaign_opened"
    assert opened["recorded_by"] == keys.ids["admin"]
    assert stored["recorded_by"] == keys.ids["reporter"]
    assert stored["request_id"] == "zj-0001"
    for e in (opened, stored):
        assert set(e) >= {"position", "event_id", "type", "schema_version", "campaign", "region", "occurred_at",
                          "recorded_at", "recorded_by", "request_id", "data", "prev_hash", "hash"}
        assert e["recorded_at"].endswith("Z") or "+" in e["recorded_at"]
    assert stored["occurred_at"].startswith("2017-09-08T02:00:00")  # stored in UTC
    assert stored["data"] == sent["data"]


async def test_the_hash_chain_links_every_event_to_the_one_before(client: TestClient, keys: Keys) -> None:
    await _post(client, keys, event(), event("inspection_completed"))
    await _post(client, keys, event("media_reported", region="330300"))
    log = await read_log(client, keys)
    assert [e["position"] for e in log] == [1, 2, 3, 4]
    assert log[0]["prev_hash"] == ZERO_HASH
    for earlier, later in itertools.pairwise(log):
        assert later["prev_hash"] == earlier["hash"]
    hashes = [e["hash"] for e in log]
    assert len(set(hashes)) == len(hashes)
    # An auditor recomputes each hash from the exported event alone.
    assert all(from_exported(e).computed_hash().hex() == e["hash"] for e in log)
    tampered = log[2] | {"data": log[2]["data"] | {"batches_passed": 40}}
    assert from_exported(tampered).computed_hash().hex() != tampered["hash"]
