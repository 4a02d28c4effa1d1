"""Repeated polls answered before the middleware chain: the same answers as the full path, the key still
checked (role, revocation, rate), nothing answered once the projection or the log head has moved; the
access log of the full path."""

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer
from structlog.testing import capture_logs

from events.key_store import revoke_key
from services.app import create_app
from services.appkeys import TELEMETRY
from tests.conftest import Database, Keys
from tests.conftest import test_settings as app_settings
from tests.e2e.wire import answers, eventually
from tests.factories import event
from tests.projection_support import post_events, settled

pytestmark = pytest.mark.usefixtures("campaign")
URL = "/v1/campaigns/2017/dashboard?region=330000"


def handled_by_the_full_path(client: TestClient) -> float:
    """Requests that went through the middleware chain to the dashboard handler (the access-logged ones)."""
    counter = client.server.app[TELEMETRY].http_requests
    return sum(sample.value for metric in counter.collect() for sample in metric.samples
               if sample.name.endswith("_total") and sample.labels["route"].endswith("/dashboard"))


async def test_a_repeated_poll_is_answered_from_memory_with_the_same_answer(client: TestClient, keys: Keys) -> None:
    head = await post_events(client, keys.reporter, [event()])
    await settled(client, keys.viewer, head)
    first = await client.get(URL, headers=keys.viewer)
    assert first.status == 200
    body, etag = await first.read(), first.headers["ETag"]
    assert (await client.get("/v1/catalogue", headers=keys.auditor)).status == 200  # the auditor's key, verified
    full = handled_by_the_full_path(client)

    again = await client.get(URL, headers={**keys.viewer, "X-Request-ID": "poll-1"})
    assert (again.status, await again.read(), again.headers["ETag"]) == (200, body, etag)
    assert again.headers["X-Request-ID"] == "poll-1"
    assert again.content_type == "application/json"
    unchanged = await client.get(URL, headers={**keys.auditor, "If-None-Match": etag})
    assert (unchanged.status, unchanged.headers["ETag"], unchanged.headers["Cache-Control"]) == (
        304, etag, "no-cache")
    assert unchanged.headers["X-Request-ID"]
    assert handled_by_the_full_path(client) == full, "both answered before the middleware chain"

    # A new event moves the log head and then the projection: the stored answer is no longer given.
    head = await post_events(client, keys.reporter, [event()])
    await settled(client, keys.viewer, head)
    moved = await client.get(URL, headers={**keys.viewer, "If-None-Match": etag})
    assert moved.status == 200
    assert (await moved.json())["position"] == head
    assert moved.headers["ETag"] != etag


async def test_a_stored_answer_still_needs_a_key_that_may_read_it(client: TestClient, keys: Keys,
                                                                  admin_conn: asyncpg.Connection) -> None:
    await settled(client, keys.viewer, 1)
    first = await client.get(URL, headers=keys.viewer)
    assert first.status == 200
    etag = first.headers["ETag"]
    assert (await client.get(URL, headers=keys.reporter)).status == 403
    assert (await client.get(URL)).status == 401
    assert (await client.get(URL, headers={"Authorization": "Bearer qm.000000000000.nope"})).status == 401
    assert await revoke_key(admin_conn, keys.ids["viewer"])
    await eventually(answers(client, keys.viewer, 401))
    refused = await client.get(URL, headers={**keys.viewer, "If-None-Match": etag})
    assert refused.status == 401


@pytest.mark.parametrize(("level", "lines"), [("info", 1), ("warning", 0)])
async def test_the_access_log_has_one_line_per_request_unless_its_level_is_filtered(
        database: Database, keys: Keys, level: str, lines: int) -> None:
    app = create_app(app_settings(log_level=level), database.service_url)
    async with TestClient(TestServer(app)) as fresh:
        with capture_logs() as logged:
            assert (await fresh.get("/v1/catalogue", headers=keys.viewer)).status == 200
    assert [e["route"] for e in logged if e["event"] == "request"] == ["/v1/catalogue"] * lines
