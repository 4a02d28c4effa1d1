"""Running the projector: one active projector (advisory lock), others wait as hot standbys; `qmstats project`."""

import asyncio
import contextlib
import signal
from collections.abc import Callable

import asyncpg
import structlog

from events.coordination import EVENTS_CHANNEL, PROJECTOR_LOCK, in_recovery, ping, try_lock_session
from events.errors import StoreUnavailable
from events.store import UNAVAILABLE_ERRORS, Connection
from projections.fold import FoldError
from projections.projector import BatchApplied, apply_batch
from projections.tables import CheckpointMoved
from services.database import ON_STANDBY, create_pool
from services.integrator import IntegratorWorker
from services.listener import Listener
from services.projection_state import ProjectionState
from services.settings import Settings
from services.signingkey import load_signer

log = structlog.get_logger("qmstats.projector")


class ProjectorWorker:
    """Runs the projector when it holds the leader lock; waits as a standby otherwise."""

    def __init__(self, pool: asyncpg.Pool, leader_url: str, state: ProjectionState, *, batch_size: int = 1000,
                 poll_seconds: float = 1.0, standby_seconds: float = 1.0, retry_seconds: float = 5.0,
                 on_batch: Callable[[BatchApplied], None] | None = None) -> None:
        self._pool = pool
        self._leader_url = leader_url
        self._state = state
        self._batch_size = batch_size
        self._poll = poll_seconds
        self._standby = standby_seconds
        self._retry = retry_seconds
        self._on_batch = on_batch
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """New events were appended (a NOTIFY hint); look now rather than at the next poll."""
        self._wake.set()

    async def run(self) -> None:
        """Until cancelled: become leader when possible, then project. Returns at once, failed, on a standby."""
        while True:
            leader: Connection | None = None
            try:
                leader = await asyncpg.connect(self._leader_url)
                if await in_recovery(leader):
                    # A standby grants advisory locks of its own, so the lock alone would not stop us.
                    self._state.projector = "failed"
                    self._state.error = ON_STANDBY
                    log.error("projector refuses to run on a standby", error=ON_STANDBY)
                    return
                # Held for the whole session: the connection dying (process killed, network gone)
                # releases it, and a standby polling for it takes over.
                while not await try_lock_session(leader, PROJECTOR_LOCK):
                    if self._state.projector != "standby":
                        log.info("projector standing by: another process holds the lead")
                    self._state.projector = "standby"
                    await asyncio.sleep(self._standby)
                log.info("projector active")
                self._state.projector = "active"
                self._state.error = None
                await self._lead(leader)
            except (StoreUnavailable, *UNAVAILABLE_ERRORS) as exc:
                self._state.projector = "degraded"
                self._state.error = f"database unavailable: {exc.__class__.__name__}"
                log.warning("projector lost the database; retrying", error=str(exc))
                await asyncio.sleep(self._retry)
            finally:
                if leader is not None and not leader.is_closed():
                    leader.terminate()

    async def _lead(self, leader: Connection) -> None:
        while True:
            if leader.is_closed():
                raise ConnectionError("leader connection closed")
            try:
                async with self._pool.acquire() as conn:
                    batch = await apply_batch(conn, batch_size=self._batch_size)
            except CheckpointMoved:
                continue  # a rebuild swapped tables or another projector moved on: read the checkpoint again
            except FoldError as exc:
                # Never skip: stop here, say so everywhere, and retry later (a fixed
                # deployment or a repaired database may make the event applicable).
                self._state.projector = "failed"
                self._state.error = str(exc)
                log.error("projector stopped on an event it cannot apply", position=exc.position, error=str(exc))
                await asyncio.sleep(self._retry)
                continue
            except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                if isinstance(exc, UNAVAILABLE_ERRORS):
                    raise
                self._state.projector = "degraded"
                self._state.error = f"{exc.__class__.__name__}: {exc}"
                log.warning("projector batch failed; retrying", error=str(exc))
                await asyncio.sleep(self._retry)
                continue
            if self._state.projector in ("failed", "degraded"):
                self._state.projector = "active"
                self._state.error = None
            if batch.events:
                self._state.advance(batch.to_position)
                if self._on_batch is not None:
                    self._on_batch(batch)
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll)
            await ping(leader)  # notice a dead leader connection promptly


class ProjectorStopped(Exception):
    """The projector gave up by itself (it refuses a standby): the message says why."""


async def run_projector(settings: Settings, database_url: str) -> None:
    """Project until SIGINT/SIGTERM. Another running projector makes this one a hot standby.

    Raises ProjectorStopped when the projector refuses to run (the database is a standby).
    """
    pool = await create_pool(database_url, min_size=1, max_size=4, connect_timeout=settings.database_timeout_seconds,
                             command_timeout=settings.statement_timeout_seconds)
    state = ProjectionState()
    worker = ProjectorWorker(pool, database_url, state, batch_size=settings.projector_batch_size,
                             poll_seconds=settings.projector_poll_seconds)
    # The log's integrator runs wherever the projector runs (services.integrator).
    workers: list[ProjectorWorker | IntegratorWorker] = [worker]
    if settings.run_integrator:
        workers.append(IntegratorWorker(pool, database_url, load_signer(settings),
                                        interval_seconds=settings.log_checkpoint_interval_seconds))

    def wake(*_args: object) -> None:
        for each in workers:
            each.wake()

    listener = Listener(database_url, {EVENTS_CHANNEL: wake}, on_connect=wake)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    projecting = asyncio.create_task(worker.run(), name="projector")
    tasks = [projecting, asyncio.create_task(listener.run(), name="listen")]
    tasks += [asyncio.create_task(each.run(), name="integrator") for each in workers[1:]]
    stopping = asyncio.create_task(stop.wait(), name="stop")
    try:
        await asyncio.wait([projecting, stopping], return_when=asyncio.FIRST_COMPLETED)
        if projecting.done():
            projecting.result()  # an unexpected error propagates as itself
            raise ProjectorStopped(state.error or "the projector stopped")
    finally:
        stopping.cancel()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await pool.close()
        log.info("projector stopped", position=state.position)
