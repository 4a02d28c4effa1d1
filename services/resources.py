"""The resources a qmstats process runs, each an async context taking its dependencies as arguments.

``create_app`` (the API) and ``qmstats project`` (the projector alone) enter the same contexts.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import structlog

from events.region_store import lists_version
from events.store import head, translated_errors
from events.writer import GroupCommitted, GroupCommitWriter
from projections.projector import BatchApplied
from projections.tables import checkpoint_status
from services.database import create_pool
from services.integrator import IntegratorState
from services.integrator_thread import IntegratorThread
from services.listener import Callback, Listener
from services.pause_gate import PauseGate
from services.projection_state import ProjectionState
from services.projector_process import ProjectorWorker, flags_worker
from services.settings import Settings
from services.signingkey import load_signer
from services.state import ServiceState

log = structlog.get_logger("qmstats.resources")
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The wall clock, in UTC."""
    return datetime.now(UTC)


@asynccontextmanager
async def background(name: str, coro: Coroutine[Any, Any, None]) -> AsyncIterator[asyncio.Task[None]]:
    """Run ``coro`` as a task for the duration of the block; cancel it on the way out."""
    task = asyncio.create_task(coro, name=name)
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@asynccontextmanager
async def database_pool(settings: Settings, url: str, *, min_size: int | None = None,
                        max_size: int | None = None) -> AsyncIterator[asyncpg.Pool]:
    """A bounded connection pool on ``url``, closed on the way out."""
    pool = await create_pool(url, min_size=settings.pool_min_size if min_size is None else min_size,
                             max_size=settings.pool_max_size if max_size is None else max_size,
                             connect_timeout=settings.database_timeout_seconds,
                             command_timeout=settings.statement_timeout_seconds)
    try:
        yield pool
    finally:
        await pool.close()


@asynccontextmanager
async def group_commit_writer(pool: asyncpg.Pool, settings: Settings, state: ServiceState, *, clock: Clock,
                              on_commit: Callable[[GroupCommitted], None]) -> AsyncIterator[GroupCommitWriter]:
    """The process's writer task; on the way out it refuses new appends and answers everything queued."""
    writer = GroupCommitWriter(pool, max_group_events=settings.group_max_events, clock=clock,
                               clock_skew=timedelta(seconds=settings.clock_skew_seconds), on_commit=on_commit)
    task = asyncio.create_task(writer.run(), name="group-commit-writer")
    state.writer_running = True
    try:
        yield writer
    finally:
        state.shutting_down = True
        writer.stop_accepting()
        await task
        state.writer_running = False


@asynccontextmanager
async def projector(pool: asyncpg.Pool, url: str, settings: Settings, projection: ProjectionState, *,
                    on_batch: Callable[[BatchApplied], None] | None = None,
                    pause: PauseGate | None = None) -> AsyncIterator[ProjectorWorker]:
    """The projector (leader or hot standby) running in this process; it steps aside while ``pause`` says so."""
    worker = ProjectorWorker(pool, url, projection, batch_size=settings.projector_batch_size,
                             poll_seconds=settings.projector_poll_seconds, on_batch=on_batch,
                             coalesce_seconds=settings.projector_coalesce_seconds, pause=pause)
    async with background("projector", worker.run()) as task:
        worker.running = task
        yield worker


@asynccontextmanager
async def listening(url: str, channels: dict[str, Callback], on_connect: Callable[[bool], None]) -> AsyncIterator[
        None]:
    """A dedicated LISTEN connection delivering ``channels`` for the duration of the block."""
    async with background("listener", Listener(url, channels, on_connect=on_connect).run()):
        yield


async def poll_projection(pool: asyncpg.Pool, projection: ProjectionState, every: float, *,
                          on_lists: Callable[[int], None] = lambda _version: None) -> None:
    """Fallback for lost notifications: read the checkpoint, the head and the region lists' version every poll."""
    while True:
        try:
            async with translated_errors(), pool.acquire() as conn:
                status = await checkpoint_status(conn)
                log_head, _ = await head(conn)  # after the checkpoint, so never behind it
                lists = await lists_version(conn)
            on_lists(lists)
            projection.tables = status.tables
            projection.saw_head(log_head)
            projection.advance(status.position, status.updated_at)
        except Exception as exc:  # the poll is a fallback: report and keep polling
            log.warning("projection poll failed", error=str(exc))
        await asyncio.sleep(every)


@asynccontextmanager
async def flags_projector(pool: asyncpg.Pool, url: str, settings: Settings, *,
                          pause: PauseGate | None = None) -> AsyncIterator[ProjectorWorker]:
    """The data-quality flags projector (issue 15; leader or hot standby) running in this process; it steps aside
    while ``pause`` says so."""
    worker = flags_worker(pool, url, settings, pause=pause)
    async with background("flags-projector", worker.run()) as task:
        worker.running = task
        yield worker


@asynccontextmanager
async def integrator(url: str, settings: Settings,
                     state: IntegratorState | None = None) -> AsyncIterator[IntegratorThread]:
    """The log's integrator (issue 16: Merkle tree and signed checkpoints; leader or hot standby) in this process,
    on a thread of its own (services/integrator_thread.py says why)."""
    thread = IntegratorThread(url, settings, load_signer(settings), state or IntegratorState())
    thread.start()
    try:
        yield thread
    finally:
        await asyncio.to_thread(thread.stop)
