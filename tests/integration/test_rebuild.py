"""`qmstats rebuild` rebuilds the read tables from position 0 while the live ones keep serving, swaps them
in, and says whether the rebuilt figures equal the live ones."""

from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from events.coordination import REBUILD_LOCK
from projections import rebuild as rebuilding
from tests.conftest import Database, Keys
from tests.factories import event
from tests.projection_support import (
    ALL_METRICS,
    Scenario,
    check_dashboard,
    check_every_figure,
    check_series,
    eventually,
    get_json,
    import_registry,
    open_campaign,
    post_events,
    post_scenario,
    qmstats_env,
    realistic_mix,
    run_qmstats,
    settled,
)


@pytest.fixture
async def projected(client: TestClient, keys: Keys, admin_conn: asyncpg.Connection) -> tuple[Scenario, int]:
    """The realistic mix posted and projected by the API's own projector; returns it and the head."""
    await import_registry(admin_conn)
    await open_campaign(client, keys.admin)
    scenario = realistic_mix(seed=30)
    head = await post_scenario(client, keys.admin, scenario)
    await settled(client, keys.viewer, head)
    return scenario, head


def owner_env(database: Database) -> dict[str, str]:
    return qmstats_env(database.admin_url, database.admin_url)


LIVE_READ_TABLES = ("projection_totals", "projection_daily", "projection_categories", "projection_reports")


async def storage_options(conn: asyncpg.Connection) -> dict[str, list[str] | None]:
    rows = await conn.fetch("SELECT relname, reloptions FROM pg_class WHERE relname = ANY($1::text[])",
                            list(LIVE_READ_TABLES))
    return {r["relname"]: r["reloptions"] for r in rows}


async def test_rebuilding_the_realistic_mix_gives_identical_figures(
        client: TestClient, keys: Keys, database: Database, admin_conn: asyncpg.Connection,
        projected: tuple[Scenario, int]) -> None:
    scenario, head = projected
    assert await storage_options(admin_conn) == {table: ["fillfactor=50"] for table in LIVE_READ_TABLES}
    code, out, err = await run_qmstats("rebuild", "--batch-size", "97", env=owner_env(database))
    assert code == 0, out + err
    assert f"identical: the rebuilt figures equal the live ones at position {head}" in out.splitlines()
    await check_every_figure(client, keys.viewer, scenario.ledger, head)
    # The swapped-in tables keep the live ones' storage parameters (migration 0009: room for HOT updates).
    assert await storage_options(admin_conn) == {table: ["fillfactor=50"] for table in LIVE_READ_TABLES}

    # The swapped-in tables are the live ones now: the projector goes on writing to them.
    more = [event(region="330102", occurred_at="2017-09-09T00:10:00+08:00"), event("lab_open_day_held")]
    head = await post_events(client, keys.admin, more)
    scenario.ledger.record_all(more)
    await settled(client, keys.viewer, head)
    await check_dashboard(client, keys.viewer, scenario.ledger, head, "330000")
    await check_series(client, keys.viewer, scenario.ledger, head, "330000", "dens_busted")


async def test_a_tampered_read_table_is_reported_different_and_repaired(
        client: TestClient, keys: Keys, database: Database, admin_conn: asyncpg.Connection,
        projected: tuple[Scenario, int]) -> None:
    scenario, head = projected
    view = {"region": "330000", "level": "prefecture"}
    true_dens = (await get_json(client, "/v1/campaigns/2017/dashboard", keys.viewer))["children"]
    true_dens = next(c for c in true_dens if c["code"] == "330000")["metrics"]["dens_busted"]
    await admin_conn.execute("UPDATE projection_totals SET value = value + 7 WHERE campaign = '2017' "
                             "AND region = '330000' AND metric = 'dens_busted'")
    response = await client.get("/v1/campaigns/2017/dashboard", params=view, headers=keys.viewer)
    tampered, tampered_etag = await response.json(), response.headers["ETag"]
    assert tampered["metrics"]["dens_busted"]["value"] == true_dens + 7, "the tampering is not visible"

    code, out, err = await run_qmstats("rebuild", env=owner_env(database))
    assert code == 3, out + err
    assert out.startswith(f"DIFFERENT: rebuilt figures differ from the live ones at position {head}: "
                          "projection_totals 1 rows"), out

    async def repaired() -> bool:  # the API notices the swapped-in tables with its next poll
        body = await get_json(client, "/v1/campaigns/2017/dashboard", keys.viewer, **view)
        return bool(body["metrics"]["dens_busted"]["value"] == true_dens)

    await eventually(repaired, "the rebuilt figures served in place of the tampered ones")
    await check_dashboard(client, keys.viewer, scenario.ledger, head, **view)
    await check_every_figure(client, keys.viewer, scenario.ledger, head)
    stale = await client.get("/v1/campaigns/2017/dashboard", params=view,
                             headers=keys.viewer | {"If-None-Match": tampered_etag})
    assert stale.status == 200, "a client holding the tampered figures' ETag was told they are current"


async def test_the_api_keeps_serving_while_a_rebuild_runs(
        monkeypatch: pytest.MonkeyPatch, client: TestClient, keys: Keys, admin_conn: asyncpg.Connection,
        projected: tuple[Scenario, int]) -> None:
    scenario, head = projected
    build_from_log = rebuilding.build_from_log
    served: list[str] = []
    late = [event(region="330203", occurred_at="2017-09-20T08:00:00+08:00"), event("goods_destroyed")]

    async def serving_while_building(conn: Any, *args: Any) -> None:
        # While PostgreSQL fills the shadow set: views nobody asked for yet, so the database answers them.
        for metric in ALL_METRICS[:3]:
            await check_series(client, keys.viewer, scenario.ledger, head, "440000", metric)
            served.append(metric)
        await check_dashboard(client, keys.viewer, scenario.ledger, head, "330200")
        await check_dashboard(client, keys.viewer, scenario.ledger, head, "000000", "county")
        served.append("dashboards")
        await post_events(client, keys.admin, late)  # and the log moves on meanwhile
        served.append("appended")
        await build_from_log(conn, *args)

    monkeypatch.setattr(rebuilding, "build_from_log", serving_while_building)
    report = await rebuilding.rebuild(admin_conn, batch_size=20)
    assert "appended" in served, served
    scenario.ledger.record_all(late)
    assert report.identical, report.differences
    assert report.position == head + len(late)
    await settled(client, keys.viewer, report.position)
    await check_every_figure(client, keys.viewer, scenario.ledger, report.position)


async def test_a_second_rebuild_is_refused_while_one_runs(
        database: Database, admin_conn: asyncpg.Connection, projected: tuple[Scenario, int]) -> None:
    _, head = projected
    holder = await asyncpg.connect(database.admin_url)
    try:
        # The first rebuild holds REBUILD_LOCK for as long as it runs; a second one would drop its working tables.
        assert await holder.fetchval("SELECT pg_try_advisory_lock($1)", REBUILD_LOCK)
        tables_before = await admin_conn.fetchval("SELECT count(*) FROM pg_class WHERE relname LIKE '%_rebuild'")
        code, out, err = await run_qmstats("rebuild", env=owner_env(database))
        assert code == 1, out + err
        assert "another rebuild is running on this database; nothing was changed" in err, err
        assert await admin_conn.fetchval("SELECT count(*) FROM pg_class WHERE relname LIKE '%_rebuild'") \
            == tables_before, "the refused rebuild touched the shadow tables"
        with pytest.raises(rebuilding.RebuildRunning):
            await rebuilding.rebuild(admin_conn)
    finally:
        await holder.close()
    report = await rebuilding.rebuild(admin_conn)  # released with the first one's connection: runs again
    assert report.identical
    assert report.position == head
