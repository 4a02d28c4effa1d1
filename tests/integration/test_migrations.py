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
