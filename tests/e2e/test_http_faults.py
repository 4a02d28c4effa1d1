"""Issue 12, over HTTP: faults found by replaying public bug reports against `qmstats serve`."""

import asyncio
import uuid

import asyncpg
from aiohttp.test_utils import TestClient

from tests.conftest import Keys
from tests.e2e.wire import expect_problem
from tests.factories import CAMPAIGN, event

OPENING = {"id": "c1", "theme": "质量月", "starts_on": "2017-09-01", "ends_on": "2017-09-30"}


async def test_identical_campaign_requests_in_flight_together_are_one_write_and_retries(
        client: TestClient, keys: Keys, admin_conn: asyncpg.Connection) -> None:
    async def post(path: str, body: dict[str, str]) -> tuple[int, int]:
        response = await client.post(path, json=body, headers=keys.admin)
        assert response.status in (200, 201), await response.text()
        return response.status, (await response.json())["event"]["position"]

    opened = await asyncio.gather(*(post("/v1/campaigns", OPENING) for _ in range(4)))
    assert sorted(status for status, _ in opened) == [200, 200, 200, 201]
    assert {position for _, position in opened} == {1}

    close = {"event_id": str(uuid.uuid4()), "note": "done"}
    closed = await asyncio.gather(*(post("/v1/campaigns/c1/close", close) for _ in range(3)))
    assert sorted(status for status, _ in closed) == [200, 200, 201]
    assert {position for _, position in closed} == {2}
    reopen = {"event_id": str(uuid.uuid4()), "note": "late reports"}
    reopened = await asyncio.gather(*(post("/v1/campaigns/c1/reopen", reopen) for _ in range(3)))
    assert sorted(status for status, _ in reopened) == [200, 200, 201]
    assert await admin_conn.fetchval("SELECT count(*) FROM events") == 3

    different = await client.post("/v1/campaigns", json=OPENING | {"theme": "另一个"}, headers=keys.admin)
    await expect_problem(different, 409, "campaign-conflict")


async def test_a_422_says_how_many_events_are_invalid_and_why(client: TestClient, keys: Keys) -> None:
    assert (await client.post("/v1/campaigns", json=CAMPAIGN, headers=keys.admin)).status == 201
    bad = event(data={"dens_busted": -1, "personnel": "x", "vehicles": 1.5, "cases": None,
                      "seized_value_yuan": "1.234", "category": "", "extra": 1})
    worse = event(region="3301", occurred_at="yesterday")
    response = await client.post("/v1/events", json={"events": [event(), bad, worse]}, headers=keys.reporter)
    body = await expect_problem(response, 422, "validation-failed")
    errors = body["errors"]
    assert len({e["index"] for e in errors}) == 2 and len(errors) > 2
    assert body["detail"].startswith(f"2 invalid events ({len(errors)} errors); nothing was stored. First: item 1 ")

    window = await client.post("/v1/campaigns", json=OPENING | {"starts_on": "2017-09-30", "ends_on": "2017-09-01"},
                               headers=keys.admin)
    body = await expect_problem(window, 422, "validation-failed")
    assert "ends_on is before starts_on" in body["detail"]
