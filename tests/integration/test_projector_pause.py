"""The projectors step aside while appends arrive faster than QMSTATS_PROJECTOR_PAUSE_RATE, and catch up
after the burst: every figure right, the flags projection at the head too, the pause over."""

from collections.abc import AsyncIterator

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from projections.flag_tables import flags_checkpoint
from services.app import Overrides, create_app
from services.appkeys import PROJECTION
from services.overload import Decision
from services.pause_gate import PauseReport
from services.projection_state import ProjectionState
from tests import conftest
from tests.conftest import Database, Keys
from tests.projection_support import (
    Ledger,
    check_every_figure,
    eventually,
    get_json,
    import_registry,
    open_campaign,
    post_scenario,
    realistic_mix,
    settled,
)


class RecordedReport(PauseReport):
    """Every decision the projectors took, with the projection and the log head as they stood."""

    def __init__(self) -> None:
        super().__init__()
        self.projection: ProjectionState | None = None
        self.decisions: list[tuple[Decision, int, int]] = []

    def record(self, decision: Decision, threshold: float) -> None:
        super().record(decision, threshold)
        projection = self.projection or ProjectionState()
        self.decisions.append((decision, projection.position, projection.head))


async def serve(database: Database, threshold: float) -> AsyncIterator[tuple[TestClient, RecordedReport]]:
    report = RecordedReport()
    app = create_app(conftest.test_settings(projector_pause_rate=threshold), database.service_url,
                     Overrides(pause_report=report))
    report.projection = app[PROJECTION]
    async with TestClient(TestServer(app)) as client:
        yield client, report


@pytest.fixture
async def paused_above_50(database: Database) -> AsyncIterator[tuple[TestClient, RecordedReport]]:
    """A threshold any test load exceeds: 50 events/s."""
    async for served in serve(database, 50.0):
        yield served


@pytest.fixture(params=[0.0, 1e9], ids=["never", "far-above-the-load"])
async def never_paused(request: pytest.FixtureRequest,
                       database: Database) -> AsyncIterator[tuple[TestClient, RecordedReport]]:
    async for served in serve(database, request.param):
        yield served


async def burst(client: TestClient, keys: Keys, admin_conn: asyncpg.Connection) -> tuple[int, Ledger]:
    await import_registry(admin_conn)
    await open_campaign(client, keys.admin)
    scenario = realistic_mix(seed=4242)
    return await post_scenario(client, keys.admin, scenario), scenario.ledger


async def test_paused_projectors_resume_after_a_burst_and_catch_up_to_the_head(
        paused_above_50: tuple[TestClient, RecordedReport], keys: Keys, admin_conn: asyncpg.Connection) -> None:
    client, report = paused_above_50
    head, ledger = await burst(client, keys, admin_conn)

    await settled(client, keys.viewer, head, within=30)
    await eventually(lambda: _flags_at(admin_conn, head), "the flags projection reaches the head", within=30)
    await check_every_figure(client, keys.viewer, ledger, head)

    held = [(position, seen) for decision, position, seen in report.decisions if decision.paused]
    assert held, "the burst never paused the projectors"
    assert any(position < seen for position, seen in held), "a pause never held back an appended event"
    # A pause starts only above the threshold, on both windows.
    starts = [d for (d, *_), (before, *_) in zip(report.decisions[1:], report.decisions, strict=False)
              if d.paused and not before.paused]
    assert starts
    assert all(d.rate >= 50 and d.recent_rate >= 50 for d in starts)
    await eventually(lambda: _resumed(report), "the projectors resume on a quiet log", within=30)
    metrics = await client.get("/metrics")
    assert "qmstats_projectors_paused 0.0" in await metrics.text()


async def test_below_the_threshold_or_with_it_off_they_never_pause(
        never_paused: tuple[TestClient, RecordedReport], keys: Keys, admin_conn: asyncpg.Connection) -> None:
    client, report = never_paused
    head, _ = await burst(client, keys, admin_conn)
    await settled(client, keys.viewer, head, within=30)
    await eventually(lambda: _flags_at(admin_conn, head), "the flags projection reaches the head", within=30)

    assert report.decisions
    assert not any(decision.paused for decision, *_ in report.decisions)
    assert max(decision.rate for decision, *_ in report.decisions) > 0  # they heard the burst
    body = await get_json(client, "/v1/campaigns/2017/dashboard", keys.viewer)
    assert body["position"] == head


async def _flags_at(conn: asyncpg.Connection, head: int) -> bool:
    return await flags_checkpoint(conn) >= head


async def _resumed(report: RecordedReport) -> bool:
    return not report.paused
