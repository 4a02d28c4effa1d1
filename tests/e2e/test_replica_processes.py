"""`qmstats serve --replica URL --workers 2` as real processes: concurrent reporters and readers, one contiguous log.

Reporters post (and retry) while readers poll the dashboard and the log with ``min_position`` set to what
they last saw acknowledged; reads go to a real streaming replica of the test server.
"""

import asyncio
import re
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from events.stored_chain import verify_log
from tests.conftest import Database, Keys, Replica
from tests.e2e.processes import (
    Ledger,
    assert_figures,
    batches,
    caught_up_dashboard,
    open_campaign,
    qmstats_children,
    reporters,
    stored_positions,
)


async def reader(base_url: str, viewer: dict[str, str], auditor: dict[str, str], ledger: Ledger,
                 stop: asyncio.Event, seen: list[tuple[int, int]]) -> None:
    """Read with min_position = the highest position acknowledged so far; record (asked, answered)."""
    async with aiohttp.ClientSession() as session:
        while not stop.is_set():
            asked = max(ledger.positions.values(), default=0)
            for path, headers in ((f"/v1/campaigns/2017/dashboard?min_position={asked}", viewer),
                                  (f"/v1/events?after={max(asked - 5, 0)}&min_position={asked}", auditor)):
                async with session.get(base_url + path, headers=headers) as response:
                    assert response.status == 200, await response.text()
                    seen.append((asked, int(response.headers["X-Qmstats-Position"])))
                    if path.startswith("/v1/events"):
                        positions = [e["position"] for e in (await response.json())["events"]]
                        assert positions == sorted(positions)
                        assert not positions or positions[0] == max(asked - 5, 0) + 1, "no gap a reader skips"
            await asyncio.sleep(0.01)


@pytest.mark.slow
async def test_positions_stay_contiguous_and_reads_never_older_than_asked_with_a_replica_in_use(
        database: Database, replica: Replica, keys: Keys, tmp_path: Path, admin_conn: asyncpg.Connection) -> None:
    work = batches(200, seed=14)
    ledger = Ledger()
    seen: list[tuple[int, int]] = []
    async with qmstats_children(database.service_url, database.admin_url, tmp_path) as children:
        # Several API processes (each its own group commit and replica monitor) and the projector apart.
        api = children.serve("--replica", replica.service_url, "--workers", "2")
        await api.start_listening()
        await open_campaign(api.url, keys.admin)
        await replica.standby.caught_up()
        stop = asyncio.Event()
        readers = [asyncio.create_task(reader(api.url, keys.viewer, keys.auditor, ledger, stop, seen))
                   for _ in range(4)]
        async with reporters(api.url, keys.reporter, work, ledger, clients=8) as tasks:
            await asyncio.gather(*tasks)
        stop.set()
        await asyncio.gather(*readers)
        async with aiohttp.ClientSession() as session:
            dashboard = await caught_up_dashboard(session, api.url, keys.viewer, keys.auditor, region="330000")
            async with session.get(api.url + "/metrics") as response:
                metrics = await response.text()
        assert await api.terminate(seconds=40) == 0, api.tail()
    assert ledger.server_errors == []
    sent = sum(len(batch) for batch in work)
    positions = [r["position"] for r in await admin_conn.fetch("SELECT position FROM events ORDER BY position")]
    assert positions == list(range(1, sent + 2)), "positions 1..n, no gap (the campaign is position 1)"
    stored = await stored_positions(database.admin_url)
    assert {event_id: [position] for event_id, position in ledger.positions.items()} == stored
    report = await verify_log(admin_conn)
    assert (report.ok, report.checked) == (True, sent + 1)
    assert_figures(dashboard, ledger.facts())
    assert len(seen) > 20
    assert all(answered >= asked for asked, answered in seen), [s for s in seen if s[1] < s[0]][:5]
    replica_reads = re.search(r'^qmstats_reads_total\{source="replica"\} (\S+)$', metrics, re.MULTILINE)
    assert replica_reads is not None
    assert float(replica_reads.group(1)) > 0, "the replica answered reads"
