"""Hot-standby replicas: one pool each, their health and lag as this process sees them, and which may serve a read.

A physical replica is a copy of the primary, so the projection checkpoint row reaches it in the
same WAL record as the read rows it describes: ``projection_checkpoints.position`` on a replica
is an exact "as of" for every read table there, and ``max(position)`` of ``events`` says how far
the log has been replayed. Every process polls each replica (``replica_poll_seconds``) for those
two positions; lag in seconds is measured against the moments this process heard of the primary's
head passing each position (NOTIFY, else the poll), so it is right even when the replica's WAL receiver has
stopped.
"""

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

import asyncpg
import structlog

from events.coordination import in_recovery
from events.errors import StoreUnavailable
from events.store import UNAVAILABLE_ERRORS, Connection, head
from projections.tables import checkpoint
from services.database import create_pool
from services.projection_state import ProjectionState
from services.settings import Settings

log = structlog.get_logger("qmstats.replicas")
_TIMELINE_LIMIT = 20_000  # (head, seen-at) samples kept to age a replica's lag; at most one per poll


def display_name(url: str) -> str:
    """host:port/database of a URL, without credentials (for logs, /metrics and /readyz)."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    host = parts.hostname or query.get("host", ["local"])[0]
    port = parts.port or int(query.get("port", ["5432"])[0])
    return f"{host}:{port}{parts.path or '/'}"


async def standby_status(conn: Connection) -> tuple[bool, int, int]:
    """Whether the server is in recovery, the projection position and the log head it has replayed."""
    standby = await in_recovery(conn)
    projection = await checkpoint(conn)
    replayed, _ = await head(conn)
    return standby, projection, replayed


@dataclass
class Replica:
    """One replica: its pool and what the last poll (or the last failed read) said about it."""

    url: str
    name: str
    pool: asyncpg.Pool | None = None
    up: bool = False
    standby: bool = True
    projection: int = 0
    head: int = 0
    lag_positions: int = 0
    lag_seconds: float = 0.0
    error: str | None = "not checked yet"
    max_lag_seconds: float = 5.0

    @property
    def in_use(self) -> bool:
        """Reads may go here: it answers, it is a standby, and it is not lagging past the bound."""
        return self.up and self.standby and self.pool is not None and self.lag_seconds <= self.max_lag_seconds

    def failed(self, exc: BaseException) -> None:
        """A poll or a read could not use it: skip it until a poll succeeds again."""
        if self.up:
            log.warning("replica unavailable; reads go elsewhere", replica=self.name, error=str(exc))
        self.up = False
        self.error = f"unavailable: {exc.__class__.__name__}"

    @property
    def state(self) -> str:
        """For /readyz: ok, or why reads skip it."""
        if not self.up:
            return self.error or "down"
        if not self.standby:
            return "not a standby (promoted or misconfigured): not used for reads"
        if self.lag_seconds > self.max_lag_seconds:
            return f"lagging {self.lag_seconds:.1f} s ({self.lag_positions} positions): not used for reads"
        return "ok"


@dataclass
class ReplicaSet:
    """Every configured replica, the rotation over those in use, and the checkpoint SSE follows."""

    replicas: list[Replica] = field(default_factory=list)
    followed: ProjectionState = field(default_factory=ProjectionState)
    """The position /v1/stream announces while replicas serve reads: one every replica in use has reached."""
    _turn: int = 0
    _timeline: deque[tuple[int, float]] = field(default_factory=deque)

    @classmethod
    def configured(cls, settings: Settings) -> "ReplicaSet":
        """One Replica per QMSTATS_REPLICA_URLS entry (no connection yet)."""
        return cls([Replica(url, display_name(url), max_lag_seconds=settings.replica_max_lag_seconds)
                    for url in settings.replica_urls])

    def __bool__(self) -> bool:
        return bool(self.replicas)

    def choose(self) -> Replica | None:
        """The next replica in use, round robin; None when none is (the primary answers)."""
        usable = [r for r in self.replicas if r.in_use]
        if not usable:
            return None
        self._turn = (self._turn + 1) % len(usable)
        return usable[self._turn]

    async def open(self, settings: Settings) -> None:
        """Create the pools without connecting: a replica that is down at start must not stop the service."""
        for replica in self.replicas:
            replica.pool = await create_pool(
                replica.url, min_size=0, max_size=settings.pool_max_size,
                connect_timeout=min(settings.database_timeout_seconds, 2.0),
                command_timeout=settings.statement_timeout_seconds)

    async def close(self) -> None:
        """Close every pool."""
        for replica in self.replicas:
            if replica.pool is not None:
                await replica.pool.close()

    def saw_head(self, head: int) -> None:
        """The primary's log reached ``head`` now (a NOTIFY): remember when, to age a replica that lacks it."""
        if self.replicas and (not self._timeline or head > self._timeline[-1][0]):
            self._timeline.append((head, time.monotonic()))

    def _lag_seconds(self, head: int, now: float) -> float:
        for position, seen_at in self._timeline:
            if position > head:
                return now - seen_at
        return 0.0

    async def check(self, primary: ProjectionState) -> None:
        """Poll every replica once and update health, lag and the followed checkpoint."""
        self.saw_head(primary.head)  # in case a notification was lost
        now = time.monotonic()
        for replica in self.replicas:
            assert replica.pool is not None
            try:
                async with asyncio.timeout(2.0), replica.pool.acquire() as conn:
                    replica.standby, replica.projection, replica.head = await standby_status(conn)
            except (*UNAVAILABLE_ERRORS, StoreUnavailable, asyncpg.PostgresError) as exc:
                replica.failed(exc)
                continue
            if not replica.up:
                log.info("replica answering", replica=replica.name, standby=replica.standby)
            replica.up, replica.error = True, None
            replica.lag_positions = max(0, primary.head - replica.head)
            replica.lag_seconds = self._lag_seconds(replica.head, now) if replica.lag_positions else 0.0
        heads = [r.head for r in self.replicas if r.up]
        while len(self._timeline) > 1 and (self._timeline[0][0] <= min(heads, default=0)
                                           or len(self._timeline) > _TIMELINE_LIMIT):
            self._timeline.popleft()
        usable = [r.projection for r in self.replicas if r.in_use]
        # With no replica in use the primary answers reads, so the stream follows the primary.
        self.followed.advance(min(usable) if usable else primary.position)
        self.followed.saw_head(primary.head)

    async def monitor(self, primary: ProjectionState, every: float) -> None:
        """Until cancelled: check the replicas every ``every`` seconds."""
        while True:
            try:
                await self.check(primary)
            except Exception as exc:  # the monitor must outlive any one bad poll
                log.warning("replica check failed", error=str(exc))
            await asyncio.sleep(every)


@contextlib.asynccontextmanager
async def following_replicas(replicas: ReplicaSet, settings: Settings,
                             primary: ProjectionState) -> AsyncIterator[ReplicaSet]:
    """The replicas' pools open and their monitor running (checked once before the first request), for a block."""
    await replicas.open(settings)
    task: asyncio.Task[None] | None = None
    try:
        if replicas:
            await replicas.check(primary)
            task = asyncio.create_task(replicas.monitor(primary, settings.replica_poll_seconds),
                                       name="replica-monitor")
        yield replicas
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await replicas.close()
