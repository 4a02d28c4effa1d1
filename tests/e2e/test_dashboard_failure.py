"""An event the projector cannot apply stops it loudly: /readyz and /metrics say so, the checkpoint stays
before the event, and nothing after it is applied (never skipped)."""

import uuid
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from events.canonical import content_hash, format_timestamp
from events.coordination import APPEND_LOCK
from events.records import RecordedEvent
from events.store import head, insert_records
from tests.conftest import Keys
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


async def append_raw(conn: asyncpg.Connection, type_: str, data: dict[str, Any], *, region: str = "330102") -> int:
    """Append a row as the database owner, bypassing validation, with a correct position and chain hash."""
    occurred_at = datetime(2017, 9, 8, 2, 0, tzinfo=UTC)
    content = {"campaign": "2017", "data": data, "event_id": str(uuid.uuid4()),
               "occurred_at": format_timestamp(occurred_at), "region": region, "schema_version": 1, "type": type_}
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", APPEND_LOCK)
        position, prev_hash = await head(conn)
        record = RecordedEvent(position + 1, content["event_id"], type_, 1, "2017", region, occurred_at,
                               datetime.now(UTC), "test-superuser", "req-raw", data, content_hash(content),
                               prev_hash, b"")
        await insert_records(conn, [replace(record, hash=record.computed_hash())])
    return position + 1


UNAPPLICABLE = {
    "an unknown type": ("hologram_shown", {"holograms": 3}),
    "a correction of an event that does not exist": (
        "event_corrected", {"corrects": "00000000-0000-4000-8000-000000000000",
                            "replacement": {"dens_busted": 1, "personnel": 1, "vehicles": 1, "cases": 1,
                                            "seized_value_yuan": "1.00", "category": "liquor"}}),
}


@pytest.mark.parametrize("case", list(UNAPPLICABLE))
async def test_an_event_the_fold_cannot_apply_stops_the_projector_loudly(
        client: TestClient, keys: Keys, admin_conn: asyncpg.Connection, case: str) -> None:
    await import_registry(admin_conn)
    ledger = Ledger()
    before = [event(region="330102"), event("inspection_completed", region="330203")]
    good = await post_events(client, keys.reporter, before)
    ledger.record_all(before)
    await settled(client, keys.viewer, good)

    bad = await append_raw(admin_conn, *UNAPPLICABLE[case])
    assert bad == good + 1
    after = [event(region="330106"), event("pledge_signed", region="330302")]
    last = await post_events(client, keys.reporter, after)
    assert last == bad + 2

    readiness: dict[str, Any] = {}

    async def reported_failed() -> bool:
        nonlocal readiness
        response = await client.get("/readyz")
        readiness = await response.json()
        return response.status == 503 and readiness["checks"].get("projector", "").startswith("failed")

    await eventually(reported_failed, "/readyz reporting the failed projector")
    assert f"position {bad}" in readiness["checks"]["projector"], readiness
    assert readiness["ready"] is False
    metrics = await (await client.get("/metrics")).text()
    assert "qmstats_projector_failed 1.0" in metrics.splitlines()

    # Never skipped: the checkpoint stays just before the bad event, and what follows it is not applied.
    assert await admin_conn.fetchval("SELECT position FROM projection_checkpoints WHERE name = 'dashboard'") == good
    await check_dashboard(client, keys.viewer, ledger, good, lag_events=3)
    body = await check_dashboard(client, keys.viewer, ledger, good, "330000", lag_events=3)
    assert body["metrics"]["pledged_enterprises"]["value"] == 0
