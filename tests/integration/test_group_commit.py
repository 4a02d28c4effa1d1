"""Requests that share a commit are still decided one by one: a refused one costs the others nothing."""

import asyncio
from collections.abc import Sequence
from typing import Any

import asyncpg
import pytest

import events.writer
from events.chain_check import verify_chain
from events.decide import Accepted, AppendRequest
from events.errors import EventIdConflict, ValidationFailed
from events.records import EventRow
from events.store import Connection, Footprint, Snapshot, append_decided, find_event
from events.writer import GroupCommitWriter
from tests.conftest import Database
from tests.factories import event
from tests.integration.appending import CommitLog, count_events, open_campaign, read_log, request, running_writer


class LogRecorder:
    """Stands in for the writer's structlog logger: keeps (level, message) and renders nothing."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def warning(self, message: str, **_: Any) -> None:
        self.lines.append(("warning", message))

    def exception(self, message: str, **_: Any) -> None:
        self.lines.append(("error", message))


def mixed_group(stored: dict[str, Any]) -> tuple[list[AppendRequest], list[dict[str, Any]]]:
    """Five requests: good, unknown campaign, good batch of two, event_id conflict, good.

    Returns the requests and the envelopes that should end up stored, in order.
    """
    good_a, good_b1, good_b2, good_c = event(), event("publicity_held"), event("media_reported"), event("pledge_signed")
    unknown_campaign = event(campaign="2018", occurred_at="2018-09-08T10:00:00+08:00")
    conflicting = stored | {"region": "330103"}
    requests = [request(good_a), request(unknown_campaign), request(good_b1, good_b2), request(conflicting),
                request(good_c)]
    return requests, [good_a, good_b1, good_b2, good_c]


async def append_all(writer: GroupCommitWriter, requests: list[AppendRequest]) -> list[Accepted | BaseException]:
    return await asyncio.gather(*(writer.append(r) for r in requests), return_exceptions=True)


def assert_mixed_outcomes(outcomes: list[Accepted | BaseException], stored: dict[str, Any]) -> None:
    good_a, unknown, batch, conflict, good_c = outcomes
    assert isinstance(good_a, Accepted)
    assert isinstance(batch, Accepted)
    assert isinstance(good_c, Accepted)
    assert [(r.status, r.position) for r in good_a.results] == [("created", 3)]
    assert [(r.status, r.position) for r in batch.results] == [("created", 4), ("created", 5)]
    assert [(r.status, r.position) for r in good_c.results] == [("created", 6)]
    assert isinstance(unknown, ValidationFailed)
    assert [e.loc for e in unknown.errors] == [("campaign",)]
    assert isinstance(conflict, EventIdConflict)
    assert conflict.event_id == stored["event_id"]


async def assert_log_holds(conn: Connection, expected: list[dict[str, Any]], refused: list[AppendRequest]) -> None:
    log = await read_log(conn)
    assert [e.event_id for e in log[2:]] == [e["event_id"] for e in expected]
    assert verify_chain(log).ok
    assert await count_events(conn) == 2 + len(expected)
    for req in refused:
        for draft in req.drafts:
            found = await find_event(conn, draft.event_id)
            assert found is None or found.region != draft.region  # the conflicting id keeps its first content


async def test_a_refused_request_does_not_affect_the_rest_of_its_group(pool: asyncpg.Pool) -> None:
    stored = event()
    commits = CommitLog()
    async with running_writer(pool, on_commit=commits) as writer:
        await open_campaign(writer)
        await writer.append(request(stored))
        commits.commits.clear()
        requests, expected = mixed_group(stored)
        outcomes = await append_all(writer, requests)

    assert [c.requests for c in commits.commits] == [5], "the five requests should share one commit"
    assert commits.commits[0].events == 4
    assert_mixed_outcomes(outcomes, stored)
    async with pool.acquire() as conn:
        await assert_log_holds(conn, expected, [requests[1], requests[3]])


async def test_a_group_insert_refused_once_falls_back_to_one_transaction_per_request(
        pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    async def refuse_first_group(conn: Connection, snapshot: Snapshot, footprint: Footprint, rows: Sequence[EventRow],
                                 *args: Any) -> int | None:
        calls.append(len(rows))
        if len(calls) == 1:
            raise asyncpg.UniqueViolationError("injected: the group insert is refused")
        return await append_decided(conn, snapshot, footprint, rows, *args)

    stored = event()
    logged = LogRecorder()
    monkeypatch.setattr(events.writer, "log", logged)
    async with running_writer(pool) as writer:
        await open_campaign(writer)
        await writer.append(request(stored))
        monkeypatch.setattr(events.writer, "append_decided", refuse_first_group)
        requests, expected = mixed_group(stored)
        outcomes = await append_all(writer, requests)

    assert calls == [4, 1, 2, 1], "one refused group insert, then one insert per accepted request"
    assert [level for level, _ in logged.lines] == ["warning"]
    assert_mixed_outcomes(outcomes, stored)
    async with pool.acquire() as conn:
        await assert_log_holds(conn, expected, [requests[1], requests[3]])


async def test_a_request_the_database_keeps_refusing_fails_alone(
        pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch) -> None:
    poisoned = event("brand_awarded")

    async def refuse_poisoned(conn: Connection, snapshot: Snapshot, footprint: Footprint, rows: Sequence[EventRow],
                              *args: Any) -> int | None:
        if any(r.event_id == poisoned["event_id"] for r in rows):
            raise asyncpg.CheckViolationError("injected: this event is refused")
        return await append_decided(conn, snapshot, footprint, rows, *args)

    before, after = event(), event("publicity_held")
    logged = LogRecorder()
    monkeypatch.setattr(events.writer, "log", logged)
    async with running_writer(pool) as writer:
        await open_campaign(writer)
        monkeypatch.setattr(events.writer, "append_decided", refuse_poisoned)
        outcomes = await asyncio.gather(*(writer.append(request(e)) for e in (before, poisoned, after)),
                                        return_exceptions=True)
        later = await writer.append(request(event("materials_distributed")))

    first, refused, last = outcomes
    assert isinstance(refused, asyncpg.CheckViolationError)
    assert isinstance(first, Accepted)
    assert isinstance(last, Accepted), f"a request after the refused one got {last!r}"
    assert [r.position for r in first.results + last.results] == [2, 3]
    assert later.results[0].position == 4
    assert [level for level, _ in logged.lines] == ["warning", "error"]
    async with pool.acquire() as conn:
        assert await count_events(conn) == 4
        assert await find_event(conn, poisoned["event_id"]) is None


async def test_in_a_pool_of_one_the_writer_gives_its_connection_back_after_each_group(database: Database) -> None:
    """A steady write load must not hold the only connection: a reader gets it between groups."""
    small = await asyncpg.create_pool(database.service_url, min_size=1, max_size=1)
    try:
        async with running_writer(small) as writer:
            await open_campaign(writer)
            for _ in range(3):
                await writer.append(request(event()))
                # Well inside HOLD_IDLE_SECONDS: a writer keeping its connection would make this wait.
                async with small.acquire(timeout=events.writer.HOLD_IDLE_SECONDS / 5) as conn:
                    assert await count_events(conn) >= 2
    finally:
        await small.close()
