"""`qmstats project` as real processes beside an API started with run_projector=False: killed with
SIGKILL mid-stream it loses and double-counts nothing; a second one waits as a hot standby and takes
over when the active one dies."""

import asyncio
import random
from collections.abc import AsyncIterator

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from services.settings import Settings
from tests import conftest
from tests.conftest import Database, Keys
from tests.projection_support import (
    QmstatsProcess,
    check_every_figure,
    eventually,
    import_registry,
    post_events,
    projector_lock_holders,
    qmstats_env,
    realistic_mix,
    settled,
    with_application_name,
)

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("campaign")]


@pytest.fixture
def settings() -> Settings:
    """`qmstats serve --no-projector`: the projection is advanced by the processes under test."""
    return conftest.test_settings(run_projector=False)


class Projectors:
    """Starts `qmstats project` processes on the test database; every one is SIGKILLed at the end."""

    def __init__(self, database: Database) -> None:
        self._database = database
        self.started: list[QmstatsProcess] = []

    async def start(self, name: str, batch_size: int = 1000) -> QmstatsProcess:
        url = with_application_name(self._database.service_url, name)
        env = qmstats_env(url, self._database.admin_url, projector_batch_size=str(batch_size),
                          projector_poll_seconds="0.2")
        process = await QmstatsProcess.start("project", env=env)
        self.started.append(process)
        return process

    async def kill_all(self) -> None:
        for process in self.started:
            await process.kill()


@pytest.fixture
async def projectors(database: Database) -> AsyncIterator[Projectors]:
    running = Projectors(database)
    try:
        yield running
    finally:
        await running.kill_all()


async def checkpoint(conn: asyncpg.Connection) -> int:
    position: int = await conn.fetchval("SELECT position FROM projection_checkpoints WHERE name = 'dashboard'")
    return position


async def test_a_projector_killed_again_and_again_loses_and_double_counts_nothing(
        client: TestClient, keys: Keys, admin_conn: asyncpg.Connection, projectors: Projectors) -> None:
    await import_registry(admin_conn)
    scenario = realistic_mix(seed=9)
    requests = iter(scenario.requests)
    rng = random.Random(9)
    head = await post_events(client, keys.admin, next(requests))
    killed_with_work_left = 0
    for cycle in range(4):
        head = await post_events(client, keys.admin, next(requests))
        before = await checkpoint(admin_conn)
        process = await projectors.start(f"projector-{cycle}", batch_size=rng.randint(5, 15))

        async def projecting(before: int = before) -> bool:
            return await checkpoint(admin_conn) > before

        await eventually(projecting, f"projector {cycle} applying batches", within=20)
        appending = asyncio.create_task(post_events(client, keys.admin, next(requests)))
        await asyncio.sleep(rng.uniform(0, 0.05))
        await process.kill()
        head = await appending
        killed_with_work_left += await checkpoint(admin_conn) < head
    for request in requests:
        head = await post_events(client, keys.admin, request)
    assert killed_with_work_left >= 1, "no projector was killed while it still had events to apply"
    await projectors.start("projector-last", batch_size=50)
    await settled(client, keys.viewer, head, within=20)
    await check_every_figure(client, keys.viewer, scenario.ledger, head)


async def test_a_standby_takes_over_within_seconds_when_the_active_projector_dies(
        client: TestClient, keys: Keys, admin_conn: asyncpg.Connection, projectors: Projectors) -> None:
    await import_registry(admin_conn)
    scenario = realistic_mix(seed=10)
    half = len(scenario.requests) // 2
    first = await projectors.start("projector-a")
    second = await projectors.start("projector-b")
    by_name = {"projector-a": first, "projector-b": second}

    async def one_leads_one_waits() -> bool:
        holders = await projector_lock_holders(admin_conn)
        return len(holders) == 1 and by_name[next(n for n in by_name if n != holders[0])].logged("standing by")

    await eventually(one_leads_one_waits, "one projector holding the lock and the other standing by", within=20)
    [active_name] = await projector_lock_holders(admin_conn)
    standby_name = next(n for n in by_name if n != active_name)

    head = 0
    for request in scenario.requests[:half]:
        head = await post_events(client, keys.admin, request)
    await settled(client, keys.viewer, head)
    assert await projector_lock_holders(admin_conn) == [active_name]

    await by_name[active_name].kill()

    async def standby_leads() -> bool:
        return await projector_lock_holders(admin_conn) == [standby_name]

    await eventually(standby_leads, "the standby holding the lock", within=15)
    for request in scenario.requests[half:]:
        head = await post_events(client, keys.admin, request)
    await settled(client, keys.viewer, head)
    await check_every_figure(client, keys.viewer, scenario.ledger, head)
    assert by_name[standby_name].process.returncode is None
