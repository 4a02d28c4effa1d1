"""The three ways figures are computed agree, over generated logs with corrections, retractions, moved regions
and upcast versions:

* the projector's fold, batch by batch (the live read tables);
* PostgreSQL's aggregate generated from the catalogue (a full rebuild): every row of every read table equal,
  rows that came back to zero and each row's snapshot window included;
* figures at a past position from the latest snapshot plus a bounded fold, against a fold of the whole prefix.

Hypothesis runs in a worker thread and calls into the test's event loop (as in test_hostile_properties.py).
"""

import asyncio
import dataclasses
import uuid
from collections.abc import Callable, Coroutine
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from events import catalogue, upcasting
from events.canonical import GENESIS_HASH
from events.payloads import LabOpenDayHeld, Payload
from events.records import RecordedEvent
from events.regions import NATION
from events.store import APPEND_LOCK, insert_records
from projections.aggregate_store import build_from_log
from projections.at_position import figures_at, fold_range, scope_of
from projections.fold import children_view, region_view
from projections.projector import apply_batch
from projections.rebuild import SHADOW, compare, create_shadow, rebuild
from projections.tables import latest_snapshot
from tests.conftest import Database

T = TypeVar("T")
SNAPSHOT_EVERY = 7
BOUNDED = settings(max_examples=30, deadline=None, derandomize=True, database=None,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
CST = timezone(timedelta(hours=8))
TABLES = {"projection_totals": "campaign, region, metric", "projection_daily": "campaign, region, metric, day",
          "projection_categories": "campaign, region, metric, category", "projection_reports": "campaign, region, day"}
# A county, prefecture, province, the nation, a municipal district and a province-administered county.
REGIONS = ("330102", "330100", "330000", "000000", "110105", "429004", "440305")
# Instants near midnight in China Standard Time, given in other offsets, so the day rule matters.
MOMENTS = ("2017-09-08T15:59:59+00:00", "2017-09-08T16:00:00+00:00", "2017-09-09T23:30:00+08:00",
           "2017-09-01T00:00:00+08:00")


class LabOpenDayHeldV1(Payload):
    """A made-up first version of lab_open_day_held whose count was called ``laboratories``."""

    laboratories: int
    visitors: int


def upcast_lab_open_day_held_v1_v2(data: dict[str, Any]) -> dict[str, Any]:
    out = dict(data)
    out["labs"] = out.pop("laboratories")
    return out


@pytest.fixture
def lab_v2(monkeypatch: pytest.MonkeyPatch) -> None:
    """The catalogue with a second version of lab_open_day_held and its upcaster (both paths read it)."""
    spec = catalogue.CATALOGUE["lab_open_day_held"]
    monkeypatch.setitem(catalogue.CATALOGUE, "lab_open_day_held",
                        dataclasses.replace(spec, versions={1: LabOpenDayHeldV1, 2: LabOpenDayHeld}))
    monkeypatch.setitem(upcasting.UPCASTERS, ("lab_open_day_held", 1), upcast_lab_open_day_held_v1_v2)


money = st.decimals(min_value=0, max_value=10**6, places=2).map(lambda d: f"{d:.2f}")
counts = st.integers(min_value=0, max_value=1000)
labels = st.sampled_from(["liquor", "mooncake", "toys"])


def payloads(type_: str) -> st.SearchStrategy[dict[str, Any]]:
    """A latest-version payload of a fact type."""
    fields: dict[str, st.SearchStrategy[Any]] = {
        m.field: (money if m.kind == "money" else counts) for m in catalogue.CATALOGUE[type_].metrics}
    if (category := catalogue.CATALOGUE[type_].category_field) is not None:
        fields[category] = labels
    return st.fixed_dictionaries(fields)


FACTS = ("raid_conducted", "inspection_completed", "lab_open_day_held", "media_reported", "publicity_held")
steps = st.lists(st.one_of(
    st.tuples(st.just("fact"), st.sampled_from(FACTS), st.sampled_from(REGIONS), st.sampled_from(MOMENTS),
              st.booleans(), st.data()),
    st.tuples(st.just("correct"), st.integers(min_value=0), st.sampled_from(REGIONS), st.sampled_from(MOMENTS),
              st.booleans(), st.data()),
    st.tuples(st.just("retract"), st.integers(min_value=0), st.none(), st.none(), st.booleans(), st.none()),
), min_size=10, max_size=60)


def build_log(campaign: str, head: int, plan: list[tuple[Any, ...]]) -> list[RecordedEvent]:
    """Recorded events for a plan: facts, corrections (maybe moving region and day) and retractions of live facts."""
    out: list[RecordedEvent] = []
    live: list[tuple[str, str]] = []  # (event_id, type) of facts neither retracted nor unknown

    def record(type_: str, version: int, region: str, moment: str, data: dict[str, Any]) -> str:
        event_id = str(uuid.uuid4())
        at = datetime.fromisoformat(moment)
        out.append(RecordedEvent(head + len(out) + 1, event_id, type_, version, campaign, region, at,
                                 at.astimezone(CST), "k", "r", data, GENESIS_HASH, GENESIS_HASH, GENESIS_HASH))
        return event_id

    for kind, what, region, moment, flag, data in plan:
        if kind == "fact":
            payload = data.draw(payloads(what))
            version = 2 if what == "lab_open_day_held" else 1
            if what == "lab_open_day_held" and flag:  # stored in the old shape: both paths must upcast it
                version, payload = 1, {"laboratories": payload["labs"], "visitors": payload["visitors"]}
            live.append((record(what, version, region, moment, payload), what))
        elif live and kind == "correct":
            target, type_ = live[what % len(live)]
            replacement = data.draw(payloads(type_))
            record("event_corrected", 1, region, moment, {"corrects": target, "replacement": replacement})
        elif live and kind == "retract":
            target, _ = live.pop(what % len(live))
            record("event_retracted", 1, REGIONS[0], MOMENTS[0], {"retracts": target, "reason": "reported twice"})
    return out


class Bridge:
    """Calls into the test's event loop from Hypothesis's thread."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()

    def run(self, make: Callable[[], Coroutine[Any, Any, T]]) -> T:
        return asyncio.run_coroutine_threadsafe(make(), self.loop).result(timeout=120)


async def rows_differing(conn: asyncpg.Connection) -> dict[str, int]:
    """Rows (all columns, zeros included) present in one of the live and the shadow tables and not the other."""
    out: dict[str, int] = {}
    for table in TABLES:
        columns = "campaign, region, " + {"projection_totals": "parent, level, metric, value",
                                          "projection_daily": "metric, day, value",
                                          "projection_categories": "metric, category, value",
                                          "projection_reports": "parent, day, events"}[table] + ", changed_window"
        out[table] = int(await conn.fetchval(
            f"SELECT count(*) FROM ((SELECT {columns} FROM {table} EXCEPT SELECT {columns} FROM {SHADOW.name(table)})"
            f" UNION ALL (SELECT {columns} FROM {SHADOW.name(table)} EXCEPT SELECT {columns} FROM {table})) d"))
    return out


async def test_rebuild_aggregate_and_snapshots_equal_the_fold(admin_conn: asyncpg.Connection, database: Database,
                                                               lab_v2: None) -> None:
    bridge = Bridge()
    examples: list[int] = []
    # The aggregate alone, and shared between two and three connections (each a share of the regions).
    helpers = [await asyncpg.connect(database.admin_url) for _ in range(2)]

    async def example(campaign: str, drafts: list[RecordedEvent], probes: list[float]) -> None:
        head = int(await admin_conn.fetchval("SELECT coalesce(max(position), 0) FROM events"))
        events = [dataclasses.replace(e, position=head + e.position) for e in drafts]
        async with admin_conn.transaction():
            await admin_conn.execute("SELECT pg_advisory_xact_lock($1)", APPEND_LOCK)
            await insert_records(admin_conn, events)
        size = 3 + len(examples) % 5
        while (await apply_batch(admin_conn, batch_size=size, snapshot_every=SNAPSHOT_EVERY)).events:
            pass
        end = head + len(events)

        await create_shadow(admin_conn)
        sharing = helpers[:len(examples) % 3]
        if sharing:
            await build_from_log(admin_conn, SHADOW, end, SNAPSHOT_EVERY, sharing)
        else:
            async with admin_conn.transaction():
                await build_from_log(admin_conn, SHADOW, end, SNAPSHOT_EVERY)
        assert await rows_differing(admin_conn) == dict.fromkeys(TABLES, 0)
        assert await compare(admin_conn, SHADOW, SHADOW) == dict.fromkeys(TABLES, 0)

        for probe in probes:
            position = head + round(probe * len(events))
            async with admin_conn.transaction(isolation="repeatable_read"):
                for region, level in ((NATION, None), ("330000", None), (NATION, "county")):
                    past = await figures_at(admin_conn, campaign, position, scope_of(region, level))
                    whole = await fold_range(admin_conn, campaign, 0, position)
                    assert region_view(past, campaign, region) == region_view(whole, campaign, region)
                    assert children_view(past, campaign, region, level) == children_view(whole, campaign, region,
                                                                                         level)
                national = {k: v for k, v in past.reports.items() if k[1] == NATION}
                assert national == {k: v for k, v in whole.reports.items() if k[1] == NATION}
        examples.append(len(events))

    @BOUNDED
    @given(steps, st.lists(st.floats(min_value=0, max_value=1), min_size=1, max_size=3))
    def check(plan: list[tuple[Any, ...]], probes: list[float]) -> None:
        campaign = f"p{len(examples)}"
        drafts = build_log(campaign, 0, plan)  # drawing happens here, in Hypothesis's thread
        bridge.run(lambda: example(campaign, drafts, probes))

    try:
        await asyncio.to_thread(check)
    finally:
        for helper in helpers:
            await helper.close()
    assert sum(examples) > 300, examples
    # The probes above went through snapshots, not only through folds from position 0.
    assert await latest_snapshot(admin_conn, 2**62) >= sum(examples) - SNAPSHOT_EVERY


def raid(position: int, campaign: str, region: str, dens: int) -> RecordedEvent:
    at = datetime(2017, 9, 8, 10, tzinfo=CST)
    data = {"dens_busted": dens, "personnel": 1, "vehicles": 1, "cases": 1, "seized_value_yuan": "1.50",
            "category": "liquor"}
    return RecordedEvent(position, str(uuid.uuid4()), "raid_conducted", 1, campaign, region, at, at, "k", "r", data,
                         GENESIS_HASH, GENESIS_HASH, GENESIS_HASH)


async def test_a_rebuild_that_finds_wrong_figures_discards_the_snapshots_taken_of_them(
        admin_conn: asyncpg.Connection) -> None:
    async def append(count: int) -> None:
        head = int(await admin_conn.fetchval("SELECT coalesce(max(position), 0) FROM events"))
        async with admin_conn.transaction():
            await admin_conn.execute("SELECT pg_advisory_xact_lock($1)", APPEND_LOCK)
            await insert_records(admin_conn, [raid(head + i, "t", REGIONS[i % 3], i) for i in range(1, count + 1)])
        while (await apply_batch(admin_conn, batch_size=4, snapshot_every=SNAPSHOT_EVERY)).events:
            pass

    async def agrees_with_the_fold(position: int) -> bool:
        async with admin_conn.transaction(isolation="repeatable_read"):
            past = await figures_at(admin_conn, "t", position, scope_of(NATION))
            whole = await fold_range(admin_conn, "t", 0, position)
        return region_view(past, "t", NATION) == region_view(whole, "t", NATION)

    await append(30)
    assert await latest_snapshot(admin_conn, 30) == 28
    await admin_conn.execute("UPDATE projection_totals SET value = value + 7 WHERE campaign = 't' "
                             "AND region = '000000' AND metric = 'dens_busted'")
    await append(1)  # snapshot 35 is not reached; the tampered row is in no snapshot yet
    await append(5)  # ... now it is, at 35
    assert not await agrees_with_the_fold(36)

    report = await rebuild(admin_conn, snapshot_every=SNAPSHOT_EVERY)
    assert not report.identical
    assert report.differences["projection_totals"] == 1
    assert await latest_snapshot(admin_conn, 2**62) == 0
    assert all([await agrees_with_the_fold(p) for p in (7, 29, 36)])
    await append(10)  # the next snapshot (42) copies every row: none was snapshotted before it
    assert await latest_snapshot(admin_conn, 2**62) == 42
    assert all([await agrees_with_the_fold(p) for p in (7, 36, 42, 46)])
