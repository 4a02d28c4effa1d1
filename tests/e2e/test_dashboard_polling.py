"""Cheap polling (weak ETag, 304 and cached 200 without touching the database), and an API that runs
without its own projector learning each new position from a separate one (NOTIFY, else its poll)."""

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

import services.app
from projections.projector import apply_batch
from services.app import create_app
from services.appkeys import POOL, STATE
from services.projection_state import ProjectionState
from services.projector_process import ProjectorWorker
from services.settings import Settings
from tests import conftest
from tests.conftest import Database, Keys
from tests.factories import event
from tests.projection_support import (
    Ledger,
    check_dashboard,
    eventually,
    import_registry,
    post_events,
    settled,
)

pytestmark = pytest.mark.usefixtures("campaign")

ROUTES: dict[str, tuple[str, dict[str, str]]] = {
    "dashboard": ("/v1/campaigns/2017/dashboard", {"region": "330000"}),
    "series": ("/v1/campaigns/2017/series", {"metric": "dens_busted", "region": "330000"}),
    "completeness": ("/v1/campaigns/2017/completeness", {"date": "2017-09-08"}),
}


@pytest.fixture
def settings() -> Settings:
    """The API alone (`qmstats serve --no-projector`); each test runs the projector beside it."""
    return conftest.test_settings(run_projector=False)


async def project_all(pool: asyncpg.Pool) -> int:
    """Apply every pending batch, as a separate projector would; returns the checkpoint."""
    async with asyncio.timeout(30), pool.acquire() as conn:
        while (batch := await apply_batch(conn, batch_size=100)).events:
            pass
    return batch.to_position


async def test_unchanged_figures_are_answered_without_a_database_query(
        monkeypatch: pytest.MonkeyPatch, client: TestClient, keys: Keys, pool: asyncpg.Pool) -> None:
    app = client.server.app
    head = await post_events(client, keys.reporter, [event(), event("inspection_completed", region="330203")])
    assert await project_all(pool) == head
    await settled(client, keys.viewer, head)

    async def listening() -> bool:  # keys are then cached in memory too
        return app[STATE].listener_connected

    await eventually(listening, "the API's LISTEN connection")
    first: dict[str, tuple[str, bytes]] = {}
    for name, (path, params) in ROUTES.items():
        response = await client.get(path, params=params, headers=keys.viewer)
        assert response.status == 200, name
        etag = response.headers["ETag"]
        assert etag.startswith('W/"'), (name, etag)
        assert response.headers["Cache-Control"] == "no-cache", name
        first[name] = (etag, await response.read())
        again = await client.get(path, params=params, headers=keys.viewer | {"If-None-Match": etag})
        assert again.status == 304, name
        assert await again.read() == b""
        assert (again.headers["ETag"], again.headers["Cache-Control"]) == (etag, "no-cache")

    # From here on the API's pool refuses every request handler (its background poll may go on).
    queried: list[str] = []
    app_pool, acquire = app[POOL], asyncpg.pool.Pool.acquire

    def guarded(self: asyncpg.Pool, *args: Any, **kwargs: Any) -> Any:
        task = asyncio.current_task()
        if self is app_pool and (task is None or task.get_name() != "projection-poll"):
            queried.append(task.get_name() if task else "no task")
            raise OSError("the test took the database away")
        return acquire(self, *args, **kwargs)

    monkeypatch.setattr(asyncpg.pool.Pool, "acquire", guarded)
    for name, (path, params) in ROUTES.items():
        etag, body = first[name]
        not_modified = await client.get(path, params=params, headers=keys.viewer | {"If-None-Match": etag})
        assert not_modified.status == 304, name
        cached = await client.get(path, params=params, headers=keys.viewer)
        assert cached.status == 200, (name, await cached.text())
        assert (cached.headers["ETag"], await cached.read()) == (etag, body), name
    assert queried == [], "a poll at an unchanged position queried the database"
    uncached = await client.get(ROUTES["dashboard"][0], params={"region": "440000"}, headers=keys.viewer)
    assert uncached.status == 503, "the database was not really taken away"
    assert queried
    monkeypatch.undo()

    head = await post_events(client, keys.reporter, [event(region="330106", occurred_at="2017-09-08T12:00:00Z")])
    assert await project_all(pool) == head
    await settled(client, keys.viewer, head)
    for name, (path, params) in ROUTES.items():
        etag, body = first[name]
        fresh = await client.get(path, params=params, headers=keys.viewer | {"If-None-Match": etag})
        assert fresh.status == 200, name
        assert fresh.headers["ETag"] != etag, name
        assert (await fresh.json())["position"] == head
        assert await fresh.read() != body, name


async def test_a_separate_projector_advances_the_api_position_and_etag(
        client: TestClient, keys: Keys, database: Database, admin_conn: asyncpg.Connection) -> None:
    await import_registry(admin_conn)
    ledger = Ledger()
    before = await client.get("/v1/campaigns/2017/dashboard", headers=keys.viewer)
    assert (await before.json())["position"] == 0, "nothing projects inside this API"
    projector_pool = await asyncpg.create_pool(database.service_url, min_size=1, max_size=2)
    worker = ProjectorWorker(projector_pool, database.service_url, ProjectionState(), poll_seconds=0.2)
    task = asyncio.create_task(worker.run())
    try:
        etags = [before.headers["ETag"]]
        for day in ("2017-09-08T10:00:00+08:00", "2017-09-09T10:00:00+08:00"):
            sent = [event(region="330102", occurred_at=day), event("publicity_held", region="330212")]
            head = await post_events(client, keys.reporter, sent)
            ledger.record_all(sent)
            await settled(client, keys.viewer, head)
            response = await client.get("/v1/campaigns/2017/dashboard", headers=keys.viewer)
            etags.append(response.headers["ETag"])
            await check_dashboard(client, keys.viewer, ledger, head, "330000")
        assert len(set(etags)) == 3
        readiness = await client.get("/readyz")
        assert readiness.status == 200, await readiness.text()
        assert "projector" not in (await readiness.json())["checks"]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await projector_pool.close()


@pytest.fixture
async def deaf_client(monkeypatch: pytest.MonkeyPatch, database: Database,
                      settings: Settings) -> AsyncIterator[TestClient]:
    """An API that never hears the projector's NOTIFY: only its fallback poll tells it of new positions."""
    monkeypatch.setattr(services.app, "PROJECTION_CHANNEL", "qmstats_projection_unheard")
    async with TestClient(TestServer(create_app(settings, database.service_url))) as deaf:
        yield deaf


async def test_without_notifications_the_fallback_poll_still_advances_the_api(
        client: TestClient, deaf_client: TestClient, keys: Keys, pool: asyncpg.Pool) -> None:
    head = await post_events(client, keys.reporter, [event(), event("brand_awarded")])
    assert await project_all(pool) == head
    body = await settled(deaf_client, keys.viewer, head)
    assert body["metrics"]["awarded_products"]["value"] == 9
    assert body["metrics"]["dens_busted"]["value"] == 3
