"""GET /v1/stream: a Server-Sent Event each time the projection advances, id = its position; a client
that reconnects with Last-Event-ID gets what it missed at once, or nothing until the next advance."""

import asyncio
import json
from typing import Any

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

from tests.conftest import Keys
from tests.e2e.wire import expect_problem
from tests.factories import event
from tests.projection_support import post_events, settled

pytestmark = pytest.mark.usefixtures("campaign")


async def next_message(stream: ClientResponse, within: float = 10.0) -> dict[str, Any]:
    """The next SSE message (comment lines such as pings are skipped); TimeoutError if none comes."""
    fields: dict[str, Any] = {}
    async with asyncio.timeout(within):
        while True:
            line = (await stream.content.readline()).decode()
            assert line, "the server closed the stream"
            line = line.rstrip("\r\n")
            if not line:
                if fields:
                    fields["data"] = json.loads(fields["data"])
                    return fields
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")


async def open_stream(client: TestClient, headers: dict[str, str]) -> ClientResponse:
    response = await client.get("/v1/stream", headers=headers)
    assert response.status == 200, await response.text()
    assert response.content_type == "text/event-stream"
    assert response.headers["Cache-Control"] == "no-cache"
    return response


async def test_each_advance_of_the_projection_is_sent_with_its_position_as_id(client: TestClient,
                                                                              keys: Keys) -> None:
    await settled(client, keys.viewer, 1)
    stream = await open_stream(client, keys.viewer)
    try:
        first = await next_message(stream)
        assert (first["event"], first["id"], first["data"]["position"]) == ("projection", "1", 1)
        seen = [1]
        for count in (1, 3, 2):
            head = await post_events(client, keys.reporter, [event() for _ in range(count)])
            while seen[-1] < head:
                message = await next_message(stream)
                assert int(message["id"]) == message["data"]["position"]
                seen.append(int(message["id"]))
            assert seen[-1] == head
        assert seen == sorted(set(seen)), f"ids must only increase: {seen}"
        assert seen[-1] == 7
    finally:
        stream.close()


async def test_a_client_reconnecting_with_an_older_id_gets_the_current_position_at_once(
        client: TestClient, keys: Keys) -> None:
    head = await post_events(client, keys.reporter, [event(), event("pledge_signed")])
    await settled(client, keys.viewer, head)
    stream = await open_stream(client, keys.auditor | {"Last-Event-ID": "1"})
    try:
        message = await next_message(stream)
        assert (message["id"], message["data"]["position"], message["data"]["lag_events"]) == (str(head), head, 0)
    finally:
        stream.close()


async def test_a_client_reconnecting_with_the_current_id_waits_for_the_next_advance(client: TestClient,
                                                                                     keys: Keys) -> None:
    head = await post_events(client, keys.reporter, [event()])
    await settled(client, keys.viewer, head)
    stream = await open_stream(client, keys.admin | {"Last-Event-ID": str(head)})
    try:
        with pytest.raises(TimeoutError):
            await next_message(stream, within=1.0)
        newer = await post_events(client, keys.reporter, [event("media_reported")])
        message = await next_message(stream)
        assert (message["id"], message["data"]["position"]) == (str(newer), newer)
    finally:
        stream.close()


async def test_the_stream_is_for_viewers_auditors_and_admins(client: TestClient, keys: Keys) -> None:
    await expect_problem(await client.get("/v1/stream", headers=keys.reporter), 403, "forbidden")
    await expect_problem(await client.get("/v1/stream"), 401, "unauthenticated")


async def test_min_position_on_the_stream_is_checked_like_on_every_read_route(client: TestClient, keys: Keys) -> None:
    head = await post_events(client, keys.reporter, [event()])
    await settled(client, keys.viewer, head)
    # Beyond the log: 422 at once (no stream that can only ever stay silent), as on every other read route.
    await expect_problem(await client.get(f"/v1/stream?min_position={head + 50}", headers=keys.viewer), 422,
                         "invalid-parameter")
    # Up to the head (a POST's last_position): the stream opens and starts there.
    stream = await client.get(f"/v1/stream?min_position={head}", headers=keys.viewer)
    assert stream.status == 200
    try:
        assert int((await next_message(stream))["id"]) == head
    finally:
        stream.close()
