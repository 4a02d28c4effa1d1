"""What the e2e tests expect on the wire: problem+json errors and the log as an auditor reads it."""

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

from tests.conftest import Keys

PROBLEM = "application/problem+json"


async def expect_problem(response: ClientResponse, status: int, slug: str, case: object = "") -> dict[str, Any]:
    """Assert an RFC 9457 problem of the given status and stable type; return its body."""
    text = await response.text()
    assert response.status == status, f"{case}: expected {status} {slug}, got {response.status}: {text}"
    assert response.content_type == PROBLEM, f"{case}: {response.content_type}"
    body: dict[str, Any] = await response.json(content_type=PROBLEM)
    assert body["type"] == f"urn:qmstats:problem:{slug}", f"{case}: {body}"
    assert body["status"] == status
    assert isinstance(body["detail"], str)
    assert body["detail"]
    assert isinstance(body["title"], str)
    assert body["title"]
    assert body["request_id"] == response.headers["X-Request-ID"]
    return body


async def read_log(client: TestClient, keys: Keys, *, after: int = 0, **query: str) -> list[dict[str, Any]]:
    """Every event of the log after ``after`` (filtered by ``query``), read as an auditor page by page."""
    events: list[dict[str, Any]] = []
    while True:
        response = await client.get("/v1/events", params={**query, "after": after}, headers=keys.auditor)
        assert response.status == 200, await response.text()
        page = await response.json()
        events.extend(page["events"])
        if page["next_after"] == after:
            return events
        after = page["next_after"]


async def stored_ids(client: TestClient, keys: Keys) -> set[str]:
    """The event_ids the log holds."""
    return {e["event_id"] for e in await read_log(client, keys)}


async def eventually(probe: Callable[[], Awaitable[bool]], *, seconds: float = 2.0, every: float = 0.005) -> None:
    """Wait until ``probe()`` holds, for at most ``seconds`` (for changes that reach the service asynchronously)."""
    for _ in range(int(seconds / every) + 1):
        if await probe():
            return
        await asyncio.sleep(every)
    raise AssertionError(f"still not true after {seconds} s")


def answers(client: TestClient, headers: dict[str, str], status: int) -> Callable[[], Awaitable[bool]]:
    """A probe: does GET /v1/catalogue (no side effects) with ``headers`` answer ``status``?"""
    async def probe() -> bool:
        return (await client.get("/v1/catalogue", headers=headers)).status == status
    return probe


async def logged(client: TestClient, headers: dict[str, str], position: int, *, seconds: float = 15.0) -> str:
    """Wait until a signed log checkpoint covers ``position``; returns that checkpoint (the signed note)."""
    async with asyncio.timeout(seconds):
        while True:
            response = await client.get("/v1/log/checkpoint", headers=headers)
            if response.status == 200:
                note = await response.text()
                if int(note.split("\n")[1]) >= position:
                    return note
            await asyncio.sleep(0.02)
