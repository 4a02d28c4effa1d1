"""Who may do what: bearer keys (401), roles and region scopes (403), revocation, rate limits (429)."""

from collections.abc import AsyncIterator

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from events.key_store import revoke_key
from services.app import create_app
from services.appkeys import LIMITER
from services.keyring import create_key
from services.ratelimit import RateLimiter
from tests.conftest import Database, Keys
from tests.conftest import test_settings as app_settings
from tests.e2e.wire import answers, eventually, expect_problem, read_log
from tests.factories import CAMPAIGN, event

pytestmark = pytest.mark.usefixtures("campaign")


async def test_posting_without_a_valid_key_is_401(client: TestClient, keys: Keys) -> None:
    for authorization in (None, "", "Bearer", "Bearer ", "Bearer garbage", "Basic dXNlcjpwYXNz",
                          "Bearer qm.000000000000.not-a-real-secret"):
        headers = {} if authorization is None else {"Authorization": authorization}
        response = await client.post("/v1/events", json=event(), headers=headers)
        await expect_problem(response, 401, "unauthenticated", authorization)
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert await read_log(client, keys, after=1) == []


async def test_a_known_key_id_with_a_wrong_secret_is_401(client: TestClient, keys: Keys) -> None:
    token = keys.reporter["Authorization"].removeprefix("Bearer ")
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    response = await client.post("/v1/events", json=event(), headers={"Authorization": f"Bearer {forged}"})
    await expect_problem(response, 401, "unauthenticated")


async def test_a_revoked_key_is_refused_as_soon_as_the_service_hears_of_it(client: TestClient, keys: Keys,
                                                            admin_conn: asyncpg.Connection) -> None:
    before = await client.post("/v1/events", json=event(), headers=keys.reporter)
    assert before.status == 201
    assert await revoke_key(admin_conn, keys.ids["reporter"])
    # The service drops its cached keys when the NOTIFY arrives; that takes a few milliseconds after the
    # revoking transaction commits, so a request racing it may still pass. Wait for it, boundedly.
    await eventually(answers(client, keys.reporter, 401))
    sent = event()
    response = await client.post("/v1/events", json=sent, headers=keys.reporter)
    await expect_problem(response, 401, "unauthenticated")
    assert sent["event_id"] not in {e["event_id"] for e in await read_log(client, keys)}
    others = await client.get("/v1/events", headers=keys.auditor)
    assert others.status == 200


async def test_a_key_created_while_the_service_runs_works_at_once(client: TestClient, keys: Keys,
                                                                  admin_conn: asyncpg.Connection) -> None:
    warm = await client.get("/v1/catalogue", headers=keys.viewer)  # the key cache is loaded and live
    assert warm.status == 200
    _key, token = await create_key(admin_conn, name="Guangdong gateway", role="reporter", region="440000")
    await eventually(answers(client, {"Authorization": f"Bearer {token}"}, 200))
    response = await client.post("/v1/events", json=event(region="440103"),
                                 headers={"Authorization": f"Bearer {token}"})
    assert response.status == 201, await response.text()


async def test_a_reporter_may_not_post_outside_its_region(client: TestClient, keys: Keys) -> None:
    inside, outside = event(region="330100"), event(region="440000")
    response = await client.post("/v1/events", json={"events": [inside, outside]}, headers=keys.reporter)
    body = await expect_problem(response, 403, "forbidden")
    assert "440000" in body["detail"]
    assert "330000" in body["detail"]
    assert await read_log(client, keys, after=1) == []


async def test_a_reporter_may_not_post_for_the_nation(client: TestClient, keys: Keys) -> None:
    response = await client.post("/v1/events", json=event(region="000000"), headers=keys.reporter)
    await expect_problem(response, 403, "forbidden")


async def test_readers_may_not_post_events(client: TestClient, keys: Keys) -> None:
    for role in ("viewer", "auditor"):
        response = await client.post("/v1/events", json=event(), headers=getattr(keys, role))
        body = await expect_problem(response, 403, "forbidden", role)
        assert role in body["detail"]
    assert await read_log(client, keys, after=1) == []


async def test_a_reporter_may_not_open_a_campaign_by_posting_the_event(client: TestClient, keys: Keys) -> None:
    opened = event(campaign="2018", region="000000", occurred_at="2018-08-01T00:00:00+08:00") | {
        "type": "campaign_opened",
        "data": {"id": "2018", "theme": "x", "starts_on": "2018-09-01", "ends_on": "2018-09-30"}}
    response = await client.post("/v1/events", json=opened, headers=keys.reporter)
    body = await expect_problem(response, 403, "forbidden")
    assert "campaign_opened" in body["detail"]
    listed = await client.get("/v1/campaigns/2018", headers=keys.viewer)
    assert listed.status == 404


async def test_an_admin_may_post_for_any_region(client: TestClient, keys: Keys) -> None:
    response = await client.post("/v1/events", json=event(region="440103"), headers=keys.admin)
    assert response.status == 201
    (stored,) = await read_log(client, keys, after=1)
    assert stored["recorded_by"] == keys.ids["admin"]


@pytest.fixture
async def slow_client(database: Database) -> AsyncIterator[TestClient]:
    """An app whose keys may send 1 request/s with bursts of 3."""
    app = create_app(app_settings(rate_limit_per_second=1, rate_limit_burst=3), database.service_url)
    async with TestClient(TestServer(app)) as client:
        yield client


async def test_a_key_over_its_rate_gets_429_with_retry_after(slow_client: TestClient, keys: Keys) -> None:
    await slow_client.post("/v1/campaigns", json=CAMPAIGN, headers=keys.admin)
    statuses = [(await slow_client.post("/v1/events", json=event(), headers=keys.reporter)).status
                for _ in range(3)]
    assert statuses == [201, 201, 201]
    sent = event()
    response = await slow_client.post("/v1/events", json=sent, headers=keys.reporter)
    await expect_problem(response, 429, "rate-limited")
    assert int(response.headers["Retry-After"]) >= 1
    # The budget is per key: another key is not held back, and nothing of the refused request was stored.
    page = await slow_client.get("/v1/events", headers=keys.auditor)
    assert page.status == 200
    assert sent["event_id"] not in {e["event_id"] for e in (await page.json())["events"]}


async def test_a_limited_key_recovers_after_retry_after(database: Database, keys: Keys) -> None:
    now = [1000.0]
    app = create_app(app_settings(rate_limit_per_second=1, rate_limit_burst=3), database.service_url)
    app[LIMITER] = RateLimiter(1, 3, clock=lambda: now[0])
    async with TestClient(TestServer(app)) as client:
        for _ in range(3):
            assert (await client.get("/v1/catalogue", headers=keys.viewer)).status == 200
        limited = await client.get("/v1/catalogue", headers=keys.viewer)
        await expect_problem(limited, 429, "rate-limited")
        now[0] += int(limited.headers["Retry-After"])
        assert (await client.get("/v1/catalogue", headers=keys.viewer)).status == 200
        again = await client.get("/v1/catalogue", headers=keys.viewer)
        await expect_problem(again, 429, "rate-limited")


async def test_open_routes_are_not_rate_limited(slow_client: TestClient) -> None:
    statuses = {(await slow_client.get("/healthz")).status for _ in range(6)}
    assert statuses == {200}
