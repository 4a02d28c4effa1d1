"""SIGKILL `qmstats project` again and again while events flow: no event is lost or counted twice."""

import asyncio
import time
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from tests.conftest import Database, Keys
from tests.e2e.processes import (
    Child,
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

KILLS = 5


async def wait_until_projecting(admin: asyncpg.Connection, projector: Child, since: int, seconds: float = 30) -> int:
    """Until the projector has moved the checkpoint beyond ``since`` (it is mid-work); the new checkpoint."""
    deadline = time.monotonic() + seconds
    while True:
        position: int = await admin.fetchval("SELECT position FROM projection_checkpoints WHERE name = 'dashboard'")
        if position > since:
            return position
        assert projector.running, "the projector exited on its own\n" + projector.tail()
        assert time.monotonic() < deadline, f"the projector did not advance beyond {since}\n" + projector.tail()
        await asyncio.sleep(0.02)


@pytest.mark.slow
async def test_projector_sigkills_neither_lose_nor_double_count(database: Database, keys: Keys, tmp_path: Path,
                                                                 admin_conn: asyncpg.Connection) -> None:
    work = batches(160, seed=20170915)
    total = sum(len(b) for b in work)
    ledger = Ledger()
    checkpoints: list[int] = []
    async with qmstats_children(database.service_url, database.admin_url, tmp_path) as children:
        api = children.serve("--no-projector")
        await api.start_listening()
        await open_campaign(api.url, keys.admin)
        # Small batches keep the projector busy, so the kills land between and inside its transactions.
        projector = children.project(projector_batch_size="7")
        async with reporters(api.url, keys.reporter, work, ledger, clients=4, pause=0.01) as tasks:
            for _ in range(KILLS):
                await projector.start()
                await wait_for_acks(ledger, len(ledger.acknowledged) + 20, tasks)
                checkpoints.append(await wait_until_projecting(admin_conn, projector,
                                                               checkpoints[-1] if checkpoints else 0))
                await projector.kill()
            await asyncio.wait_for(asyncio.gather(*tasks), timeout=90)
        await projector.start()  # the last one runs to the head

        assert ledger.server_errors == []
        assert set(ledger.statuses) <= {200, 201}, ledger.statuses
        stored = await stored_positions(database.admin_url)
        assert len(ledger.acknowledged) == total
        assert set(stored) == set(ledger.acknowledged)
        assert all(len(positions) == 1 for positions in stored.values())

        async with aiohttp.ClientSession() as session:
            for region in ("000000", "330000"):
                assert_figures(await caught_up_dashboard(session, api.url, keys.viewer, keys.auditor, region=region),
                               ledger.facts())
            code, out, err = await children.run("rebuild")
            assert code == 0, out + err
            assert "identical" in out
        assert checkpoints == sorted(set(checkpoints))  # every kill found the projector further along
        assert projector.starts == KILLS + 1
        print(f"\nprojector crash: {KILLS} SIGKILLs survived at checkpoints {checkpoints}; "
              f"{len(ledger.acknowledged)} events acknowledged, {len(stored)} stored")
