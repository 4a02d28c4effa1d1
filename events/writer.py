"""Group commit: one writer task appends everything queued in one commit.

Concurrent requests do not each pay for a serialized transaction and a commit flush.
Requests wait in a queue; the single writer takes all of them (up to a bound), decides
each one, inserts the accepted ones together, commits once and then answers every waiting
request. A refused request does not affect the others in its group.

A group costs two round trips (``append_group``), on a connection the writer keeps while
requests keep coming, and holds the append lock for neither of the writer's waits: it reads
what deciding needs without the lock, decides in Python, and one statement takes the lock,
checks that nothing appended since touches what was decided (else the group is decided again
under the lock, as before) and appends. If the database rejects the group's insert itself
(it should not: everything was decided beforehand), the writer falls back to one commit per
request, so one bad request cannot fail the rest.
"""

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
import structlog
from asyncpg.pool import PoolConnectionProxy

from events.decide import Accepted, AppendRequest, GroupDecider, Outcome
from events.errors import DomainError, StoreUnavailable
from events.store import (
    UNAVAILABLE_ERRORS,
    Connection,
    Footprint,
    append_decided,
    insert_records,
    load_state,
    named_ids,
    read_snapshot,
    release_append_lock,
    translated_errors,
)

log = structlog.get_logger("qmstats.writer")
HOLD_IDLE_SECONDS = 0.5
"""How long the writer keeps its connection once nothing is queued."""
HOLD_MIN_POOL = 3
"""The writer keeps its connection only in a pool of at least this many: in a smaller one the readers would
wait behind a steady write load for the one or two connections there are."""


@dataclass(frozen=True, slots=True)
class GroupCommitted:
    """What one commit did, for metrics."""

    requests: int
    events: int
    seconds: float
    head: int


class WriterStopped(StoreUnavailable):
    """The writer is shutting down and takes no new requests."""


class GroupCommitWriter:
    """The single writer of a process. Start ``run()`` as a task; call ``append()`` from handlers."""

    def __init__(self, pool: asyncpg.Pool, *, max_group_events: int = 5000,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 clock_skew: timedelta = timedelta(minutes=5),
                 on_commit: Callable[[GroupCommitted], None] | None = None) -> None:
        self._pool = pool
        self._max_group_events = max_group_events
        self._clock = clock
        self._skew = clock_skew
        self._on_commit = on_commit
        self._queue: deque[tuple[AppendRequest, asyncio.Future[Accepted]]] = deque()
        self._wakeup = asyncio.Event()
        self._accepting = True
        self._conn: PoolConnectionProxy[asyncpg.Record] | None = None

    @property
    def queued(self) -> int:
        """Requests waiting for the writer."""
        return len(self._queue)

    async def append(self, request: AppendRequest) -> Accepted:
        """Queue a request and wait for its group to commit; raises the DomainError that refused it."""
        if not self._accepting:
            raise WriterStopped("the service is shutting down; retry against another instance or later")
        future: asyncio.Future[Accepted] = asyncio.get_running_loop().create_future()
        self._queue.append((request, future))
        self._wakeup.set()
        # A cancelled caller (client gone) does not cancel the append: the writer owns it now,
        # and the client's retry with the same event_id will be answered as a duplicate.
        return await asyncio.shield(future)

    async def run(self) -> None:
        """The writer loop: take what is queued, commit it as one group, repeat until drained."""
        try:
            while self._accepting or self._queue:
                if not self._queue:
                    await self._idle()
                    continue
                await self._commit_next()
        finally:
            await self._release()

    async def _idle(self) -> None:
        # While requests keep coming the writer keeps its connection (no pool reset per group); once the queue
        # has stayed empty for a moment the connection goes back to the pool for the readers.
        self._wakeup.clear()
        if self._conn is None:
            await self._wakeup.wait()
            return
        try:
            async with asyncio.timeout(HOLD_IDLE_SECONDS):
                await self._wakeup.wait()
        except TimeoutError:
            with contextlib.suppress(*UNAVAILABLE_ERRORS):
                await self._release()

    async def _commit_next(self) -> None:
        group = self._take_group()
        try:
            await self._commit_group(group)
        except Exception as exc:  # answer every waiter, then keep serving
            log.exception("group commit failed", requests=len(group))
            for _, future in group:
                if not future.done():
                    future.set_exception(exc)
        if self._pool.get_max_size() < HOLD_MIN_POOL:
            with contextlib.suppress(*UNAVAILABLE_ERRORS):
                await self._release()

    def stop_accepting(self) -> None:
        """Refuse new requests; ``run()`` returns once every queued request has been answered."""
        self._accepting = False
        self._wakeup.set()

    def _take_group(self) -> list[tuple[AppendRequest, asyncio.Future[Accepted]]]:
        group = [self._queue.popleft()]
        size = len(group[0][0].drafts)
        while self._queue and size + len(self._queue[0][0].drafts) <= self._max_group_events:
            item = self._queue.popleft()
            size += len(item[0].drafts)
            group.append(item)
        return group

    async def _commit_group(self, group: list[tuple[AppendRequest, asyncio.Future[Accepted]]]) -> None:
        started = time.perf_counter()
        try:
            outcomes, head = await self._transaction([request for request, _ in group])
        except StoreUnavailable as error:
            for _, future in group:
                if not future.done():
                    future.set_exception(error)
            return
        except asyncpg.PostgresError:
            if len(group) == 1:
                raise
            log.warning("group insert refused by the database; retrying request by request", requests=len(group))
            for item in group:
                # A request the database refuses on its own answers only its own caller.
                try:
                    await self._commit_group([item])
                except Exception as exc:
                    log.exception("request refused by the database", request_id=item[0].request_id)
                    if not item[1].done():
                        item[1].set_exception(exc)
            return
        events = 0
        for (_, future), outcome in zip(group, outcomes, strict=True):
            if isinstance(outcome, Accepted):
                events += len(outcome.rows)
            if future.done():
                continue
            if isinstance(outcome, DomainError):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
        if self._on_commit is not None:
            self._on_commit(GroupCommitted(len(group), events, time.perf_counter() - started, head))

    async def _transaction(self, requests: list[AppendRequest]) -> tuple[list[Outcome], int]:
        async with translated_errors():
            if self._conn is None or not _usable(self._conn):
                await self._release()
                self._conn = await self._pool.acquire()
            return await append_group(self._conn, requests, self._clock(), self._skew)

    async def _release(self) -> None:
        """Give the writer's connection back to the pool (asyncpg resets it; a closed one is replaced)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            await self._pool.release(conn)


def _usable(conn: "PoolConnectionProxy[asyncpg.Record]") -> bool:
    try:
        return not conn.is_closed()
    except asyncpg.InterfaceError:  # its connection closed and the pool took it back (releasing it is a no-op)
        return False


async def append_group(conn: Connection, requests: list[AppendRequest], now: datetime,
                       clock_skew: timedelta = timedelta(minutes=5)) -> tuple[list[Outcome], int]:
    """Decide and append requests on ``conn``, outside a transaction; returns each outcome and the new head.

    The same decisions as ``append_in_transaction``, in two round trips, with the append lock held only while
    PostgreSQL runs the second: what deciding needs is read in one snapshot without the lock, the requests are
    decided against it, and ``append_decided`` appends the rows under the lock in one statement (its own
    transaction: all rows or none, the NOTIFY sent when they commit, positions visible in lock order). When other
    groups were appended since the snapshot and none touches this group's events, campaigns or keys, its
    decisions stand and its events move after them: positions above the snapshot's head shift, a duplicate's
    stored position does not. Otherwise (a concurrent retry of one of its event ids, a campaign closed meanwhile,
    a key revoked, a region list imported) the group is decided again holding the lock, in three round trips
    (``_decide_holding_the_lock``).
    A group that appends nothing (refusals and duplicates only) stands on the snapshot alone.
    """
    snapshot = await read_snapshot(conn, [d for r in requests for d in r.drafts], [r.actor.key_id for r in requests])
    decider = GroupDecider(snapshot.state, now, clock_skew)
    outcomes = [decider.decide(request) for request in requests]
    appending = [(r, o) for r, o in zip(requests, outcomes, strict=True) if isinstance(o, Accepted) and o.rows]
    if not appending:
        return outcomes, snapshot.head
    after = await append_decided(conn, snapshot, _footprint([r for r, _ in appending]),
                                 [row for _, o in appending for row in o.rows],
                                 [parts for _, o in appending for parts in o.parts], decider.stamp)
    if after is None:
        log.info("group decided again under the append lock", requests=len(requests))
        return await _decide_holding_the_lock(conn, requests, now, clock_skew)
    shift = after - snapshot.head
    if shift:
        outcomes = [o.moved(snapshot.head, shift) if isinstance(o, Accepted) else o for o in outcomes]
    return outcomes, decider.head[0] + shift


def _footprint(requests: list[AppendRequest]) -> Footprint:
    """What deciding these requests read that appends since the snapshot, or a revocation, could have changed."""
    drafts = [d for r in requests for d in r.drafts]
    return Footprint(frozenset(named_ids(drafts)), frozenset(d.campaign for d in drafts),
                     frozenset(r.actor.key_id for r in requests))


async def _decide_holding_the_lock(conn: Connection, requests: list[AppendRequest], now: datetime,
                                   clock_skew: timedelta) -> tuple[list[Outcome], int]:
    """Decide and append holding the append lock for the session from the read to the insert (three round trips).

    When anything fails the lock is released, or the connection terminated, which releases it too.
    """
    try:
        answered = await _decide_and_insert(conn, requests, now, clock_skew, hold=True)
        await release_append_lock(conn)
    except BaseException:
        try:
            await release_append_lock(conn)
        except BaseException:
            conn.terminate()
        raise
    return answered


async def append_in_transaction(conn: Connection, requests: list[AppendRequest], now: datetime,
                                clock_skew: timedelta = timedelta(minutes=5)) -> tuple[list[Outcome], int]:
    """Decide and append requests in one transaction on ``conn``; returns each outcome and the new head."""
    async with conn.transaction():
        return await _decide_and_insert(conn, requests, now, clock_skew, hold=False)


async def _decide_and_insert(conn: Connection, requests: list[AppendRequest], now: datetime, clock_skew: timedelta,
                             *, hold: bool) -> tuple[list[Outcome], int]:
    """Take the append lock (for the session with ``hold``) with what deciding needs, decide every request,
    insert the accepted rows; returns each outcome and the new head. The caller ends the lock."""
    state = await load_state(conn, [d for r in requests for d in r.drafts], [r.actor.key_id for r in requests],
                             hold=hold)
    decider = GroupDecider(state, now, clock_skew)
    outcomes = [decider.decide(request) for request in requests]
    rows = [row for o in outcomes if isinstance(o, Accepted) for row in o.rows]
    if rows:
        await insert_records(conn, rows)
    return outcomes, decider.head[0]
