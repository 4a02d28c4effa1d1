"""Hostile bodies and headers, case by case: each gets the 4xx it deserves, none a 5xx, nothing is stored.

Complements test_append.py (truncated JSON, duplicate top-level keys, NaN/Infinity, invalid UTF-8
in the body, text/plain and form content types, a bad 1000th item's region) with what it does not try.
"""

import asyncio
import json
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import Keys
from tests.e2e.wire import expect_problem, read_log
from tests.factories import event

pytestmark = pytest.mark.usefixtures("campaign")

JSON = {"Content-Type": "application/json"}


def raid(**data: Any) -> dict[str, Any]:
    return event(data={"dens_busted": 1, "personnel": 2, "vehicles": 0, "cases": 0, "seized_value_yuan": "1.00",
                       "category": "liquor"} | data)


async def post_raw(client: TestClient, keys: Keys, body: bytes, headers: dict[str, str] | None = None) -> Any:
    return await client.post("/v1/events", data=body, headers=keys.reporter | (JSON if headers is None else headers))


def nested(depth: int, leaf: bytes = b"1") -> bytes:
    return b'{"a":' * depth + leaf + b"}" * depth


MALFORMED: dict[str, bytes] = {
    "arrays nested 100000 deep": b"[" * 100_000 + b"]" * 100_000,
    "objects nested 100000 deep": nested(100_000),
    "an event nested 100000 deep in a batch": b'{"events": [' + nested(100_000) + b"]}",
    "an integer longer than Python's int-string limit": b'{"dens_busted": ' + b"9" * 5000 + b"}",
    "that integer inside data": orjson.dumps(raid()).replace(b'"dens_busted":1', b'"dens_busted":' + b"7" * 4301),
    "-Infinity": orjson.dumps(raid()).replace(b'"dens_busted":1', b'"dens_busted":-Infinity'),
    "NaN as money": orjson.dumps(raid()).replace(b'"seized_value_yuan":"1.00"', b'"seized_value_yuan":NaN'),
    "a duplicate key inside data": orjson.dumps(raid()).replace(b'"cases":0', b'"cases":0,"cases":0'),
    "a duplicate key inside a batch item": b'{"events": [' + orjson.dumps(raid()).replace(
        b'"region":"330102"', b'"region":"330102","region":"330103"') + b"]}",
    "invalid UTF-8 inside a string of data": orjson.dumps(raid()).replace(b"liquor", b"liq\xc3\x28uor"),
    "UTF-16": orjson.dumps(raid()).decode().encode("utf-16"),
    "a UTF-8 byte-order mark": b"\xef\xbb\xbf" + orjson.dumps(raid()),
    "a raw control character inside a string": orjson.dumps(raid()).replace(b"liquor", b"liq\x01uor"),
    "two documents": orjson.dumps(raid()) + orjson.dumps(raid()),
    "a bare string": b'"raid_conducted"',
    "null": b"null",
}


async def test_malformed_bodies_are_400(client: TestClient, keys: Keys) -> None:
    for case, body in MALFORMED.items():
        await expect_problem(await post_raw(client, keys, body), 400, "malformed-json", case)
    assert await read_log(client, keys, after=1) == []


INVALID: dict[str, tuple[dict[str, Any], list[Any]]] = {
    "10^400 as a count": (raid(dens_busted=10**400), ["data", "dens_busted"]),
    "10^400 as money": (raid(seized_value_yuan=10**400), ["data", "seized_value_yuan"]),
    "a negative count": (raid(cases=-1), ["data", "cases"]),
    "a count one over the limit": (raid(personnel=1_000_000_001), ["data", "personnel"]),
    "money as 'NaN'": (raid(seized_value_yuan="NaN"), ["data", "seized_value_yuan"]),
    "money as 'Infinity'": (raid(seized_value_yuan="Infinity"), ["data", "seized_value_yuan"]),
    "money as '1e3'": (raid(seized_value_yuan="1e3"), ["data", "seized_value_yuan"]),
    "money with three decimals": (raid(seized_value_yuan="0.001"), ["data", "seized_value_yuan"]),
    "money as a negative string": (raid(seized_value_yuan="-1.00"), ["data", "seized_value_yuan"]),
    "money with a thousands separator": (raid(seized_value_yuan="1,000.00"), ["data", "seized_value_yuan"]),
    "money with full-width digits": (raid(seized_value_yuan="１２３"), ["data", "seized_value_yuan"]),
    "a NUL in a label": (raid(category="liq\x00uor"), ["data", "category"]),
    "an escape in a label": (raid(category="\x1b[31mred"), ["data", "category"]),
    "a C1 control in a label": (raid(category="a\x85b"), ["data", "category"]),
    "a 65-character label": (raid(category="x" * 65), ["data", "category"]),
    "a label nested 500 deep": (raid(category=orjson.loads(b"[" * 500 + b"]" * 500)), ["data", "category"]),
    "a NUL in the region": (event() | {"region": "33010\x00"}, ["region"]),
    "a NUL in the campaign": (event() | {"campaign": "2017\x00"}, ["campaign"]),
    "a NUL in the event_id": (event() | {"event_id": "6f1c2a4e-0d1b-4a57-9d6e-5b0f3c9a7e1\x00"}, ["event_id"]),
    "a NUL after the timestamp": (event() | {"occurred_at": "2017-09-08T10:00:00+08:00\x00"}, ["occurred_at"]),
    "the year 10000": (event() | {"occurred_at": "10000-09-08T10:00:00+08:00"}, ["occurred_at"]),
    "an SQL string as the type": (event() | {"type": "raid_conducted'; DROP TABLE events; --"}, ["type"]),
    "an object as the region": (event() | {"region": {"$gt": ""}}, ["region"]),
    "schema_version as a string": (event() | {"schema_version": "1"}, ["schema_version"]),
    "schema_version 10^400": (event() | {"schema_version": 10**400}, ["schema_version"]),
    "a list as data": (event() | {"data": [1, 2]}, ["data"]),
}


async def test_invalid_values_are_422_naming_the_field(client: TestClient, keys: Keys) -> None:
    for case, (sent, loc) in INVALID.items():
        # The standard library writes what orjson refuses to: 10^400, and nesting 500 deep.
        response = await client.post("/v1/events", data=json.dumps(sent), headers=keys.reporter | JSON)
        body = await expect_problem(response, 422, "validation-failed", case)
        assert [(e["index"], e["loc"]) for e in body["errors"]][:1] == [(0, loc)], (case, body["errors"])
    assert await read_log(client, keys, after=1) == []


LONE_SURROGATES = {
    "in a label": orjson.dumps(raid()).replace(b"liquor", b"liq\\ud800uor"),
    "as a key of the envelope": orjson.dumps(raid())[:-1] + b',"\\udc00":1}',
    "as a key of data": orjson.dumps(raid()).replace(b'"cases":0', b'"cases":0,"\\udbff":0'),
    "as a key beside events": b'{"events": [], "\\ud800": 1}',
    "as the event_id": orjson.dumps(raid() | {"event_id": "x"}).replace(b'"x"', b'"\\ud800"'),
    "as the type": orjson.dumps(raid() | {"type": "x"}).replace(b'"x"', b'"\\udfff"'),
    "as a batch item": b'{"events": ["\\ud800"]}',
}


async def test_lone_surrogate_escapes_are_refused_wherever_they_are(client: TestClient, keys: Keys) -> None:
    """Valid JSON grammar, but no Unicode text: refused (400 or 422), and the problem document is still JSON."""
    for case, body in LONE_SURROGATES.items():
        response = await post_raw(client, keys, body)
        assert response.status in (400, 422), (case, response.status, await response.text())
        problem = await response.json(content_type="application/problem+json")
        assert problem["status"] == response.status, case
    assert await read_log(client, keys, after=1) == []


async def test_a_thousand_event_batch_whose_last_item_fails_a_later_check_stores_none(client: TestClient,
                                                                                      keys: Keys) -> None:
    """The existing test fails item 999 on its region; here it fails on each other stage in turn."""
    lasts: dict[str, tuple[Any, int, str, list[Any]]] = {
        "not an object": (42, 422, "validation-failed", []),
        "a control character in its label": (raid(category="a\tb"), 422, "validation-failed", ["data", "category"]),
        "an unknown campaign (checked under the append lock)": (
            event(campaign="2099", occurred_at="2099-09-08T10:00:00+08:00"), 422, "validation-failed", ["campaign"]),
        "correcting an event that does not exist": (
            event() | {"type": "event_corrected", "data": {"corrects": "00000000-0000-4000-8000-000000000000",
                                                           "replacement": raid()["data"]}},
            422, "validation-failed", ["data", "corrects"]),
    }
    for case, (last, status, slug, loc) in lasts.items():
        batch: list[Any] = [event(region="330106") for _ in range(999)] + [last]
        response = await client.post("/v1/events", json={"events": batch}, headers=keys.reporter)
        body = await expect_problem(response, status, slug, case)
        assert [(e["index"], e["loc"]) for e in body["errors"]] == [(999, loc)], (case, body["errors"])
        if isinstance(last, dict):
            assert body["errors"][0]["event_id"] == last["event_id"]
    assert await read_log(client, keys, after=1) == []


CONTENT_TYPES_REFUSED = ("application/json; charset=utf-16", "application/jsonx", "text/json",
                         "multipart/form-data; boundary=xyz", "application/octet-stream", "json", "*/*")
CONTENT_TYPES_ACCEPTED = ("APPLICATION/JSON", 'application/json; charset="utf-8"', "application/vnd.qmstats+json",
                          "application/json; charset=utf8")


async def test_content_types(client: TestClient, keys: Keys) -> None:
    for ctype in CONTENT_TYPES_REFUSED:
        response = await post_raw(client, keys, orjson.dumps(event()), {"Content-Type": ctype})
        await expect_problem(response, 415, "unsupported-media-type", ctype)
    assert await read_log(client, keys, after=1) == []
    for ctype in CONTENT_TYPES_ACCEPTED:
        response = await post_raw(client, keys, orjson.dumps(event()), {"Content-Type": ctype})
        assert response.status == 201, (ctype, await response.text())


async def raw_exchange(client: TestClient, request: bytes) -> tuple[int, bytes]:
    """Send bytes as they are (aiohttp's client would refuse to) and return the status and the body."""
    assert client.server.port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", client.server.port)
    try:
        writer.write(request)
        await writer.drain()
        async with asyncio.timeout(10):
            status = int((await reader.readline()).split()[1])
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").lower()
            length = next((int(line.split(":")[1]) for line in head.split("\r\n")
                           if line.startswith("content-length:")), 0)
            return status, await reader.readexactly(length)
    finally:
        writer.close()


def request_bytes(headers: list[bytes], body: bytes = b"", path: bytes = b"/v1/events",
                  method: bytes = b"POST") -> bytes:
    lines = [method + b" " + path + b" HTTP/1.1", b"Host: 127.0.0.1", b"Connection: close",
             b"Content-Length: " + str(len(body)).encode(), *headers]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


async def test_hostile_headers_are_refused_cleanly(client: TestClient, keys: Keys) -> None:
    token = keys.reporter["Authorization"].removeprefix("Bearer ").encode()
    key_id = token.split(b".")[1]
    body = orjson.dumps(event())
    ctype = b"Content-Type: application/json"
    cases: dict[str, tuple[list[bytes], set[int]]] = {
        "invalid UTF-8 in a token with a real key id": ([b"Authorization: Bearer qm." + key_id + b".\xff\xfe\xfd",
                                                         ctype], {401}),
        "invalid UTF-8 as the whole token": ([b"Authorization: Bearer \xc3\x28", ctype], {401}),
        "a Latin-1 token": ([b"Authorization: Bearer qm." + key_id + b".caf\xe9", ctype], {401}),
        "a NUL in the token": ([b"Authorization: Bearer " + token + b"\x00", ctype], {400, 401}),
        "a control character in the token": ([b"Authorization: Bearer " + token[:-1] + b"\x01", ctype], {400, 401}),
        "invalid UTF-8 in the content type": (
            [b"Authorization: Bearer " + token, b"Content-Type: app\xfflication/json"], {400, 415}),
        "a header 8 KiB long": ([b"Authorization: Bearer " + token, ctype, b"X-Pad: " + b"a" * 9000], {400, 431}),
        "a bare LF in a header value": ([b"Authorization: Bearer " + token, ctype, b"X-Odd: a\nb"], {400}),
        "a space before the colon": ([b"Authorization : Bearer " + token, ctype], {400, 401}),
        "two Content-Length headers": ([b"Authorization: Bearer " + token, ctype, b"Content-Length: 1"], {400}),
    }
    for case, (headers, allowed) in cases.items():
        status, _ = await raw_exchange(client, request_bytes(headers, body))
        assert status in allowed, (case, status)

    # Headers that are merely odd do not stop an otherwise valid request.
    sent = event()
    status, answer = await raw_exchange(client, request_bytes(
        [b"Authorization: Bearer " + token, ctype, b"X-Request-ID: caf\xc3\xa9\xff", b"Accept: \xff\xfe",
         b"User-Agent: \xe4\xb8\xad\xe6\x96\x87"], orjson.dumps(sent)))
    assert status == 201, answer
    stored = await read_log(client, keys, after=1)
    assert [e["event_id"] for e in stored] == [sent["event_id"]]
    assert stored[0]["request_id"].isascii()


async def test_odd_conditional_and_accept_headers_on_reads(client: TestClient, keys: Keys) -> None:
    paths = ["/v1/campaigns/2017/dashboard", "/v1/campaigns/2017/series?metric=dens_busted",
             "/v1/campaigns/2017/completeness", "/v1/events", "/v1/campaigns/2017/summary"]
    odd = [{"If-None-Match": '"unterminated'}, {"If-None-Match": "W/" + "x" * 5000}, {"If-None-Match": ",,,*"},
           {"If-None-Match": '"a", W/"b", garbage'}, {"Accept": "application/x-ndjson;q=abc"},
           {"Accept": "*/*;q=0"}, {"Last-Event-ID": "²³"}]
    for path in paths:
        for headers in odd:
            response = await client.get(path, headers=keys.admin | headers)
            assert response.status < 500, (path, headers, response.status, await response.text())
            await response.read()


async def test_an_odd_last_event_id_restarts_the_stream_from_the_beginning(client: TestClient, keys: Keys) -> None:
    # "²³" and "٣" are digits to str.isdigit() but not to int(); a 500 here would cut an already started stream.
    for last in ("²³", "٣", "-1", "1e3", "\u00a0", "x" * 500):
        response = await client.get("/v1/stream", headers=keys.viewer | {"Last-Event-ID": last})
        try:
            assert response.status == 200, last
            async with asyncio.timeout(5):
                first = await response.content.readuntil(b"\r\n\r\n")
            assert b"event: projection" in first, (last, first)
        finally:
            response.close()
