"""When the database cannot be reached the writer answers StoreUnavailable promptly and keeps serving."""

import asyncio
from pathlib import Path

import asyncpg
import pytest

from events.decide import Accepted
from events.errors import StoreUnavailable
from tests.conftest import Database
from tests.factories import event
from tests.integration.appending import open_campaign, request, running_writer


async def test_a_writer_whose_server_is_unreachable_answers_store_unavailable(tmp_path: Path) -> None:
    # A socket directory with no server in it: every connection attempt fails at once.
    unreachable = await asyncpg.create_pool(f"postgresql://qmstats_service@/qmstats?host={tmp_path}&port=5432",
                                            min_size=0, max_size=2)
    try:
        async with asyncio.timeout(10), running_writer(unreachable) as writer:
            for _ in range(2):  # the writer survives the first failure and answers the next request too
                with pytest.raises(StoreUnavailable, match="database unavailable"):
                    await writer.append(request(event()))
            assert writer.queued == 0
    finally:
        await unreachable.close()


async def test_after_the_server_drops_the_pools_connections_a_retry_is_stored_once(
        database: Database, admin_conn: asyncpg.Connection) -> None:
    pool = await asyncpg.create_pool(database.service_url, min_size=2, max_size=2)
    try:
        async with asyncio.timeout(10), running_writer(pool) as writer:
            await open_campaign(writer)
            terminated = await admin_conn.fetchval(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE usename = 'qmstats_service' AND datname = $1", database.name)
            assert terminated == 2
            sent = event()
            failures: list[StoreUnavailable] = []
            answer: Accepted | None = None
            while answer is None:  # the client's retry loop: same event, same event_id
                assert len(failures) <= 2, failures
                try:
                    answer = await writer.append(request(sent))
                except StoreUnavailable as exc:
                    failures.append(exc)
        assert [(r.event_id, r.position) for r in answer.results] == [(sent["event_id"], 2)]
        assert await admin_conn.fetchval("SELECT count(*) FROM events") == 2
    finally:
        await pool.close()
