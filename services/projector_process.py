"""Running the projector: one active projector (advisory lock), others wait as hot standbys."""

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Final

import asyncpg
import structlog

from events.coordination import FLAGS_PROJECTOR_LOCK, PROJECTOR_LOCK, ping
from events.errors import StoreUnavailable
from events.store import UNAVAILABLE_ERRORS, Connection
from projections.baselines import BaselineMemory
from projections.flag_runner import apply_flag_batch
from projections.fold import FoldError
from projections.projector import BatchApplied, apply_batch
from projections.tables import CheckpointMoved
from services.leadership import FollowerMode, Setback, follow_as_leader
from services.pause_gate import CHECK_SECONDS, PauseGate
from services.projection_state import ProjectionState
from services.settings import Settings

log = structlog.get_logger("qmstats.projector")
ApplyBatch = Callable[[Connection, int], Awaitable[BatchApplied]]
"""One projector batch: (connection, batch size) → what it applied (the dashboard's: projections.projector)."""


_SETBACKS: Final = (Setback((StoreUnavailable, *UNAVAILABLE_ERRORS), "degraded",
                            "projector lost the database; retrying",
                            lambda exc: f"database unavailable: {exc.__class__.__name__}"),)


async def _dashboard_batch(conn: Connection, batch_size: int) -> BatchApplied:
    return await apply_batch(conn, batch_size=batch_size)


class ProjectorWorker:
    """Runs the projector when it holds the leader lock; waits as a standby otherwise."""

    def __init__(self, pool: asyncpg.Pool, leader_url: str, state: ProjectionState, *, batch_size: int = 1000,
                 poll_seconds: float = 1.0, standby_seconds: float = 1.0, retry_seconds: float = 5.0,
                 on_batch: Callable[[BatchApplied], None] | None = None, apply: ApplyBatch = _dashboard_batch,
                 lock: int = PROJECTOR_LOCK, name: str = "projector", coalesce_seconds: float = 0.0,
                 pause: PauseGate | None = None) -> None:
        self._pool = pool
        self._apply = apply
        self._lock = lock
        self._log = log.bind(projection=name)
        self._leader_url = leader_url
        self._state = state
        self._batch_size = batch_size
        self._poll = poll_seconds
        self._standby = standby_seconds
        self._retry = retry_seconds
        self._on_batch = on_batch
        self._coalesce = coalesce_seconds
        self._pause = pause
        self._wake = asyncio.Event()
        self.running: asyncio.Task[None] | None = None  # set by services.resources.projector while it runs

    @property
    def state(self) -> ProjectionState:
        """What this worker reports: its mode (active, standby, failed…) and last error."""
        return self._state

    def wake(self) -> None:
        """New events were appended (a NOTIFY hint); look now rather than at the next poll."""
        self._wake.set()

    async def run(self) -> None:
        """Until cancelled: become leader when possible, then project. Returns at once, failed, on a standby."""
        await follow_as_leader(self._leader_url, self._lock, name="projector", lead=self._lead, report=self._report,
                               setbacks=_SETBACKS, standby_seconds=self._standby, retry_seconds=self._retry,
                               logger=self._log)

    def _report(self, mode: FollowerMode, error: str | None) -> None:
        self._state.projector = mode
        self._state.error = error

    async def _lead(self, leader: Connection) -> None:
        loop = asyncio.get_running_loop()
        pinged = loop.time()
        while True:
            if leader.is_closed():
                raise ConnectionError("leader connection closed")
            if self._pause is not None and self._pause.paused():
                # Appends arrive faster than a projector can follow: leave the cores to ingest and catch up in
                # full batches once the burst ends (services/overload.py; docs/decisions.md).
                await asyncio.sleep(CHECK_SECONDS)
                if loop.time() - pinged >= self._poll:
                    await ping(leader)
                    pinged = loop.time()
                continue
            # Cleared before the batch reads: a NOTIFY from now on may name events the batch does not see.
            self._wake.clear()
            try:
                async with self._pool.acquire() as conn:
                    batch = await self._apply(conn, self._batch_size)
            except CheckpointMoved:
                continue  # a rebuild swapped tables or another projector moved on: read the checkpoint again
            except FoldError as exc:
                # Never skip: stop here, say so everywhere, and retry later (a fixed
                # deployment or a repaired database may make the event applicable).
                self._state.projector = "failed"
                self._state.error = str(exc)
                self._log.error("projector stopped on an event it cannot apply", position=exc.position, error=str(exc))
                await asyncio.sleep(self._retry)
                continue
            except (asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError) as exc:
                # InternalClientError: asyncpg's own state went wrong, e.g. the connection was killed just
                # before COMMIT; the transaction did not commit (the checkpoint says so), so retry the batch.
                if isinstance(exc, UNAVAILABLE_ERRORS):
                    raise
                self._state.projector = "degraded"
                self._state.error = f"{exc.__class__.__name__}: {exc}"
                self._log.warning("projector batch failed; retrying", error=str(exc))
                await asyncio.sleep(self._retry)
                continue
            if self._state.projector in ("failed", "degraded"):
                self._state.projector = "active"
                self._state.error = None
            if batch.events:
                self._state.advance(batch.to_position)
                if self._on_batch is not None:
                    self._on_batch(batch)
                if batch.events < self._batch_size and self._coalesce > 0:
                    # Following live appends: a batch costs round trips and a commit whatever its size, so
                    # let the appends of the next few milliseconds gather rather than chase each one.
                    await asyncio.sleep(self._coalesce)
            else:
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation that races the
                # wake-up, and then SIGTERM leaves the projector running.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._poll):
                        await self._wake.wait()
            if loop.time() - pinged >= self._poll:
                await ping(leader)  # notice a dead leader connection promptly (once a poll, not once a batch)
                pinged = loop.time()


class ProjectorStopped(Exception):
    """The projector gave up by itself (it refuses a standby): the message says why."""


def flags_worker(pool: asyncpg.Pool, leader_url: str, settings: Settings, *,
                 pause: PauseGate | None = None) -> ProjectorWorker:
    """The data-quality flags projector (issue 15): a second worker beside the dashboard's, with its own lock
    and checkpoint, so either may lag, fail or be rebuilt without the other."""
    late_after = timedelta(days=settings.flag_late_after_days)
    # Valid only at the checkpoint it was settled at: the batch checks.
    memory = BaselineMemory(max_entries=settings.flags_memory_entries)

    async def batch(conn: Connection, size: int) -> BatchApplied:
        return await apply_flag_batch(conn, batch_size=size, late_after=late_after, memory=memory)

    return ProjectorWorker(pool, leader_url, ProjectionState(), batch_size=settings.flags_batch_size,
                           poll_seconds=settings.projector_poll_seconds, apply=batch, lock=FLAGS_PROJECTOR_LOCK,
                           name="flags", coalesce_seconds=settings.flags_coalesce_seconds, pause=pause)
