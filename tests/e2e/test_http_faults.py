"""Issue 12, over HTTP: faults found by replaying public bug reports against `qmstats serve`."""

import asyncio
import re
import time
import uuid
from decimal import Decimal
from pathlib import Path

import aiohttp
import asyncpg
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

from events.key_store import revoke_key
from events.region_store import import_region_list
from services.keyring import create_key
from services.regionlists import read_region_list
from tests.conftest import Database, Keys, Replica
from tests.e2e.processes import open_campaign, qmstats_children
from tests.e2e.wire import answers, eventually, expect_problem
from tests.factories import CAMPAIGN, SAMPLE_DATA, event
from tests.projection_support import get_json, post_events, settled

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
    assert len({e["index"] for e in errors}) == 2
    assert len(errors) > 2
    assert body["detail"].startswith(f"2 invalid events ({len(errors)} errors); nothing was stored. First: item 1 ")

    window = await client.post("/v1/campaigns", json=OPENING | {"starts_on": "2017-09-30", "ends_on": "2017-09-01"},
                               headers=keys.admin)
    body = await expect_problem(window, 422, "validation-failed")
    assert "ends_on is before starts_on" in body["detail"]


async def test_a_precondition_never_hides_a_404_or_a_422(client: TestClient, keys: Keys) -> None:
    assert (await client.post("/v1/campaigns", json=CAMPAIGN, headers=keys.admin)).status == 201
    anything = {"If-None-Match": "*"}
    for path in ("/v1/campaigns/no-such-campaign/dashboard", "/v1/campaigns/no-such-campaign/series?metric=cases",
                 "/v1/campaigns/no-such-campaign/completeness"):
        await expect_problem(await client.get(path, headers=keys.viewer | anything), 404, "not-found", path)
    await settled(client, keys.viewer, 1)  # the ETag moves while the projector catches up; compare a settled one
    live = await client.get("/v1/campaigns/2017/dashboard", headers=keys.viewer)
    etag = live.headers["ETag"]
    assert (await client.get("/v1/campaigns/2017/dashboard", headers=keys.viewer | anything)).status == 304
    assert (await client.get("/v1/campaigns/2017/dashboard",
                             headers=keys.viewer | {"If-None-Match": etag})).status == 304
    beyond = await client.get("/v1/campaigns/2017/dashboard?at_position=999999999",
                              headers=keys.auditor | anything)
    await expect_problem(beyond, 422, "invalid-parameter")
    at_one = await client.get("/v1/campaigns/2017/dashboard?at_position=1", headers=keys.auditor | anything)
    assert at_one.status == 304


async def import_list(admin_conn: asyncpg.Connection, areacodes: Path, year: int) -> None:
    """What `qmstats regions import` does (the same function, its NOTIFY included)."""
    await import_region_list(admin_conn, year, read_region_list((areacodes / f"{year}.txt").read_text("utf-8-sig")),
                             source=f"{year}.txt")


async def test_cached_answers_follow_a_region_list_import(client: TestClient, keys: Keys,
                                                          admin_conn: asyncpg.Connection, areacodes: Path) -> None:
    assert (await client.post("/v1/campaigns", json=CAMPAIGN, headers=keys.admin)).status == 201
    assert (await client.post("/v1/events", json=event(region="330102"), headers=keys.reporter)).status == 201
    await settled(client, keys.viewer, 2)
    paths = ("/v1/campaigns/2017/completeness?region=330000", "/v1/campaigns/2017/dashboard?region=330000",
             "/v1/campaigns/2017/series?metric=cases&region=330100")
    before = {}
    for path in paths:
        response = await client.get(path, headers=keys.viewer)
        assert response.status == 200
        before[path] = (response.headers["ETag"], await response.json())
    assert before[paths[0]][1]["expected"] is None
    assert before[paths[2]][1]["region"]["name"] is None

    await import_list(admin_conn, areacodes, 2017)

    async def renamed() -> bool:
        response = await client.get(paths[2], headers=keys.viewer | {"If-None-Match": before[paths[2]][0]})
        return response.status == 200 and (await response.json())["region"]["name"] == "杭州市"
    await eventually(renamed, seconds=5)
    for path, (etag, _) in before.items():
        response = await client.get(path, headers=keys.viewer | {"If-None-Match": etag})
        assert response.status == 200, path
    completeness = await (await client.get(paths[0], headers=keys.viewer)).json()
    assert completeness["expected"] == 11
    dashboard = await (await client.get(paths[1], headers=keys.viewer)).json()
    assert {c["code"]: c["name"] for c in dashboard["children"]}["330500"] == "湖州市"


async def test_breakdowns_have_an_own_level_row_and_unknown_regions_are_404(
        client: TestClient, keys: Keys, admin_conn: asyncpg.Connection, areacodes: Path) -> None:
    assert (await client.post("/v1/campaigns", json=CAMPAIGN, headers=keys.admin)).status == 201
    at_prefecture = event(region="330500", data=SAMPLE_DATA["raid_conducted"] | {"dens_busted": 3})
    in_counties = [event(region=r, data=SAMPLE_DATA["raid_conducted"] | {"dens_busted": n})
                   for r, n in (("330502", 10), ("330521", 7))]
    posted = await client.post("/v1/events", json={"events": [at_prefecture, *in_counties]}, headers=keys.reporter)
    assert posted.status == 201
    await settled(client, keys.viewer, 4)

    huzhou = await get_json(client, "/v1/campaigns/2017/dashboard", keys.viewer, region="330500")
    assert huzhou["metrics"]["dens_busted"]["value"] == 20
    assert sum(c["metrics"]["dens_busted"] for c in huzhou["children"]) == 17
    assert huzhou["own_level"]["label_zh"] == "本级"
    assert huzhou["own_level"]["metrics"]["dens_busted"] == 3
    zhejiang = await get_json(client, "/v1/campaigns/2017/dashboard", keys.viewer, region="330000")
    assert zhejiang["own_level"]["metrics"]["dens_busted"] == 0
    by_county = await get_json(client, "/v1/campaigns/2017/dashboard", keys.viewer, region="330000", level="county")
    assert by_county["own_level"]["metrics"]["dens_busted"] == 3
    money = by_county["metrics"]["seized_value_yuan"]["value"]
    assert Decimal(by_county["own_level"]["metrics"]["seized_value_yuan"]) + sum(
        Decimal(c["metrics"]["seized_value_yuan"]) for c in by_county["children"]) == Decimal(money)

    await import_list(admin_conn, areacodes, 2017)
    for path in ("/v1/campaigns/2017/dashboard?region=339999", "/v1/campaigns/2017/series?metric=cases&region=339999",
                 "/v1/campaigns/2017/completeness?region=339900",
                 "/v1/campaigns/2017/figures/dens_busted/events?region=330599",
                 "/v1/campaigns/2017/flags?region=339999", "/v1/campaigns/2017/flags?region=330599&format=csv"):
        async def gone(path: str = path) -> bool:
            return (await client.get(path, headers=keys.auditor)).status == 404
        await eventually(gone, seconds=5)
        await expect_problem(await client.get(path, headers=keys.auditor | {"If-None-Match": "*"}), 404,
                             "not-found", path)
    await expect_problem(await client.get("/v1/regions?parent=339900", headers=keys.viewer), 404, "not-found")
    assert (await client.get("/v1/campaigns/2017/dashboard?region=330500", headers=keys.viewer)).status == 200


async def test_accept_is_parsed_as_media_ranges_with_q_values(client: TestClient, keys: Keys) -> None:
    assert (await client.post("/v1/campaigns", json=CAMPAIGN, headers=keys.admin)).status == 201
    assert (await client.post("/v1/events", json={"events": [event(), event()]}, headers=keys.reporter)).status == 201
    for accept in ("application/x-ndjson;q=0, application/json", "application/json", "*/*", "application/*",
                   "text/html, application/json;q=0.9", "", "application/x-ndjson, application/json"):
        response = await client.get("/v1/events?limit=1", headers=keys.auditor | {"Accept": accept})
        assert response.status == 200, accept
        assert response.content_type == "application/json", accept
        assert len((await response.json())["events"]) == 1, accept
    for accept in ("application/x-ndjson", "application/json;q=0.5, application/x-ndjson"):
        response = await client.get("/v1/events?limit=1", headers=keys.auditor | {"Accept": accept})
        assert response.content_type == "application/x-ndjson", accept
        assert len((await response.text()).splitlines()) == 3, accept
    for accept in ("application/x-ndjsonx", "text/html", "application/json;q=0, application/x-ndjson;q=0"):
        response = await client.get("/v1/events?limit=1", headers=keys.auditor | {"Accept": accept})
        await expect_problem(response, 406, "not-acceptable", accept)


async def open_stream(client: TestClient, headers: dict[str, str]) -> ClientResponse:
    response = await client.get("/v1/stream", headers=headers)
    assert response.status == 200, await response.text()
    async with asyncio.timeout(10):
        while not (await response.content.readline()).startswith(b"data:"):
            pass
    return response


def counted(metrics: str, name: str, **labels: str) -> float:
    """A Prometheus sample's value (0 when absent)."""
    for line in metrics.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_a_client_that_goes_away_is_counted_apart_and_is_not_a_server_error(
        database: Database, keys: Keys, tmp_path: Path) -> None:
    # A real `qmstats serve`: aiohttp's test server cancels handlers on disconnect, `serve` does not.
    async with qmstats_children(database.service_url, database.admin_url, tmp_path) as children:
        # One API process: /metrics counts what the process answering it saw (each worker has its own).
        api = children.serve("--workers", "1", log_level="info")
        await api.start_listening()
        await open_campaign(api.url, keys.admin)
        async with aiohttp.ClientSession() as session:
            for _ in range(3):  # a viewer reads one message and closes the tab
                async with session.get(api.url + "/v1/stream", headers=keys.viewer) as page:
                    assert page.status == 200
                    async with asyncio.timeout(10):
                        while not (await page.content.readline()).startswith(b"data:"):
                            pass
                    page.close()
            for n in range(3):
                async with session.post(api.url + "/v1/events", json=event(), headers=keys.reporter) as posted:
                    assert posted.status == 201
                async with asyncio.timeout(10):
                    while True:
                        async with session.get(api.url + "/v1/campaigns/2017/dashboard", headers=keys.viewer) as r:
                            if (await r.json())["position"] >= 2 + n:
                                break
                        await asyncio.sleep(0.05)

            async def scrape() -> str:
                async with session.get(api.url + "/metrics") as response:
                    return await response.text()

            async def all_counted() -> bool:
                return counted(await scrape(), "qmstats_http_client_disconnects_total", route="/v1/stream") == 3
            await eventually(all_counted, seconds=20, every=0.2)
            metrics = await scrape()
        assert counted(metrics, "qmstats_http_requests_total", route="/v1/stream", status="499") == 3
        assert not [line for line in metrics.splitlines()
                    if line.startswith("qmstats_http_requests_total{") and 'status="5' in line], metrics
        log = api.tail(10000)
        assert "unhandled error" not in log
        assert "Traceback" not in log


async def test_an_auditor_who_stops_reading_the_ndjson_log_is_not_a_server_error_nor_a_lost_replica(
        database: Database, replica: Replica, keys: Keys, tmp_path: Path) -> None:
    # `curl … | head`: the export is read from a replica inside a snapshot; the client's going away must be a 499,
    # not a 503 "database unavailable", and must not mark the replica down (it did nothing wrong).
    async with qmstats_children(database.service_url, database.admin_url, tmp_path) as children:
        api = children.serve("--workers", "1", "--replica", replica.service_url, log_level="info")
        await api.start_listening()
        await open_campaign(api.url, keys.admin)
        async with aiohttp.ClientSession() as session:
            for _ in range(3):  # a log larger than the socket buffers, so the server's writes meet the closed socket
                batch = {"events": [event() for _ in range(1000)]}
                async with session.post(api.url + "/v1/events", json=batch, headers=keys.reporter) as posted:
                    assert posted.status == 201, await posted.text()
            await replica.standby.caught_up()
            await asyncio.sleep(0.5)  # the replica monitor has seen it caught up: the export reads there
            for _ in range(2):
                async with session.get(api.url + "/v1/events?min_position=3001",
                                       headers={**keys.auditor, "Accept": "application/x-ndjson"}) as export:
                    assert export.status == 200
                    await export.content.readline()
                    export.close()

            async def scrape() -> str:
                async with session.get(api.url + "/metrics") as response:
                    return await response.text()

            async def both_counted() -> bool:
                return counted(await scrape(), "qmstats_http_client_disconnects_total", route="/v1/events") == 2
            await eventually(both_counted, seconds=20, every=0.2)
            metrics = await scrape()
        assert counted(metrics, "qmstats_http_requests_total", route="/v1/events", method="GET", status="499") == 2
        assert not [line for line in metrics.splitlines()
                    if line.startswith("qmstats_http_requests_total{") and 'status="5' in line], metrics
        fallbacks = re.search(r"^qmstats_replica_fallbacks_total (\S+)$", metrics, re.MULTILINE)
        assert fallbacks is not None
        assert float(fallbacks.group(1)) == 0, "the replica answered both exports"
        log = api.tail(10000)
        assert "replica unavailable" not in log
        assert "database unavailable" not in log
        assert "Traceback" not in log


async def test_revoking_a_key_ends_its_open_streams(client: TestClient, keys: Keys,
                                                    admin_conn: asyncpg.Connection) -> None:
    assert (await client.post("/v1/campaigns", json=CAMPAIGN, headers=keys.admin)).status == 201
    await settled(client, keys.viewer, 1)
    key, token = await create_key(admin_conn, name="wall screen", role="viewer", region=None)
    viewer = {"Authorization": f"Bearer {token}"}
    await eventually(answers(client, viewer, 200))  # the service hears of the new key by NOTIFY
    doomed = await open_stream(client, viewer)
    other = await open_stream(client, keys.viewer)
    assert await revoke_key(admin_conn, key.id)
    async with asyncio.timeout(5):  # no event is appended: the campaign is quiet
        while await doomed.content.readline():
            pass
    await expect_problem(await client.get("/v1/stream", headers=viewer), 401, "unauthenticated")
    await post_events(client, keys.reporter, [event()])
    async with asyncio.timeout(10):
        while not (await other.content.readline()).startswith(b"data:"):
            pass
    other.close()


async def test_shutdown_ends_open_streams_and_exits_promptly(database: Database, keys: Keys, tmp_path: Path) -> None:
    async with qmstats_children(database.service_url, database.admin_url, tmp_path) as children:
        api = children.serve()
        await api.start_listening()
        async with aiohttp.ClientSession() as session:
            pages = [await session.get(api.url + "/v1/stream", headers=keys.viewer) for _ in range(3)]
            for page in pages:
                assert page.status == 200
                await page.content.readline()
            started = time.monotonic()
            assert await api.terminate(seconds=20) == 0
            assert time.monotonic() - started < 8, api.tail()
            for page in pages:
                async with asyncio.timeout(5):
                    while await page.content.readline():
                        pass
                page.close()


async def test_ratios_are_exact_where_they_terminate_in_every_format(client: TestClient, keys: Keys) -> None:
    assert (await client.post("/v1/campaigns", json=CAMPAIGN, headers=keys.admin)).status == 201
    checks = [event("inspection_completed", data={"batches_sampled": 20000, "batches_passed": 18301,
                                                  "enterprises": 5, "category": "mooncake"}),
              event("inspection_completed", data={"batches_sampled": 3, "batches_passed": 2, "enterprises": 1,
                                                  "category": "toys"})]
    head = await post_events(client, keys.reporter, checks[:1])
    body = await settled(client, keys.viewer, head)
    assert body["pass_rate"]["overall"] == "0.91505"  # 18301 / 20000, exactly
    summary = await get_json(client, "/v1/campaigns/2017/summary", keys.viewer, format="json")
    assert (summary["pass_rate"]["ratio"], summary["pass_rate"]["percent"]) == ("0.91505", "91.5%")
    csv = await (await client.get("/v1/campaigns/2017/summary?format=csv", headers=keys.viewer)).text()
    assert "0.91505" in csv

    head = await post_events(client, keys.reporter, checks[1:])
    body = await settled(client, keys.viewer, head)
    # (18301 + 2) / 20003 does not terminate: half-even to 10 decimal places, as documented.
    assert body["pass_rate"]["overall"] == "0.9150127481"
    assert body["pass_rate"]["by_category"] == {"mooncake": "0.91505", "toys": "0.6666666667"}


async def test_a_403_names_the_role_in_plain_english(client: TestClient, keys: Keys) -> None:
    for path, body in (("/v1/events", event()), ("/v1/campaigns", CAMPAIGN)):
        refused = await expect_problem(await client.post(path, json=body, headers=keys.auditor), 403, "forbidden")
        assert refused["detail"].startswith("this is an auditor key, which may not call"), refused
    refused = await expect_problem(await client.post("/v1/campaigns", json=CAMPAIGN, headers=keys.viewer), 403,
                                   "forbidden")
    assert refused["detail"].startswith("this is a viewer key"), refused


async def test_streamed_answers_echo_the_request_id_like_every_other(
        client: TestClient, keys: Keys, campaign: dict[str, str]) -> None:
    streamed = (("/v1/stream", keys.viewer), ("/v1/events", keys.auditor | {"Accept": "application/x-ndjson"}))
    for path, headers in streamed:
        response = await client.get(path, headers=headers | {"X-Request-ID": "newcomer-42"})
        try:
            assert response.status == 200, path
            assert response.headers.get("X-Request-ID") == "newcomer-42", (path, dict(response.headers))
        finally:
            response.close()
        response = await client.get(path, headers=headers)
        try:
            assert len(response.headers.get("X-Request-ID", "")) == 32, (path, dict(response.headers))
        finally:
            response.close()
