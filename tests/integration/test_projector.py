"""The projector commits read tables and checkpoint together: a batch that dies half-way leaves no
trace, a restart neither loses nor double-counts an event, and two appliers never both apply one."""

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from projections import projector as runner
from projections.projector import apply_batch
from projections.tables import CheckpointMoved
from services.settings import Settings
from tests import conftest
from tests.conftest import Keys
from tests.projection_support import (
    Scenario,
    check_every_figure,
    import_registry,
    open_campaign,
    post_scenario,
    realistic_mix,
    settled,
)

TABLES = ("projection_totals", "projection_daily", "projection_categories", "projection_reports")


@pytest.fixture
def settings() -> Settings:
    """The API alone: these tests drive the projector themselves."""
    return conftest.test_settings(run_projector=False)


@pytest.fixture
async def posted(client: TestClient, keys: Keys, admin_conn: asyncpg.Connection) -> tuple[Scenario, int]:
    """The realistic mix in the log (nothing projected yet) and the head position."""
    await import_registry(admin_conn)
    await open_campaign(client, keys.admin)
    scenario = realistic_mix(seed=908)
    return scenario, await post_scenario(client, keys.admin, scenario)


async def read_tables(conn: asyncpg.Connection) -> tuple[int, dict[str, list[tuple[Any, ...]]]]:
    """The checkpoint and every row of the read tables, to show that a failed batch left nothing behind."""
    position = await conn.fetchval("SELECT position FROM projection_checkpoints WHERE name = 'dashboard'")
    rows = {t: [tuple(r) for r in await conn.fetch(f"SELECT * FROM {t} ORDER BY 1, 2, 3, 4")] for t in TABLES}
    return position, rows


ApplyDeltas = Callable[..., Awaitable[None]]


class PowerCut(Exception):
    """The simulated death of the projector process."""


class PartialWrites:
    """A connection that lets ``allowed`` statements through and then fails, as if the process died there."""

    def __init__(self, conn: Any, allowed: int) -> None:
        self._conn = conn
        self._allowed = allowed

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)

    async def _count(self) -> None:
        if self._allowed == 0:
            raise PowerCut
        self._allowed -= 1

    async def execute(self, *args: Any) -> str:
        await self._count()
        result: str = await self._conn.execute(*args)
        return result

    async def fetchval(self, *args: Any) -> Any:
        await self._count()
        return await self._conn.fetchval(*args)


async def test_a_batch_that_dies_half_way_is_not_applied_and_the_restart_counts_it_once(
        monkeypatch: pytest.MonkeyPatch, client: TestClient, keys: Keys, pool: asyncpg.Pool,
        admin_conn: asyncpg.Connection, posted: tuple[Scenario, int]) -> None:
    scenario, head = posted
    rng = random.Random(7)
    original: ApplyDeltas = runner.apply_deltas
    plan: list[int] = []   # statements the next apply_deltas may run before it dies; empty = no crash

    async def dying(conn: Any, deltas: Any, **kwargs: Any) -> None:
        if not plan:
            await original(conn, deltas, **kwargs)
            return
        await original(PartialWrites(conn, plan.pop()), deltas, **kwargs)
        raise PowerCut  # every statement ran: die before the commit

    monkeypatch.setattr(runner, "apply_deltas", dying)
    crashes = 0
    while True:
        before = await read_tables(admin_conn)
        plan[:] = [rng.randint(0, 5)] if rng.random() < 0.5 else []
        try:
            async with pool.acquire() as conn:
                batch = await apply_batch(conn, batch_size=rng.randint(5, 60))
        except PowerCut:
            crashes += 1
            assert await read_tables(admin_conn) == before, "a batch that died left rows or moved the checkpoint"
            continue
        if not batch.events:
            break
    assert crashes >= 5
    await settled(client, keys.viewer, head)
    await check_every_figure(client, keys.viewer, scenario.ledger, head)


async def test_a_connection_killed_before_commit_loses_the_whole_batch_and_nothing_else(
        monkeypatch: pytest.MonkeyPatch, client: TestClient, keys: Keys, pool: asyncpg.Pool,
        admin_conn: asyncpg.Connection, posted: tuple[Scenario, int]) -> None:
    scenario, head = posted
    original: ApplyDeltas = runner.apply_deltas
    calls = 0

    async def killed_after_writing(conn: Any, deltas: Any, **kwargs: Any) -> None:
        nonlocal calls
        await original(conn, deltas, **kwargs)
        calls += 1
        if calls % 3 == 1:  # everything written, not yet committed: the backend goes away
            await admin_conn.execute("SELECT pg_terminate_backend($1)", conn.get_server_pid())

    monkeypatch.setattr(runner, "apply_deltas", killed_after_writing)
    lost = 0
    async with asyncio.timeout(60):
        while True:
            before = await read_tables(admin_conn)
            try:
                async with pool.acquire() as conn:
                    batch = await apply_batch(conn, batch_size=45)
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
                lost += 1
                assert await read_tables(admin_conn) == before
                continue
            if not batch.events:
                break
    assert lost >= 3
    await settled(client, keys.viewer, head)
    await check_every_figure(client, keys.viewer, scenario.ledger, head)


async def test_a_projector_cancelled_mid_transaction_rolls_back_and_resumes(
        monkeypatch: pytest.MonkeyPatch, client: TestClient, keys: Keys, pool: asyncpg.Pool,
        admin_conn: asyncpg.Connection, posted: tuple[Scenario, int]) -> None:
    scenario, head = posted
    original: ApplyDeltas = runner.apply_deltas
    inside = asyncio.Event()
    hang = True

    async def hanging(conn: Any, deltas: Any, **kwargs: Any) -> None:
        await original(conn, deltas, **kwargs)
        if hang:
            inside.set()
            await asyncio.Event().wait()  # until cancelled, with the batch written but not committed

    async def project_once() -> None:
        async with pool.acquire() as conn:
            await apply_batch(conn, batch_size=200)

    async with asyncio.timeout(30), pool.acquire() as conn:
        await apply_batch(conn, batch_size=150)
    monkeypatch.setattr(runner, "apply_deltas", hanging)
    before = await read_tables(admin_conn)
    assert before[0] > 1
    task = asyncio.create_task(project_once())
    async with asyncio.timeout(10):
        await inside.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await read_tables(admin_conn) == before
    hang = False
    async with asyncio.timeout(30), pool.acquire() as conn:
        while (await apply_batch(conn, batch_size=200)).events:
            pass
    await settled(client, keys.viewer, head)
    await check_every_figure(client, keys.viewer, scenario.ledger, head)


async def test_two_appliers_racing_never_apply_a_batch_twice(
        client: TestClient, keys: Keys, pool: asyncpg.Pool, posted: tuple[Scenario, int]) -> None:
    scenario, head = posted
    refused = 0

    async def applier(batch_size: int) -> None:
        nonlocal refused
        while True:
            try:
                async with pool.acquire() as conn:
                    batch = await apply_batch(conn, batch_size=batch_size)
            except CheckpointMoved:
                refused += 1
                continue
            if not batch.events:
                return

    async with asyncio.timeout(60):
        await asyncio.gather(applier(17), applier(23), applier(31))
    assert refused > 0, "the appliers never collided, so this test showed nothing"
    await settled(client, keys.viewer, head)
    await check_every_figure(client, keys.viewer, scenario.ledger, head)
