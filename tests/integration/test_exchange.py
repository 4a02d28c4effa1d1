"""Export and import: a whole-log export imported into a fresh database reproduces the head and every
figure; broken or partial files are refused with nothing imported; a large log is exported and
streamed in bounded memory."""

import asyncio
import json
import multiprocessing
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import asyncpg
import psutil
import pytest
from aiohttp.test_utils import TestClient, TestServer

from events.decide import Accepted, Actor, AppendRequest
from events.drafts import DraftEvent
from events.exchange import ImportRefused, import_lines
from events.intake import read_events
from events.writer import append_in_transaction
from services.app import create_app
from services.keyring import create_key
from services.simulate.plan import generate_events
from tests import conftest
from tests.audit_support import NEXT_YEAR, change_one_byte, figures, qmstats, qmstats_env_for, save_export
from tests.conftest import Database, Keys
from tests.factories import event
from tests.integration.appending import lifecycle
from tests.pg import service_url, with_database
from tests.projection_support import QMSTATS, get_json, open_campaign, post_events, realistic_mix, settled

VIEWS = ({}, {"region": "330000"}, {"region": "440300"}, {"level": "county"})


@asynccontextmanager
async def fresh_database(pg_server: str, template_name: str) -> AsyncIterator[Database]:
    """A second database, cloned from the migrated template as the ``database`` fixture does; dropped after."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    conn = await asyncpg.connect(pg_server)
    try:
        await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_name}"')
    finally:
        await conn.close()
    try:
        yield Database(name, with_database(pg_server, name), service_url(pg_server, name))
    finally:
        conn = await asyncpg.connect(pg_server)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


async def count_events(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM events"))
    finally:
        await conn.close()


async def export_to(database: Database, path: Path, *args: str) -> list[bytes]:
    code, out, err = await qmstats(database.admin_url, "export", *args)
    assert code == 0, err
    return save_export(path, out)


async def verify(database: Database) -> dict[str, Any]:
    code, out, err = await qmstats(database.admin_url, "verify")
    assert code == 0, f"{out} {err}"
    report: dict[str, Any] = json.loads(out)
    return report


async def two_campaigns_mixed(client: TestClient, keys: Keys) -> int:
    """Campaign 2017 with the realistic mix (corrections, retractions), and a few 2018 events; the head."""
    await open_campaign(client, keys.admin)
    opened = await client.post("/v1/campaigns", json=NEXT_YEAR, headers=keys.admin)
    assert opened.status == 201, await opened.text()
    head = 0
    for number, request in enumerate(realistic_mix(seed=11).requests):
        head = await post_events(client, keys.admin, request)
        if number % 3 == 0:
            head = await post_events(client, keys.admin, [
                event(campaign="2018", region="330102", occurred_at="2018-09-05T10:00:00+08:00"),
                event("inspection_completed", campaign="2018", region="440103",
                      occurred_at="2018-09-06T10:00:00+08:00")])
    await settled(client, keys.viewer, head)
    return head


async def dashboards(client: TestClient, headers: dict[str, str]) -> dict[str, Any]:
    out = {}
    for campaign in ("2017", "2018"):
        for view in VIEWS:
            body = await get_json(client, f"/v1/campaigns/{campaign}/dashboard", headers, **view)
            out[f"{campaign} {view}"] = figures(body)
    return out


async def test_an_export_imported_into_a_fresh_database_reproduces_the_head_and_the_figures(
        client: TestClient, keys: Keys, database: Database, pg_server: str, template_name: str,
        tmp_path: Path) -> None:
    head = await two_campaigns_mixed(client, keys)
    original = await dashboards(client, keys.viewer)
    lines = await export_to(database, tmp_path / "log.ndjson")
    assert len(lines) == head
    original_positions = {e["event_id"]: e["position"] for e in map(json.loads, lines)}

    async with fresh_database(pg_server, template_name) as copy:
        code, _, err = await qmstats(copy.admin_url, "import", str(tmp_path / "log.ndjson"))
        assert code == 0, err
        assert f"imported {head} events" in err
        here, there = await asyncio.gather(verify(database), verify(copy))
        assert there["ok"] is True
        assert there["head"] == here["head"]
        assert there["head"]["position"] == head

        # A service on the copy projects the imported log to the same figures.
        conn = await asyncpg.connect(copy.admin_url)
        try:
            tokens = {role: (await create_key(conn, name=f"copy {role}", role=role, region=None))[1]
                      for role in ("viewer", "admin")}
        finally:
            await conn.close()
        viewer, admin = ({"Authorization": f"Bearer {tokens[role]}"} for role in ("viewer", "admin"))
        async with TestClient(TestServer(create_app(conftest.test_settings(), copy.service_url))) as copy_client:
            await settled(copy_client, viewer, head)
            assert await dashboards(copy_client, viewer) == original

            # The restored log goes on: a client's retry of an imported event is a duplicate at its
            # original position, a new event is appended after the imported head, and the chain holds.
            resent = realistic_mix(seed=11).requests[0][0]
            retry = await copy_client.post("/v1/events", json=resent, headers=admin)
            assert retry.status == 200, await retry.text()
            assert (await retry.json())["results"][0]["status"] == "duplicate"
            assert (await retry.json())["results"][0]["position"] == original_positions[resent["event_id"]]
            assert await post_events(copy_client, admin, [event("pledge_signed")]) == head + 1
            assert (await get_json(copy_client, "/v1/audit/verify", admin))["ok"] is True

        # A second import into the now non-empty log is refused and changes nothing.
        code, _, err = await qmstats(copy.admin_url, "import", str(tmp_path / "log.ndjson"))
        assert code == 1
        assert "not empty" in err
        assert await count_events(copy.admin_url) == head + 1


async def test_broken_or_partial_files_are_refused_and_nothing_is_imported(
        client: TestClient, keys: Keys, database: Database, pg_server: str, template_name: str,
        tmp_path: Path) -> None:
    head = await two_campaigns_mixed(client, keys)
    lines = await export_to(database, tmp_path / "log.ndjson")
    tampered, position = change_one_byte(lines)
    (tmp_path / "tampered.ndjson").write_bytes(b"".join(tampered))
    only_2017 = await export_to(database, tmp_path / "2017.ndjson", "--campaign", "2017")
    assert 0 < len(only_2017) < head

    async with fresh_database(pg_server, template_name) as copy:
        code, _, err = await qmstats(copy.admin_url, "import", str(tmp_path / "tampered.ndjson"))
        assert code == 1
        assert f"position {position}" in err
        assert await count_events(copy.admin_url) == 0

        # Loaded a few events at a time, the pages before the broken one are rolled back too.
        late, late_position = change_one_byte(lines, start=len(lines) - 20)
        conn = await asyncpg.connect(copy.admin_url)
        try:
            with pytest.raises(ImportRefused, match=f"position {late_position}"):
                await import_lines(conn, late, page=7)
            assert await conn.fetchval("SELECT count(*) FROM events") == 0
        finally:
            await conn.close()

        # A campaign's export skips the other campaign's positions: not a log to import ...
        code, _, err = await qmstats(copy.admin_url, "import", str(tmp_path / "2017.ndjson"))
        assert code == 1
        assert "--campaign" in err
        assert await count_events(copy.admin_url) == 0
        # ... but replay checks each event and the links it can, and says the file is not the whole log.
        code, out, err = await qmstats(copy.admin_url, "replay", str(tmp_path / "2017.ndjson"))
        assert code == 0, err
        chain = json.loads(out)["chain"]
        assert chain["ok"] is True
        assert chain["complete"] is False
        assert chain["checked"] == len(only_2017)


# --- a large log, in bounded memory ---------------------------------------------------------------------

LARGE = 100_000
# Peak RSS of `qmstats export` over 100,000 events (a 51 MB file). Measured on the development machine
# (Python 3.11, resource.getrusage peaks): a process that has imported what `qmstats` imports sits at
# 47 MB; `qmstats export`, streaming one 5,000-event page at a time, peaks at 71 MB; the same process
# holding the export as 100,000 lines of bytes peaks at 149 MB, as 100,000 RecordedEvent objects at
# 165 MB. 120 MB leaves room above the streaming peak and stays below any way of holding the log.
EXPORT_RSS_BOUND = 120 * 2**20
# Growth of this test process's RSS while the in-process server streams the whole log over HTTP and the
# client counts lines as they arrive (measured: 13 MB). Building the 51 MB body, or holding the events
# (about 117 MB as records), anywhere on either side would exceed it.
STREAM_GROWTH_BOUND = 50 * 2**20


def produce_drafts(queue: "multiprocessing.Queue[list[DraftEvent] | None]", count: int) -> None:
    """In a child process: the benchmark generator's events, 1000 a request, parsed as the API parses them."""
    for events in generate_events("2017", (date(2017, 9, 1), date(2017, 9, 30)), 5, count, batch=1000):
        queue.put(read_events({"events": events}))
    queue.put(None)


async def load_large_log(url: str, count: int) -> int:
    """campaign_opened and ``count`` facts, appended through the writer's own transaction function (the
    real decisions and hashes), 1000 events a request, five requests a transaction; returns the head.
    The events are generated and parsed in a child process meanwhile, on the other core."""
    context = multiprocessing.get_context("spawn")
    queue: multiprocessing.Queue[list[DraftEvent] | None] = context.Queue(maxsize=8)
    producer = context.Process(target=produce_drafts, args=(queue, count), daemon=True)
    producer.start()
    conn = await asyncpg.connect(url)
    try:
        await append_in_transaction(conn, [lifecycle("campaign_opened", {
            "id": "2017", "theme": "质量月", "starts_on": "2017-09-01", "ends_on": "2017-09-30"})], datetime.now(UTC))
        actor = Actor("bulk", "admin")
        group: list[AppendRequest] = []
        head, number, more = 1, 0, True
        while more:
            drafts = await asyncio.to_thread(queue.get, True, 60)
            more = drafts is not None
            if drafts is not None:
                number += 1
                group.append(AppendRequest(drafts, actor, f"bulk-{number}"))
            if group and (len(group) == 5 or not more):
                outcomes, head = await append_in_transaction(conn, group, datetime.now(UTC))
                assert all(isinstance(o, Accepted) for o in outcomes), outcomes
                group = []
        return head
    finally:
        await conn.close()
        producer.join(10)
        if producer.is_alive():
            producer.kill()
            producer.join(10)


async def peak_rss(process: psutil.Process, done: asyncio.Event) -> int:
    """Sample a process's RSS every 50 ms until ``done``; the peak."""
    peak = 0
    while not done.is_set():
        with suppress(psutil.NoSuchProcess, psutil.ZombieProcess):
            peak = max(peak, process.memory_info().rss)
        with suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), 0.05)
    return peak


@pytest.mark.slow
async def test_a_100k_event_log_is_exported_and_streamed_in_bounded_memory(
        database: Database, tmp_path: Path, keys: Keys) -> None:
    head = await load_large_log(database.admin_url, LARGE)
    assert head == LARGE + 1

    path = tmp_path / "large.ndjson"
    with path.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            str(QMSTATS), "export", env=qmstats_env_for(database.admin_url), stdout=out,
            stderr=asyncio.subprocess.PIPE)
        done = asyncio.Event()
        sampler = asyncio.create_task(peak_rss(psutil.Process(process.pid), done))
        try:
            async with asyncio.timeout(60):
                _, err = await process.communicate()
        finally:
            done.set()
            if process.returncode is None:
                process.kill()
                await process.wait()
        peak = await sampler
    assert process.returncode == 0, err.decode()
    assert peak < EXPORT_RSS_BOUND, f"export peaked at {peak / 2**20:.0f} MB"
    with path.open("rb") as handle:
        assert sum(1 for _ in handle) == LARGE + 1

    # The export replays offline (in another process, while the same log is streamed over HTTP below).
    replaying = asyncio.create_task(qmstats(database.admin_url, "replay", str(path), "--region", "330000"))

    try:
        # The same log over HTTP, streamed as NDJSON, counted line by line as it arrives.
        app = create_app(conftest.test_settings(run_projector=False), database.service_url)
        me = psutil.Process(os.getpid())
        async with TestClient(TestServer(app)) as client:
            before = me.memory_info().rss
            done = asyncio.Event()
            sampler = asyncio.create_task(peak_rss(me, done))
            lines, tail = 0, b""
            try:
                response = await client.get("/v1/events", headers=keys.auditor | {"Accept": "application/x-ndjson"})
                assert response.status == 200
                async for chunk in response.content.iter_chunked(1 << 16):
                    lines += chunk.count(b"\n")
                    tail = (tail + chunk)[-2:]
            finally:
                done.set()
            growth = await sampler - before
        assert lines == LARGE + 1
        assert tail.endswith(b"\n")
        assert growth < STREAM_GROWTH_BOUND, f"streaming grew this process by {growth / 2**20:.0f} MB"
    except BaseException:
        replaying.cancel()  # run_qmstats kills its process when cancelled
        with suppress(asyncio.CancelledError):
            await replaying
        raise

    code, out, err_text = await replaying
    assert code == 0, err_text
    chain = json.loads(out)["chain"]
    assert (chain["ok"], chain["complete"], chain["checked"], chain["last_position"]) == (True, True, head, head)
