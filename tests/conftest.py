"""Shared fixtures: a real PostgreSQL for the session, a fresh database per test, app and keys."""

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from events.notes import Signer
from services.app import create_app
from services.embedded import SERVICE_ROLE
from services.keyring import create_key
from services.settings import Settings
from tests.pg import (
    SERVICE_PASSWORD,
    StreamingReplica,
    build_template,
    postgres_server,
    service_url,
    streaming_replica,
    with_database,
)


@dataclass(frozen=True)
class Database:
    """One test's database: its owner (superuser) URL and the service role's URL."""

    name: str
    admin_url: str
    service_url: str


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    with postgres_server() as (url, _source):
        yield url


@pytest.fixture(scope="session")
def template_name(pg_server: str) -> str:
    name = f"qmstats_template_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"
    asyncio.run(build_template(pg_server, name))
    return name


@pytest.fixture
async def database(pg_server: str, template_name: str) -> AsyncIterator[Database]:
    name = f"t_{uuid.uuid4().hex[:16]}"
    conn = await asyncpg.connect(pg_server)
    try:
        await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_name}"')
    finally:
        await conn.close()
    yield Database(name, with_database(pg_server, name), service_url(pg_server, name))
    conn = await asyncpg.connect(pg_server)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture
async def admin_conn(database: Database) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(database.admin_url)
    yield conn
    await conn.close()


@pytest.fixture
async def pool(database: Database) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(database.service_url, min_size=1, max_size=10)
    assert pool is not None
    yield pool
    await pool.close()


LOG_SIGNER = Signer.generate("qmstats.test/log")
"""The log signing key of apps under test (never a key file in the working directory)."""


def test_settings(**overrides: object) -> Settings:
    """Settings for an app under test: generous rate limits unless a test asks otherwise."""
    values: dict[str, object] = {"rate_limit_per_second": 100000.0, "rate_limit_burst": 100000,
                                 "log_format": "json", "log_level": "warning",
                                 "log_signing_key": LOG_SIGNER.private_text(),
                                 "log_checkpoint_interval_seconds": 0.05}
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def settings() -> Settings:
    return test_settings()


@pytest.fixture
async def client(database: Database, settings: Settings) -> AsyncIterator[TestClient]:
    app = create_app(settings, database.service_url)
    async with TestClient(TestServer(app)) as client:
        yield client


@dataclass(frozen=True)
class Keys:
    """Bearer headers for one key of each role (the reporter is scoped to Zhejiang, 330000)."""

    admin: dict[str, str]
    reporter: dict[str, str]
    viewer: dict[str, str]
    auditor: dict[str, str]
    ids: dict[str, str]


@pytest.fixture
async def keys(admin_conn: asyncpg.Connection) -> Keys:
    headers: dict[str, dict[str, str]] = {}
    ids: dict[str, str] = {}
    for role, region in (("admin", None), ("reporter", "330000"), ("viewer", None), ("auditor", None)):
        key, token = await create_key(admin_conn, name=f"test {role}", role=role, region=region)
        headers[role] = {"Authorization": f"Bearer {token}"}
        ids[role] = key.id
    return Keys(headers["admin"], headers["reporter"], headers["viewer"], headers["auditor"], ids)


@pytest.fixture(scope="session")
def pg_standby(pg_server: str) -> Iterator[StreamingReplica]:
    """A real streaming replica of the session's server, started once, only when a test asks for it."""
    with streaming_replica(pg_server) as standby:
        yield standby


@dataclass(frozen=True)
class Replica:
    """This test's database on the streaming replica."""

    standby: StreamingReplica
    service_url: str
    admin_url: str


@pytest.fixture
async def replica(pg_standby: StreamingReplica, database: Database) -> AsyncIterator[Replica]:
    """The test database as seen on the standby; apply delay and running state are reset after the test."""
    if not pg_standby.running:
        pg_standby.start()
    await pg_standby.wait_for_database(database.name)
    yield Replica(pg_standby, pg_standby.url(database.name, user=SERVICE_ROLE, password=SERVICE_PASSWORD),
                  pg_standby.url(database.name))
    if not pg_standby.running:
        pg_standby.start()
    await pg_standby.set_apply_delay(0)
