"""Exactly one projector is active (advisory lock); another waits as a hot standby and takes over."""

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from services.database import create_pool
from services.projection_state import ProjectionState
from services.projector_process import ProjectorWorker
from services.settings import Settings
from tests import conftest
from tests.conftest import Database, Keys
from tests.projection_support import (
    check_every_figure,
    eventually,
    import_registry,
    open_campaign,
    post_events,
    projector_lock_holders,
    realistic_mix,
    settled,
    with_application_name,
)


@pytest.fixture
def settings() -> Settings:
    """The API alone: the projectors run beside it."""
    return conftest.test_settings(run_projector=False)


class Candidate:
    """A projector worker with its own pool and leader connection, named in pg_stat_activity."""

    def __init__(self, name: str, url: str) -> None:
        self.name = name
        self.url = with_application_name(url, name)
        self.state = ProjectionState()
        self.task: asyncio.Task[None] | None = None
        self.pool: asyncpg.Pool | None = None

    async def start(self) -> None:
        self.pool = await create_pool(self.url, min_size=1, max_size=2)
        worker = ProjectorWorker(self.pool, self.url, self.state, batch_size=40, poll_seconds=0.1,
                                 standby_seconds=0.1)
        self.task = asyncio.create_task(worker.run(), name=self.name)

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        if self.pool is not None:
            await self.pool.close()


@pytest.fixture
async def candidates(database: Database) -> AsyncIterator[tuple[Candidate, Candidate]]:
    first, second = Candidate("projector-a", database.service_url), Candidate("projector-b", database.service_url)
    try:
        yield first, second
    finally:
        async with asyncio.timeout(15):
            await first.stop()
            await second.stop()


async def test_one_projector_leads_and_the_standby_takes_over_when_it_dies(
        client: TestClient, keys: Keys, admin_conn: asyncpg.Connection,
        candidates: tuple[Candidate, Candidate]) -> None:
    await import_registry(admin_conn)
    await open_campaign(client, keys.admin)
    scenario = realistic_mix(seed=11)
    half = len(scenario.requests) // 2
    for candidate in candidates:
        await candidate.start()

    async def one_active_one_standby() -> bool:
        return sorted(c.state.projector for c in candidates) == ["active", "standby"]

    await eventually(one_active_one_standby, "one projector active and one standing by")
    leader, standby = sorted(candidates, key=lambda c: c.state.projector)
    assert await projector_lock_holders(admin_conn) == [leader.name]

    head = 0
    for request in scenario.requests[:half]:
        head = await post_events(client, keys.admin, request)
    await settled(client, keys.viewer, head)

    async def leader_caught_up() -> bool:
        return leader.state.position == head

    await eventually(leader_caught_up, "the leader at the head")
    assert standby.state.position == 0, "the standby applied something"

    await leader.stop()  # its session ends, and with it the lock

    async def standby_leads() -> bool:
        return standby.state.projector == "active" and await projector_lock_holders(admin_conn) == [standby.name]

    await eventually(standby_leads, "the standby took the lead", within=15)
    for request in scenario.requests[half:]:
        head = await post_events(client, keys.admin, request)
    await settled(client, keys.viewer, head)
    await check_every_figure(client, keys.viewer, scenario.ledger, head)
