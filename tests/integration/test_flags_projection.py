"""The flags projection on a real log: batched like the projector, rebuilt from 0, beside the dashboard."""

import random
from datetime import timedelta
from typing import Any

import asyncpg

from events.canonical import format_timestamp
from events.decide import Actor, AppendRequest
from events.intake import read_events
from events.records import RecordedEvent
from events.writer import GroupCommitWriter
from projections.baselines import BaselineMemory
from projections.flag_runner import apply_flag_batch, project_flags
from projections.flag_tables import FlagQuery, read_flags, reset_flags
from projections.projector import apply_batch
from projections.quality import QualityState, fold_flags
from tests.integration.appending import open_campaign, read_log, running_writer
from tests.quality_support import LogBuilder, province_month, raid

REPORTER = Actor("k-zj", "reporter", "330000")


def _envelope(record: RecordedEvent) -> dict[str, Any]:
    return {"event_id": record.event_id, "type": record.type, "schema_version": 1, "campaign": record.campaign,
            "region": record.region, "occurred_at": format_timestamp(record.occurred_at), "data": record.data}


async def _append(pool: asyncpg.Pool, builder: LogBuilder) -> None:
    """Append the builder's events, each recorded at the time the builder says (so lateness is as built)."""
    now = [builder.events[0].recorded_at]
    async with running_writer(pool, clock=lambda: now[0]) as writer:
        await open_campaign(writer)
        await _send(writer, builder.events, now)


async def _send(writer: GroupCommitWriter, records: list[RecordedEvent], now: list[Any]) -> None:
    for record in records:
        now[0] = record.recorded_at
        await writer.append(AppendRequest(read_events(_envelope(record)), REPORTER, "req"))


def _slipped_month() -> LogBuilder:
    builder = province_month(seed=21)
    first = builder.add("raid_conducted", "330106", raid(builder.rng, 1.0) | {"seized_value_yuan": "15.20"}, day=29)
    builder.add("raid_conducted", "330106", dict(first.data), day=29)  # sent twice under a new id
    builder.add("raid_conducted", "330108", raid(builder.rng, 1.0) | {"seized_value_yuan": "920000000.00"}, day=29)
    builder.add("publicity_held", "330110", {"participants": 300, "quality_workers": 5, "booths": 2,
                                             "consultations": 9}, day=18, late_days=11.5)
    return builder


def _key(flag: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(flag[k] for k in ("id", "code", "event_id", "metric", "observed", "expected", "score", "status"))


async def test_flags_are_identical_after_a_rebuild_and_equal_the_pure_fold(pool: asyncpg.Pool) -> None:
    builder = _slipped_month()
    await _append(pool, builder)
    async with pool.acquire() as conn:
        assert await project_flags(conn, batch_size=97) == len(builder.events) + 1
        live = await read_flags(conn, FlagQuery("2017", status="all"))
        codes = {f["code"] for f in live}
        assert {"unit_scale", "possible_duplicate", "late_report"} <= codes
        await reset_flags(conn)
        assert await read_flags(conn, FlagQuery("2017", status="all")) == []
        await project_flags(conn, batch_size=1000)
        rebuilt = await read_flags(conn, FlagQuery("2017", status="all"))
        log = await read_log(conn)
    assert [_key(f) for f in rebuilt] == [_key(f) for f in live]
    # Batching does not change what is flagged: one pure fold over the whole log gives the same flags.
    pure = fold_flags(QualityState(), log, late_after=timedelta(days=7)).raised
    assert sorted(f.id for f in pure) == sorted(f["id"] for f in live)


async def test_baselines_kept_in_memory_give_the_flags_read_per_batch_and_the_pure_fold(pool: asyncpg.Pool) -> None:
    builder = province_month(seed=8)
    heavy = [builder.add("raid_conducted", "330106", raid(builder.rng, 1.0), day=1 + i % 28) for i in range(90)]
    for target in heavy[50:]:  # more withdrawals from one list in a batch than the memory keeps beyond a window
        builder.retract(target)
    for target in heavy[20:32]:  # older than the memory's cut list: their corrections come last
        builder.correct(target, raid(builder.rng, 1.0) | {"seized_value_yuan": "910000.00"})
    builder.add("raid_conducted", "330106", raid(builder.rng, 1.0) | {"seized_value_yuan": "920000000.00"}, day=29)
    await _append(pool, builder)
    async with pool.acquire() as conn:
        memory = BaselineMemory(max_entries=100)  # small: the least recently used lists leave and are read again
        while (await apply_flag_batch(conn, batch_size=61, memory=memory)).events:
            pass
        kept = await read_flags(conn, FlagQuery("2017", status="all"))
        await reset_flags(conn)
        while (await apply_flag_batch(conn, batch_size=61)).events:  # no memory: every baseline read per batch
            pass
        read = await read_flags(conn, FlagQuery("2017", status="all"))
        log = await read_log(conn)
    assert [_key(f) for f in kept] == [_key(f) for f in read]
    pure = {f.id: f for f in fold_flags(QualityState(), log, late_after=timedelta(days=7)).raised}
    assert {f["id"]: (f["observed"], f["expected"]) for f in kept} == {
        i: (f.observed, f.expected) for i, f in pure.items()}
    assert ("330106", "unit_scale") in {(f["region"], f["code"]) for f in kept}


async def test_flags_never_change_a_figure(pool: asyncpg.Pool) -> None:
    builder = _slipped_month()
    await _append(pool, builder)
    async with pool.acquire() as conn:
        while (await apply_batch(conn)).events:
            pass
        before = await conn.fetch("SELECT * FROM projection_totals ORDER BY campaign, region, metric")
        await project_flags(conn)
        after = await conn.fetch("SELECT * FROM projection_totals ORDER BY campaign, region, metric")
        national = await conn.fetchval("SELECT value FROM projection_totals WHERE region = '000000' "
                                       "AND metric = 'seized_value_yuan'")
    assert [tuple(r) for r in after] == [tuple(r) for r in before]
    # The slip is in the figure until someone corrects it: flags warn, they do not edit.
    assert national > 920_000_000


async def test_a_review_in_the_log_marks_the_flag_reviewed(pool: asyncpg.Pool) -> None:
    builder = _slipped_month()
    await _append(pool, builder)
    async with pool.acquire() as conn:
        await project_flags(conn)
        [duplicate] = await read_flags(conn, FlagQuery("2017", code="possible_duplicate"))
    review = LogBuilder(random.Random(5), [])
    review.add("flag_reviewed", "330100", {"flag_id": duplicate["id"], "verdict": "confirmed", "note": "重复上报"},
               day=29, late_days=1)
    now = [review.events[0].recorded_at]
    async with running_writer(pool, clock=lambda: now[0]) as writer:
        await _send(writer, review.events, now)
    async with pool.acquire() as conn:
        await project_flags(conn)
        [reviewed] = await read_flags(conn, FlagQuery("2017", status="reviewed"))
        still_open = await read_flags(conn, FlagQuery("2017", code="possible_duplicate"))
    assert reviewed["id"] == duplicate["id"]
    assert reviewed["review"]["verdict"] == "confirmed"
    assert reviewed["review"]["note"] == "重复上报"
    assert reviewed["review"]["reviewed_by"] == "k-zj"
    assert still_open == []
