"""A client that trickles its body gets 408 after the body-read timeout; everyone else is served meanwhile."""

import asyncio
import json
import time
from collections.abc import AsyncIterator

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from services.app import create_app
from tests.conftest import Database, Keys
from tests.conftest import test_settings as app_settings
from tests.e2e.wire import read_log
from tests.factories import CAMPAIGN, event

BODY_TIMEOUT = 1.0
SLOW_CLIENTS = 20


@pytest.fixture
async def impatient(database: Database) -> AsyncIterator[TestClient]:
    """The service with a 1 s body-read timeout, listening on 127.0.0.1."""
    app = create_app(app_settings(body_timeout_seconds=BODY_TIMEOUT), database.service_url)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        yield client


async def trickle(client: TestClient, path: str, headers: dict[str, str], body: bytes,
                  every: float = 0.3) -> tuple[int, dict[str, str], bytes, float]:
    """Send the headers, then the body a byte every ``every`` s; return the answer and when it came."""
    assert client.server.port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", client.server.port)
    head = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json",
            f"Content-Length: {len(body)}", *(f"{k}: {v}" for k, v in headers.items())]
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode())
    await writer.drain()
    started = time.monotonic()

    async def drip() -> None:
        for byte in body:
            await asyncio.sleep(every)
            writer.write(bytes([byte]))
            await writer.drain()

    dripping = asyncio.create_task(drip())
    try:
        async with asyncio.timeout(BODY_TIMEOUT + 5):
            status_line = await reader.readline()
            raw_headers = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            answered = time.monotonic() - started
            fields = dict(line.split(": ", 1) for line in raw_headers.strip().split("\r\n"))
            payload = await reader.readexactly(int(fields["Content-Length"]))
    finally:
        dripping.cancel()
        writer.close()
    return int(status_line.split()[1]), fields, payload, answered


@pytest.mark.slow
async def test_slow_bodies_get_408_while_other_clients_are_served(impatient: TestClient, keys: Keys) -> None:
    assert (await impatient.post("/v1/campaigns", json=CAMPAIGN, headers=keys.admin)).status == 201
    slow_events = [event() for _ in range(SLOW_CLIENTS)]
    slow = [asyncio.create_task(trickle(impatient, "/v1/events", keys.reporter, orjson.dumps(e)))
            for e in slow_events]
    slow.append(asyncio.create_task(trickle(impatient, "/v1/campaigns", keys.admin, orjson.dumps(CAMPAIGN))))

    # Meanwhile a well-behaved reporter is served as usual, for as long as the slow ones keep sending.
    fast_events: list[dict[str, object]] = []
    latencies: list[float] = []
    while not all(task.done() for task in slow):
        sent = event(region="330106")
        started = time.monotonic()
        response = await impatient.post("/v1/events", json=sent, headers=keys.reporter)
        latencies.append(time.monotonic() - started)
        assert response.status == 201, await response.text()
        fast_events.append(sent)
    assert len(fast_events) >= 10
    assert max(latencies) < BODY_TIMEOUT, latencies  # nobody waited for the slow clients' timeout

    for status, headers, payload, answered in await asyncio.gather(*slow):
        assert status == 408
        assert headers["Content-Type"].startswith("application/problem+json")
        problem = json.loads(payload)
        assert problem["type"] == "urn:qmstats:problem:request-timeout"
        assert str(BODY_TIMEOUT).rstrip("0").rstrip(".") in problem["detail"]
        assert BODY_TIMEOUT <= answered < BODY_TIMEOUT + 2

    stored = {e["event_id"] for e in await read_log(impatient, keys, after=1)}
    assert stored == {e["event_id"] for e in fast_events}


async def test_an_unauthenticated_slow_body_is_refused_without_waiting_for_it(impatient: TestClient) -> None:
    status, _headers, payload, answered = await trickle(impatient, "/v1/events", {}, orjson.dumps(event()))
    assert status == 401
    assert json.loads(payload)["type"] == "urn:qmstats:problem:unauthenticated"
    assert answered < BODY_TIMEOUT
