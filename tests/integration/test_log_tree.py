"""The integrator against a real log: tiles equal the tree rebuilt from position 1, checkpoints verify and
stay consistent, proofs hold while events are appended, and a tampered row fails chain and tree alike."""

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

import asyncpg
import pytest

from events.checkpoints import open_checkpoint
from events.merkle import root_of, verify_consistency, verify_inclusion
from events.notes import Signer
from events.store import LogFilter, read_page
from events.stored_chain import verify_log
from events.tiles import TileRef, split_hashes
from events.treeaudit import verify_tree
from events.treestore import (
    all_checkpoints,
    event_leaf,
    latest_checkpoint,
    prove_consistency,
    prove_inclusion,
    read_leaves,
    read_tiles,
)
from events.writer import GroupCommitWriter
from services.integrator import IntegratorState, IntegratorWorker
from services.integrator_thread import IntegratorThread
from services.settings import Settings
from tests.conftest import LOG_SIGNER, Database
from tests.factories import event
from tests.integration.appending import open_campaign, read_log, request, running_writer
from tests.projection_support import eventually

ORIGIN = "qmstats.test/log"


async def append(writer: GroupCommitWriter, count: int, batch: int = 100, pause: float = 0.0) -> None:
    for start in range(0, count, batch):
        await writer.append(request(*[event() for _ in range(min(batch, count - start))]))
        if pause:
            await asyncio.sleep(pause)


@contextlib.asynccontextmanager
async def integrating(pool: asyncpg.Pool, database: Database, signer: Signer, *,
                      retry: float = 0.2) -> AsyncIterator[IntegratorWorker]:
    worker = IntegratorWorker(pool, database.service_url, signer, interval_seconds=0.05, poll_seconds=0.1,
                              standby_seconds=0.1, retry_seconds=retry, batch_size=300)
    task = asyncio.create_task(worker.run())
    try:
        yield worker
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def signed(pool: asyncpg.Pool, size: int, within: float = 20) -> None:
    async with asyncio.timeout(within):
        while True:
            async with pool.acquire() as conn:
                latest = await latest_checkpoint(conn)
            if latest is not None and latest.tree_size >= size:
                return
            await asyncio.sleep(0.05)


async def test_tiles_and_checkpoints_equal_the_tree_rebuilt_from_position_1(
        pool: asyncpg.Pool, database: Database) -> None:
    signer = Signer.generate(ORIGIN)
    async with running_writer(pool) as writer:
        await open_campaign(writer)
        await append(writer, 700)  # positions 1..701: two full level-0 tiles and a partial one
    async with integrating(pool, database, signer) as worker:
        await signed(pool, 701)
        assert worker.state.mode == "active"
    async with pool.acquire() as conn:
        leaves = [event_leaf(r) for r in await read_log(conn)]
        latest = await latest_checkpoint(conn)
        assert latest is not None
        checkpoint = open_checkpoint(latest.note, signer.verifier)
        assert (checkpoint.origin, checkpoint.size, checkpoint.root) == (ORIGIN, 701, root_of(leaves))
        tiles = await read_tiles(conn, [TileRef(0, 0), TileRef(0, 1), TileRef(0, 2, 189), TileRef(1, 0, 2)])
        assert split_hashes(tiles[TileRef(0, 0)]) == leaves[:256]
        assert split_hashes(tiles[TileRef(0, 1)]) == leaves[256:512]
        assert split_hashes(tiles[TileRef(0, 2, 189)]) == leaves[512:]
        assert split_hashes(tiles[TileRef(1, 0, 2)]) == [root_of(leaves[:256]), root_of(leaves[256:512])]
        assert await conn.fetchval("SELECT count(*) FROM log_tiles") == 2
        for index in (0, 255, 256, 600, 700):
            path = await prove_inclusion(conn, index, 701)
            assert verify_inclusion(index, 701, leaves[index], path, checkpoint.root)
        report = await verify_tree(conn)
        assert report.ok, report
        assert (report.leaves, report.tiles) == (701, 2)
        assert report.checkpoints >= 1


async def test_proofs_keep_working_while_events_are_appended(pool: asyncpg.Pool, database: Database) -> None:
    signer = Signer.generate(ORIGIN)
    async with running_writer(pool) as writer, integrating(pool, database, signer):
        await open_campaign(writer)
        appending = asyncio.create_task(append(writer, 1500, batch=25, pause=0.03))
        proved = 0
        seen_sizes: set[int] = set()
        previous = None
        while not appending.done() or proved < 5:
            async with pool.acquire() as conn:
                latest = await latest_checkpoint(conn)
                if latest is None or latest.tree_size == 0:
                    await asyncio.sleep(0.02)
                    continue
                checkpoint = open_checkpoint(latest.note, signer.verifier)
                leaf_positions = {1, latest.tree_size, (latest.tree_size + 1) // 2}
                records = {p: (await read_page(conn, LogFilter(after=p - 1), 1))[0] for p in leaf_positions}
                for position in leaf_positions:
                    path = await prove_inclusion(conn, position - 1, latest.tree_size)
                    assert verify_inclusion(position - 1, latest.tree_size, event_leaf(records[position]), path,
                                            checkpoint.root), (position, latest.tree_size)
                if previous is not None and previous.tree_size < latest.tree_size:
                    proof = await prove_consistency(conn, previous.tree_size, latest.tree_size)
                    assert verify_consistency(previous.tree_size, latest.tree_size, previous.root, latest.root, proof)
                previous = latest
                seen_sizes.add(latest.tree_size)
                proved += 1
            await asyncio.sleep(0.01)
        await appending
        await signed(pool, 1501)
    assert len(seen_sizes) >= 3  # checkpoints kept coming while appends arrived
    async with pool.acquire() as conn:
        sizes = [c.tree_size for c in await all_checkpoints(conn)]
        assert sizes == sorted(sizes)
        assert (await verify_tree(conn)).ok


async def test_a_tampered_event_fails_the_chain_and_the_tree_at_its_position(
        pool: asyncpg.Pool, database: Database, admin_conn: asyncpg.Connection) -> None:
    signer = Signer.generate(ORIGIN)
    async with running_writer(pool) as writer:
        await open_campaign(writer)
        await append(writer, 300)
    async with integrating(pool, database, signer):
        await signed(pool, 301)
    await admin_conn.execute("ALTER TABLE events DISABLE TRIGGER USER")
    try:
        await admin_conn.execute(
            "UPDATE events SET data = jsonb_set(data, '{dens_busted}', '4') WHERE position = 100")
    finally:
        await admin_conn.execute("ALTER TABLE events ENABLE TRIGGER USER")
    async with pool.acquire() as conn:
        chain = await verify_log(conn)
        tree = await verify_tree(conn)
    assert (chain.ok, chain.first_bad_position) == (False, 100)
    assert (tree.ok, tree.first_bad_position) == (False, 100), tree


async def test_the_integrator_refuses_to_sign_a_tree_that_rewrites_a_signed_one(
        pool: asyncpg.Pool, database: Database, admin_conn: asyncpg.Connection) -> None:
    signer = Signer.generate(ORIGIN)
    async with running_writer(pool) as writer:
        await open_campaign(writer)
        await append(writer, 20)
        async with integrating(pool, database, signer):
            await signed(pool, 21)
        # Behind the service's back, position 10 changes; the next integrator must not sign over it.
        await admin_conn.execute("ALTER TABLE events DISABLE TRIGGER USER")
        try:
            await admin_conn.execute("UPDATE events SET request_id = 'forged' WHERE position = 10")
        finally:
            await admin_conn.execute("ALTER TABLE events ENABLE TRIGGER USER")
        await append(writer, 5)
        async with integrating(pool, database, signer) as worker:
            async def failed() -> bool:
                return worker.state.mode == "failed"

            await eventually(failed, "the integrator refusing to sign")
            assert "not consistent" in (worker.state.error or "")
    async with pool.acquire() as conn:
        latest = await latest_checkpoint(conn)
        assert latest is not None
        assert latest.tree_size == 21
        report = await verify_tree(conn)
    assert not report.ok
    assert report.first_bad_checkpoint == 21


async def test_a_second_integrator_waits_then_takes_over_and_stays_consistent(
        pool: asyncpg.Pool, database: Database) -> None:
    signer = Signer.generate(ORIGIN)
    async with running_writer(pool) as writer:
        await open_campaign(writer)
        await append(writer, 260)
        async with integrating(pool, database, signer) as first:
            await signed(pool, 261)
            async with integrating(pool, database, signer) as second:
                await asyncio.sleep(0.4)
                assert (first.state.mode, second.state.mode) == ("active", "standby")
        async with integrating(pool, database, signer):
            await append(writer, 300)
            await signed(pool, 561)
    async with pool.acquire() as conn:
        assert (await verify_tree(conn)).ok


async def test_the_integrator_thread_follows_appends_and_hands_over_when_stopped(
        pool: asyncpg.Pool, database: Database, settings: Settings) -> None:
    signer = LOG_SIGNER  # the key test_settings configures
    thread = IntegratorThread(database.service_url, settings, signer, IntegratorState())
    thread.start()
    try:
        async with running_writer(pool) as writer:
            await open_campaign(writer)
            await append(writer, 300)
            thread.wake()  # from this thread, as the listener does
            await signed(pool, 301)
            assert thread.state.mode == "active"
            await append(writer, 20)
            thread.wake()
            await signed(pool, 321)
    finally:
        await asyncio.to_thread(thread.stop)
    # Stopped, it let go of the leader lock: a new integrator leads at once and carries on.
    async with running_writer(pool) as writer, integrating(pool, database, signer) as successor:
        await append(writer, 5)
        await signed(pool, 326)
        assert successor.state.mode == "active"
    async with pool.acquire() as conn:
        assert (await verify_tree(conn)).ok


@pytest.mark.parametrize("statement", ["UPDATE log_tiles SET root = root", "DELETE FROM log_checkpoints",
                                       "TRUNCATE log_tiles"])
async def test_tiles_and_checkpoints_are_insert_only(
        pool: asyncpg.Pool, database: Database, admin_conn: asyncpg.Connection, statement: str) -> None:
    async with running_writer(pool) as writer:
        await open_campaign(writer)
        await append(writer, 256)
    async with integrating(pool, database, Signer.generate(ORIGIN)):
        await signed(pool, 257)
    with pytest.raises(asyncpg.PostgresError, match="insert-only"):
        await admin_conn.execute(statement)
    async with pool.acquire() as conn:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute(statement)


async def test_a_deleted_row_stops_the_tree_at_its_position(
        pool: asyncpg.Pool, database: Database, admin_conn: asyncpg.Connection) -> None:
    async with running_writer(pool) as writer:
        await open_campaign(writer)
        await append(writer, 300)
    await admin_conn.execute("ALTER TABLE events DISABLE TRIGGER USER")
    try:
        await admin_conn.execute("DELETE FROM events WHERE position = 120")
    finally:
        await admin_conn.execute("ALTER TABLE events ENABLE TRIGGER USER")
    async with integrating(pool, database, Signer.generate(ORIGIN)) as worker:
        async def stuck() -> bool:
            return worker.state.mode == "degraded"

        await eventually(stuck, "the integrator stopping at the gap")
        assert "position 120" in (worker.state.error or "")
    async with pool.acquire() as conn:
        report = await verify_tree(conn)
        assert (report.ok, report.first_bad_position) == (False, 120)
        assert await conn.fetchval("SELECT count(*) FROM log_tiles") == 0  # nothing past the gap was stored


async def test_the_narrow_leaf_read_gives_the_bytes_the_chain_hashes(admin_conn: asyncpg.Connection) -> None:
    # Rows written directly, with timestamps and payloads the canonical form must get exactly right.
    rows = [
        (1, "0999-01-02T03:04:05.000007+00:00", "2017-09-08T10:00:00+08:00", {"participants": 1, "booths": 0}),
        (2, "2017-09-08T23:59:59.999999+08:00", "2017-09-09T00:00:00.000001Z",
         {"corrects": "6f1c2a4e-0d1b-4a57-9d6e-5b0f3c9a7e11", "replacement": {"category": "月饼 \"quoted\" \\ tab\t",
                                                                             "seized_value_yuan": "0.10"}}),
        (3, "2017-09-01T00:00:00Z", "9999-12-31T23:59:59.999999Z", {"channel": "电视台", "reports": 10**9}),
    ]
    await admin_conn.execute("ALTER TABLE events DISABLE TRIGGER USER")
    for position, occurred, recorded, data in rows:
        await admin_conn.execute(
            "INSERT INTO events (position, event_id, type, schema_version, campaign, region, occurred_at, "
            "recorded_at, recorded_by, request_id, data, content_hash, prev_hash, hash) VALUES "
            "($1, gen_random_uuid(), 'publicity_held', 1, '2017', '330102', $2::text::timestamptz, "
            "$3::text::timestamptz, 'k.1', 'req ü', $4::jsonb, '\\x00', '\\x00', '\\x00')",
            position, occurred, recorded, json.dumps(data, ensure_ascii=False))
    await admin_conn.execute("ALTER TABLE events ENABLE TRIGGER USER")
    expected = [event_leaf(r) for r in await read_page(admin_conn, LogFilter(after=0), 10)]
    assert await read_leaves(admin_conn, 0, 10) == expected
    assert await read_leaves(admin_conn, 1, 1) == expected[1:2]
