"""Group commit: one writer task appends everything queued in one transaction.

Concurrent requests do not each pay for a serialized transaction and a commit flush.
Requests wait in a queue; the single writer takes all of them (up to a bound), decides
each one under the append lock, inserts the accepted ones together, commits once and then
answers every waiting request. A refused request does not affect the others in its group.
If the database rejects the group's insert itself (it should not: everything was decided
beforehand), the writer falls back to one transaction per request, so one bad request
cannot fail the rest.
"""

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
import structlog

from events.decide import Accepted, AppendRequest, GroupDecider, Outcome
from events.errors import DomainError, StoreUnavailable
from events.store import Connection, insert_records, load_state, translated_errors

log = structlog.get_logger("qmstats.writer")


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
        while self._accepting or self._queue:
            if not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            group = self._take_group()
            try:
                await self._commit_group(group)
            except Exception as exc:  # answer every waiter, then keep serving
                log.exception("group commit failed", requests=len(group))
                for _, future in group:
                    if not future.done():
                        future.set_exception(exc)

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
        async with translated_errors(), self._pool.acquire() as conn:
            return await append_in_transaction(conn, requests, self._clock(), self._skew)


async def append_in_transaction(conn: Connection, requests: list[AppendRequest], now: datetime,
                                clock_skew: timedelta = timedelta(minutes=5)) -> tuple[list[Outcome], int]:
    """Decide and append requests in one transaction on ``conn``; returns each outcome and the new head."""
    async with conn.transaction():
        state = await load_state(conn, [d for r in requests for d in r.drafts], [r.actor.key_id for r in requests])
        decider = GroupDecider(state, now, clock_skew)
        outcomes = [decider.decide(request) for request in requests]
        rows = [row for o in outcomes if isinstance(o, Accepted) for row in o.rows]
        if rows:
            await insert_records(conn, rows)
        return outcomes, decider.head[0]
