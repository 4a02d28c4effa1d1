"""Migrations apply once, in order, under a lock, and refuse a history that does not match the files."""

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from services.migrate import MigrationError, available, migrate, pending
from tests.conftest import Database
from tests.pg import with_database


@pytest.fixture
async def empty_database(database: Database, admin_conn: asyncpg.Connection) -> AsyncIterator[str]:
    """The URL of a database with no schema at all, dropped afterwards."""
    name = f"{database.name}_empty"
    await admin_conn.execute(f'CREATE DATABASE "{name}"')
    yield with_database(database.admin_url, name)
    await admin_conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def tables(conn: asyncpg.Connection) -> set[str]:
    rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    return {r["tablename"] for r in rows}


async def test_migrate_applies_everything_once_and_then_nothing(empty_database: str) -> None:
    conn = await asyncpg.connect(empty_database)
    try:
        first = await migrate(conn)
        second = await migrate(conn)
        assert [m.version for m in first] == [m.version for m in available()]
        assert second == []
        assert {"events", "api_keys", "region_lists", "region_codes", "schema_migrations"} <= await tables(conn)
        assert await conn.fetchval("SELECT count(*) FROM schema_migrations") == len(available())
        assert await pending(conn) == []
    finally:
        await conn.close()


async def test_the_template_every_test_starts_from_is_fully_migrated(admin_conn: asyncpg.Connection) -> None:
    assert await pending(admin_conn) == []
    assert await migrate(admin_conn) == []


async def test_an_edited_migration_is_refused_and_the_lock_released(
        admin_conn: asyncpg.Connection, database: Database) -> None:
    await admin_conn.execute("UPDATE schema_migrations SET checksum = 'x' WHERE version = 1")
    with pytest.raises(MigrationError, match="migration 1 was changed"):
        await pending(admin_conn)
    with pytest.raises(MigrationError):
        await migrate(admin_conn)
    other = await asyncpg.connect(database.admin_url)
    try:
        assert await other.fetchval("SELECT pg_try_advisory_lock($1)", 0x716D_0002)
    finally:
        await other.close()


async def test_a_migration_this_version_does_not_know_is_refused(admin_conn: asyncpg.Connection) -> None:
    await admin_conn.execute("INSERT INTO schema_migrations (version, name, checksum) VALUES (999, 'future', 'y')")
    with pytest.raises(MigrationError, match=r"\[999\]"):
        await pending(admin_conn)


async def test_two_processes_migrating_at_once_both_succeed(empty_database: str) -> None:
    first, second = await asyncpg.connect(empty_database), await asyncpg.connect(empty_database)
    try:
        applied = await asyncio.gather(migrate(first), migrate(second))
        assert sorted(len(a) for a in applied) == [0, len(available())]
        assert await first.fetchval("SELECT count(*) FROM schema_migrations") == len(available())
        assert await pending(second) == []
    finally:
        await first.close()
        await second.close()


async def test_the_flags_projection_moves_to_one_row_per_fact_in_place(empty_database: str) -> None:
    conn = await asyncpg.connect(empty_database)
    try:
        before = [m for m in available() if m.version < 8]
        await migrate(conn)  # creates schema_migrations; then rebuild the database as version 7 left it
        await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
        await conn.execute("CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL, "
                           "checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())")
        for migration in before:
            await conn.execute(migration.sql)
            await conn.execute("INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                               migration.version, migration.name, migration.checksum)
        fact = "0b0e7a4e-0000-4000-8000-000000000001"
        for metric, value in (("seized_value_yuan", "15.20"), ("batches_sampled", "3"), ("batches_passed", "0")):
            await conn.execute("INSERT INTO quality_values VALUES ($1, $2, '2017', '330106', '330100', "
                               "'raid_conducted', $3::numeric, 42)", fact, metric, value)
        applied = await migrate(conn)
        assert [m.version for m in applied] == [m.version for m in available() if m.version >= 8]
        row = await conn.fetchrow("SELECT event_id::text AS event_id, campaign, region, parent, type, "
                                  "amounts::text AS amounts, position FROM quality_facts")
        assert "quality_values" not in await tables(conn)
    finally:
        await conn.close()
    assert dict(row) == {"event_id": fact, "campaign": "2017", "region": "330106", "parent": "330100",
                         "type": "raid_conducted", "position": 42,
                         "amounts": '{"batches_passed": "0", "batches_sampled": "3", "seized_value_yuan": "15.20"}'}
