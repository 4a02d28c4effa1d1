"""Client retries: a repeated event_id is a duplicate with its original position, never a second row."""

import asyncio

import asyncpg
import pytest

from events.decide import AppendRequest
from events.errors import EventIdConflict
from events.store import find_event
from tests.conftest import Database
from tests.factories import event
from tests.integration.appending import count_events, open_campaign, request, running_writer


async def test_a_retried_batch_is_all_duplicates_at_the_original_positions(pool: asyncpg.Pool) -> None:
    batch = [event(t) for t in ("raid_conducted", "publicity_held", "pledge_signed", "materials_distributed")]
    async with running_writer(pool) as writer:
        await open_campaign(writer)
        first = await writer.append(request(*batch))
        retry = await writer.append(request(*batch))

    assert [(r.status, r.position) for r in first.results] == [("created", p) for p in (2, 3, 4, 5)]
    assert [(r.event_id, r.status, r.position) for r in retry.results] == \
        [(r.event_id, "duplicate", r.position) for r in first.results]
    assert retry.records == []
    async with pool.acquire() as conn:
        assert await count_events(conn) == 5


async def test_a_retry_that_adds_new_events_stores_only_the_new_ones(pool: asyncpg.Pool) -> None:
    old, new = event(), event("lab_open_day_held")
    async with running_writer(pool) as writer:
        await open_campaign(writer)
        await writer.append(request(old))
        mixed = await writer.append(request(old, new))

    assert [(r.event_id, r.status, r.position) for r in mixed.results] == \
        [(old["event_id"], "duplicate", 2), (new["event_id"], "created", 3)]
    async with pool.acquire() as conn:
        assert await count_events(conn) == 3


async def test_the_same_event_id_with_other_content_is_refused_and_nothing_is_stored(pool: asyncpg.Pool) -> None:
    original = event()
    changed = original | {"data": {**original["data"], "dens_busted": 4}}
    innocent = event("publicity_held")
    async with running_writer(pool) as writer:
        await open_campaign(writer)
        await writer.append(request(original))
        with pytest.raises(EventIdConflict) as refused:
            await writer.append(request(innocent, changed))

    assert refused.value.event_id == original["event_id"]
    assert refused.value.index == 1
    async with pool.acquire() as conn:
        assert await count_events(conn) == 2
        assert await find_event(conn, innocent["event_id"]) is None
        stored = await find_event(conn, original["event_id"])
        assert stored is not None
        assert stored.data["dens_busted"] == 3


async def test_concurrent_retries_of_one_event_store_one_row(pool: asyncpg.Pool, database: Database) -> None:
    """Twenty callers send the same event at once, through two writer processes."""
    sent = event()
    other_pool = await asyncpg.create_pool(database.service_url, min_size=1, max_size=4)
    try:
        async with running_writer(pool) as first, running_writer(other_pool) as second:
            await open_campaign(first)
            requests: list[tuple[AppendRequest, int]] = [(request(sent), i) for i in range(20)]
            answers = await asyncio.gather(*((first if i % 2 else second).append(r) for r, i in requests))
    finally:
        await other_pool.close()

    results = [a.results[0] for a in answers]
    assert {r.position for r in results} == {2}
    assert sorted(r.status for r in results) == ["created"] + ["duplicate"] * 19
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM events WHERE event_id = $1::uuid", sent["event_id"]) == 1
        assert await count_events(conn) == 2
