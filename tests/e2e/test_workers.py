"""`qmstats serve --workers 4`: four API processes on one port and a projector process, as one service.

Each worker group-commits its own queue; the append lock in PostgreSQL makes them one log. Clients open a
fresh connection per request where it matters, so the kernel (SO_REUSEPORT) spreads them over the workers.
"""

import asyncio
import json
import time
from pathlib import Path

import aiohttp
import asyncpg
import psutil
import pytest

from events.stored_chain import verify_log
from tests.conftest import Database, Keys
from tests.e2e.processes import (
    Ledger,
    Serve,
    assert_figures,
    batches,
    caught_up_dashboard,
    open_campaign,
    qmstats_children,
    reporters,
    stored_positions,
)
from tests.factories import event

WORKERS = 4


def serve_processes(serve: Serve) -> list[psutil.Process]:
    return psutil.Process(serve.pid).children()


async def appended_by_worker(url: str) -> dict[int, int]:
    """Events each API process's writer committed, from /metrics (each worker answers for itself)."""
    seen: dict[int, int] = {}
    async with fresh_connections() as session:
        for _ in range(400):
            async with session.get(url + "/metrics") as response:
                values = dict(line.rsplit(" ", 1) for line in (await response.text()).splitlines()
                              if line and not line.startswith("#"))
            seen[int(float(values["qmstats_process_id"]))] = int(float(values["qmstats_events_appended_total"]))
            if len(seen) == WORKERS:
                break
    return seen


def fresh_connections() -> aiohttp.ClientSession:
    """A session that opens a new TCP connection for every request (so requests reach different workers)."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True))


@pytest.mark.slow
async def test_four_workers_keep_one_contiguous_chained_log_without_doubles(
        database: Database, keys: Keys, tmp_path: Path, admin_conn: asyncpg.Connection) -> None:
    work = batches(400, seed=4)
    ledger = Ledger()
    async with qmstats_children(database.service_url, database.admin_url, tmp_path) as children:
        api = children.serve("--workers", str(WORKERS))
        await api.start_listening()
        assert len(serve_processes(api)) == WORKERS + 1, "four API processes and one projector process"
        await open_campaign(api.url, keys.admin)
        # Each reporter has its own session (connection): 16 of them land on several workers.
        async with reporters(api.url, keys.reporter, work, ledger, clients=16) as tasks:
            await asyncio.gather(*tasks)
        appended = await appended_by_worker(api.url)
        async with aiohttp.ClientSession() as session:
            dashboard = await caught_up_dashboard(session, api.url, keys.viewer, keys.auditor, region="330000")
        code = await api.terminate(seconds=40)
    assert code == 0, api.tail()
    assert ledger.server_errors == []
    assert ledger.connection_errors == 0

    sent = sum(len(batch) for batch in work)
    assert len(ledger.acknowledged) == sent
    positions = [r["position"] for r in await admin_conn.fetch("SELECT position FROM events ORDER BY position")]
    assert positions == list(range(1, sent + 2)), "positions 1..n, no gap (the campaign is position 1)"
    stored = await stored_positions(database.admin_url)
    assert {event_id: [position] for event_id, position in ledger.positions.items()} == stored, \
        "every acknowledged event stored once, at the position it was acknowledged with"
    report = await verify_log(admin_conn)
    assert (report.ok, report.checked) == (True, sent + 1)
    assert len(appended) == WORKERS, "every API process answers /metrics for itself"
    assert sum(appended.values()) == sent + 1, "each event (and the campaign) committed by exactly one writer"
    assert sum(1 for n in appended.values() if n) >= 2, f"the load reached several workers: {appended}"
    assert_figures(dashboard, ledger.facts())


@pytest.mark.slow
async def test_a_key_rate_limit_holds_across_workers_not_per_worker(database: Database, keys: Keys,
                                                                    tmp_path: Path) -> None:
    async with qmstats_children(database.service_url, database.admin_url, tmp_path) as children:
        api = children.serve("--workers", str(WORKERS), rate_limit_per_second="1", rate_limit_burst="10")
        await api.start_listening()
        statuses: list[int] = []
        started = time.monotonic()
        async with fresh_connections() as session:
            for _ in range(60):
                async with session.get(api.url + "/v1/catalogue", headers=keys.viewer) as response:
                    statuses.append(response.status)
        elapsed = time.monotonic() - started
        await api.terminate(seconds=40)
    allowed = statuses.count(200)
    # One shared bucket: the burst of 10 plus 1/s refill. Per-worker buckets would allow about 40.
    assert 10 <= allowed <= 10 + int(elapsed) + 1, (allowed, elapsed)
    assert statuses.count(429) == 60 - allowed


@pytest.mark.slow
async def test_every_worker_hears_of_revocations_and_projection_advances(database: Database, keys: Keys,
                                                                         tmp_path: Path) -> None:
    async with qmstats_children(database.service_url, database.admin_url, tmp_path) as children:
        api = children.serve("--workers", str(WORKERS))
        await api.start_listening()
        await open_campaign(api.url, keys.admin)
        async with fresh_connections() as session:
            # SSE streams, each on its own connection, and cached dashboards in every worker.
            streams = [await session.get(api.url + "/v1/stream", headers=keys.viewer) for _ in range(8)]
            etags = set()
            for _ in range(12):
                async with session.get(api.url + "/v1/campaigns/2017/dashboard", headers=keys.viewer) as r:
                    assert r.status == 200
                    etags.add(r.headers["ETag"])
            async with session.post(api.url + "/v1/events", json=event(), headers=keys.reporter) as r:
                assert r.status == 201, await r.text()
                position = (await r.json())["last_position"]
            for stream in streams:
                assert stream.status == 200
                async with asyncio.timeout(10):
                    while True:
                        line = (await stream.content.readline()).decode()
                        assert line, "stream closed"
                        if line.startswith("data:") and json.loads(line[5:])["position"] >= position:
                            break
                stream.close()
            # Every worker's cached dashboard moved on: a poll with an old ETag is never 304.
            for _ in range(12):
                async with session.get(api.url + "/v1/campaigns/2017/dashboard", headers={
                        **keys.viewer, "If-None-Match": ", ".join(etags)}) as r:
                    assert r.status == 200
                    assert (await r.json())["position"] >= position
            code, _, err = await children.run("keys", "revoke", keys.ids["viewer"])
            assert code == 0, err
            await asyncio.sleep(0.5)  # the NOTIFY reaches each worker's listener within milliseconds
            for _ in range(12):
                async with session.get(api.url + "/v1/catalogue", headers=keys.viewer) as r:
                    assert r.status == 401
        assert await api.terminate(seconds=40) == 0, api.tail()


def mapped_files(process: psutil.Process) -> set[str]:
    """The files a process has mapped (shared libraries, extension modules)."""
    return {m.path for m in process.memory_maps() if m.path.startswith("/")}


async def test_the_parent_becomes_a_supervisor_without_the_app_and_a_dying_child_stops_the_rest(
        database: Database, keys: Keys, tmp_path: Path) -> None:
    async with qmstats_children(database.service_url, database.admin_url, tmp_path) as children:
        api = children.serve("--workers", "2")
        await api.start_listening()
        parent = psutil.Process(api.pid)
        processes = serve_processes(api)
        assert parent.cmdline()[1:3] == ["-m", "services.supervisor"], parent.cmdline()
        assert len(processes) == 3, processes  # two API workers and the projector process, same parent pid
        # The supervisor holds none of the app's extension modules; every child does (issue 13: serve's RSS
        # is summed over its processes, and the parent's imports were counted once more for nothing).
        assert not any("aiohttp" in path or "asyncpg" in path for path in mapped_files(parent))
        for child in processes:
            assert any("asyncpg" in path for path in mapped_files(child))
        processes[0].kill()  # a child dies on its own: the others stop, serve exits 1 for a restart
        assert api.proc is not None
        async with asyncio.timeout(45):
            code = await api.proc.wait()
        assert code == 1, api.tail()
        assert "a serve process exited; stopping the others" in api.tail()
        assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in processes)


async def pause_gauges(url: str) -> dict[int, tuple[float, float]]:
    """(paused, pause rate) as each API process exports them: read from what the projector process wrote."""
    seen: dict[int, tuple[float, float]] = {}
    async with fresh_connections() as session:
        for _ in range(200):
            async with session.get(url + "/metrics") as response:
                values = dict(line.rsplit(" ", 1) for line in (await response.text()).splitlines()
                              if line and not line.startswith("#"))
            seen[int(float(values["qmstats_process_id"]))] = (float(values["qmstats_projectors_paused"]),
                                                              float(values["qmstats_projectors_pause_rate"]))
            if len(seen) == 2:
                break
    return seen


@pytest.mark.slow
async def test_the_projector_process_steps_aside_under_a_burst_and_every_worker_reports_it(
        database: Database, keys: Keys, tmp_path: Path) -> None:
    work = batches(300, seed=9)
    ledger = Ledger()
    async with qmstats_children(database.service_url, database.admin_url, tmp_path) as children:
        # 50 events/s: any burst these reporters send is above it.
        api = children.serve("--workers", "2", projector_pause_rate="50", log_level="info")
        await api.start_listening()
        await open_campaign(api.url, keys.admin)
        async with reporters(api.url, keys.reporter, work, ledger, clients=8) as tasks:
            await asyncio.gather(*tasks)
        async with aiohttp.ClientSession() as session:
            dashboard = await caught_up_dashboard(session, api.url, keys.viewer, keys.auditor, region="330000")
        gauges = await pause_gauges(api.url)
        code = await api.terminate(seconds=40)
    assert code == 0, api.tail()
    assert_figures(dashboard, ledger.facts())
    lines = [json.loads(line) for line in api.log.read_text().splitlines() if line.startswith("{")]
    said = [line.get("event") for line in lines]
    assert "projectors step aside: appends arrive faster than they can follow" in said, api.tail()
    assert "projectors resume" in said, api.tail()
    assert len(gauges) == 2, "both API processes answer /metrics"
    assert all(rate == 50.0 for _, rate in gauges.values()), gauges  # written by the projector process
    assert all(paused == 0.0 for paused, _ in gauges.values()), gauges  # caught up: no longer aside
