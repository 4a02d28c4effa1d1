"""One global order under concurrent appends: contiguous positions, a valid chain, no skipped event."""

import asyncio

import asyncpg

from events.chain_check import verify_chain
from events.records import RecordedEvent
from events.store import LogFilter, read_page
from events.writer import GroupCommitWriter
from tests.conftest import Database
from tests.factories import FACT_TYPES, event
from tests.integration.appending import CommitLog, open_campaign, read_log, request, running_writer

APPENDERS = 8
PER_APPENDER = 500


async def appender(writer: GroupCommitWriter, number: int, count: int) -> list[int]:
    """Append ``count`` single-event requests one after another; return the positions received."""
    positions = []
    for i in range(count):
        sent = event(FACT_TYPES[(number + i) % len(FACT_TYPES)])
        accepted = await writer.append(request(sent))
        assert [r.status for r in accepted.results] == ["created"]
        positions.append(accepted.results[0].position)
    return positions


async def tail(conn: asyncpg.Connection, writing: asyncio.Event) -> tuple[list[RecordedEvent], int]:
    """Follow the log by checkpoint until writing has stopped and a read comes back empty.

    Returns every event seen and how many non-empty pages arrived while writes were running.
    """
    seen: list[RecordedEvent] = []
    checkpoint = 0
    pages_during_writes = 0
    while True:
        still_writing = writing.is_set()
        page = await read_page(conn, LogFilter(after=checkpoint), 100)
        if page:
            seen.extend(page)
            checkpoint = page[-1].position
            pages_during_writes += still_writing
        elif not still_writing:
            return seen, pages_during_writes
        else:
            await asyncio.sleep(0.001)


def assert_contiguous_and_chained(log: list[RecordedEvent], total: int) -> None:
    assert [e.position for e in log] == list(range(1, total + 1))
    assert len({e.event_id for e in log}) == total
    report = verify_chain(log)
    assert (report.ok, report.checked, report.first_bad_position, report.last_position) == (True, total, None, total)


async def test_concurrent_appenders_get_contiguous_positions_and_a_tailing_reader_sees_each_once(
        pool: asyncpg.Pool, database: Database) -> None:
    """8 appenders x 500 single-event requests through one writer, with a reader following the log."""
    commits = CommitLog()
    reader = await asyncpg.connect(database.service_url)
    writing = asyncio.Event()
    writing.set()
    tailing = asyncio.create_task(tail(reader, writing))
    try:
        async with running_writer(pool, on_commit=commits) as writer:
            assert await open_campaign(writer) == 1
            received = await asyncio.gather(*(appender(writer, n, PER_APPENDER) for n in range(APPENDERS)))
        writing.clear()
        async with asyncio.timeout(30):
            seen, pages_during_writes = await tailing
    finally:
        tailing.cancel()
        await reader.close()

    total = 1 + APPENDERS * PER_APPENDER
    for positions in received:  # each appender waited for its previous answer
        assert positions == sorted(positions)
    assert sorted(p for positions in received for p in positions) == list(range(2, total + 1))
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM events") == total
        assert await conn.fetchval("SELECT max(position) FROM events") == total
        assert_contiguous_and_chained(await read_log(conn), total)
    assert commits.requests == total
    assert len(commits.commits) < total // 2, "concurrent requests should share commits"
    assert max(c.requests for c in commits.commits) > 1

    # The tailing reader: every event exactly once, in strictly increasing contiguous order.
    assert [e.position for e in seen] == list(range(1, total + 1))
    assert len({e.event_id for e in seen}) == total
    assert pages_during_writes > 1, "the reader should have followed the log while it grew"


async def test_two_writer_processes_share_one_order(pool: asyncpg.Pool, database: Database) -> None:
    """Two API processes, each with its own pool and writer: the advisory lock keeps one order."""
    other_pool = await asyncpg.create_pool(database.service_url, min_size=1, max_size=4)
    reader = await asyncpg.connect(database.service_url)
    writing = asyncio.Event()
    writing.set()
    per_writer, each = 4, 200  # appenders per writer, requests per appender
    commits = CommitLog(), CommitLog()
    tailing = asyncio.create_task(tail(reader, writing))
    try:
        async with running_writer(pool, on_commit=commits[0]) as first, \
                running_writer(other_pool, on_commit=commits[1]) as second:
            await open_campaign(first)
            await asyncio.gather(*(appender(w, n, each) for w in (first, second) for n in range(per_writer)))
        writing.clear()
        async with asyncio.timeout(30):
            seen, _ = await tailing
        total = 1 + 2 * per_writer * each
        async with pool.acquire() as conn:
            assert await conn.fetchval("SELECT count(*) FROM events") == total
            assert_contiguous_and_chained(await read_log(conn), total)
        assert [e.position for e in seen] == list(range(1, total + 1))
        assert {e.recorded_by for e in seen[1:]} == {"k2"}
        # Both writers committed, and their groups interleaved in the one order.
        assert (commits[0].requests, commits[1].requests) == (1 + per_writer * each, per_writer * each)
        heads = [sorted(c.head for c in log.commits) for log in commits]
        assert heads[0][0] < heads[1][-1]
        assert heads[1][0] < heads[0][-1]
    finally:
        tailing.cancel()
        await reader.close()
        await other_pool.close()
