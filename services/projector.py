"""The projector worker: one active projector (advisory lock), others wait as hot standbys."""

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import asyncpg
import structlog

from events.store import UNAVAILABLE_ERRORS, Connection
from projections.fold import FoldError
from projections.runner import BatchApplied, apply_batch
from projections.tables import CheckpointMoved
from services.projection import ProjectionState

log = structlog.get_logger("qmstats.projector")

# Held for the whole session by the active projector. Its connection dying (process killed,
# network gone) releases it, and a standby polling pg_try_advisory_lock takes over.
PROJECTOR_LOCK = 0x716D_0003
ApplyBatch = Callable[[Connection, int], Awaitable[BatchApplied]]
"""One projector batch: (connection, batch size) → what it applied (dashboard: projections.runner)."""


async def _dashboard_batch(conn: Connection, batch_size: int) -> BatchApplied:
    return await apply_batch(conn, batch_size=batch_size)


class ProjectorWorker:
    """Runs the projector when it holds the leader lock; waits as a standby otherwise."""

    def __init__(self, pool: asyncpg.Pool, leader_url: str, state: ProjectionState, *, batch_size: int = 1000,
                 poll_seconds: float = 1.0, standby_seconds: float = 1.0, retry_seconds: float = 5.0,
                 on_batch: Callable[[BatchApplied], None] | None = None, apply: ApplyBatch = _dashboard_batch,
                 lock: int = PROJECTOR_LOCK, name: str = "projector") -> None:
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
        self._wake = asyncio.Event()

    @property
    def state(self) -> ProjectionState:
        """What this worker reports: its mode (active, standby, failed…) and last error."""
        return self._state

    def wake(self) -> None:
        """New events were appended (a NOTIFY hint); look now rather than at the next poll."""
        self._wake.set()

    async def run(self) -> None:
        """Until cancelled: become leader when possible, then project."""
        while True:
            leader: Connection | None = None
            try:
                leader = await asyncpg.connect(self._leader_url)
                while not await leader.fetchval("SELECT pg_try_advisory_lock($1)", self._lock):
                    if self._state.projector != "standby":
                        self._log.info("projector standing by: another process holds the lead")
                    self._state.projector = "standby"
                    await asyncio.sleep(self._standby)
                self._log.info("projector active")
                self._state.projector = "active"
                self._state.error = None
                await self._lead(leader)
            except UNAVAILABLE_ERRORS as exc:
                self._state.projector = "degraded"
                self._state.error = f"database unavailable: {exc.__class__.__name__}"
                self._log.warning("projector lost the database; retrying", error=str(exc))
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
            except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
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
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll)
            await leader.fetchval("SELECT 1")  # notice a dead leader connection promptly
