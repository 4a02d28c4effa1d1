"""Numbered SQL migrations in services/migrations, applied in order, each once, under a lock."""

import hashlib
from dataclasses import dataclass
from importlib.resources import files

from events.coordination import MIGRATE_LOCK, lock_session, unlock_session
from events.store import Connection


@dataclass(frozen=True, slots=True)
class Migration:
    """One numbered SQL file."""

    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        """sha256 of the file, to notice a migration edited after it was applied."""
        return hashlib.sha256(self.sql.encode()).hexdigest()


class MigrationError(Exception):
    """The database's migration history does not match the files."""


def available() -> list[Migration]:
    """Every migration shipped with this version, in order."""
    found = []
    for entry in files("services").joinpath("migrations").iterdir():
        if entry.name.endswith(".sql"):
            number, _, rest = entry.name.partition("_")
            found.append(Migration(int(number), rest.removesuffix(".sql"), entry.read_text("utf-8")))
    return sorted(found, key=lambda m: m.version)


async def applied(conn: Connection) -> dict[int, str]:
    """Version → checksum of what the database has applied (empty before the first migration)."""
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    if not exists:
        return {}
    return {r["version"]: r["checksum"] for r in await conn.fetch("SELECT version, checksum FROM schema_migrations")}


async def pending(conn: Connection) -> list[Migration]:
    """Migrations not yet applied; raises if an applied one was changed or is unknown."""
    done = await applied(conn)
    shipped = {m.version: m for m in available()}
    unknown = sorted(set(done) - set(shipped))
    if unknown:
        raise MigrationError(f"the database has migrations this version does not know: {unknown}")
    for version, checksum in done.items():
        if shipped[version].checksum != checksum:
            raise MigrationError(f"migration {version} was changed after it was applied")
    return [m for v, m in shipped.items() if v not in done]


async def migrate(conn: Connection) -> list[Migration]:
    """Apply every pending migration, each in its own transaction; safe to run concurrently and repeatedly."""
    await lock_session(conn, MIGRATE_LOCK)
    try:
        await conn.execute("""CREATE TABLE IF NOT EXISTS schema_migrations (
                                  version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,
                                  applied_at timestamptz NOT NULL DEFAULT now())""")
        todo = await pending(conn)
        for migration in todo:
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute("INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                                   migration.version, migration.name, migration.checksum)
        return todo
    finally:
        await unlock_session(conn, MIGRATE_LOCK)
