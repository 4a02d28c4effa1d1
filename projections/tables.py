"""The dashboard projection's read tables: applying deltas with the checkpoint, and reading figures.

A ``TableSet`` names one set of tables: the live one, or a shadow set that ``rebuild``
fills from position 0 before swapping it in.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Final

import asyncpg

from events.records import RecordedEvent
from events.regions import level_of, parent_of
from events.store import Connection, translating, with_changes
from projections.fold import Deltas, Fact, effective_fact

CHECKPOINT: Final = "dashboard"
TABLES: Final = ("projection_checkpoints", "projection_totals", "projection_daily", "projection_categories",
                 "projection_reports")


class CheckpointMoved(Exception):
    """Another projector advanced the checkpoint first; this batch was not applied."""


@dataclass(frozen=True, slots=True)
class TableSet:
    """Names of one set of read tables (suffix '' is the live set)."""

    suffix: str = ""

    def __post_init__(self) -> None:
        if self.suffix not in ("", "_rebuild", "_retired"):
            raise ValueError(f"unknown table set suffix {self.suffix!r}")

    def name(self, table: str) -> str:
        """The physical name of one of TABLES in this set."""
        return table + self.suffix


LIVE: Final = TableSet()


@translating
async def checkpoint(conn: Connection, tables: TableSet = LIVE) -> int:
    """The position this set of tables reflects."""
    value = await conn.fetchval(f"SELECT position FROM {tables.name('projection_checkpoints')} WHERE name = $1",
                                CHECKPOINT)
    return int(value or 0)


@dataclass(frozen=True, slots=True)
class CheckpointStatus:
    """Where a set of tables stands, and which physical tables they are (a rebuild's swap changes ``tables``)."""

    position: int
    updated_at: datetime | None
    tables: int


@translating
async def checkpoint_status(conn: Connection, tables: TableSet = LIVE) -> CheckpointStatus:
    """The checkpoint's position and time, and the checkpoint table's oid, in one statement."""
    name = tables.name("projection_checkpoints")
    row = await conn.fetchrow(
        f"SELECT (SELECT position FROM {name} WHERE name = $1) AS position, "
        f"(SELECT updated_at FROM {name} WHERE name = $1) AS updated_at, '{name}'::regclass::oid::bigint AS tables",
        CHECKPOINT)
    assert row is not None  # a SELECT without FROM always yields its one row
    return CheckpointStatus(int(row["position"] or 0), row["updated_at"], int(row["tables"]))


@translating
async def known_facts(conn: Connection, events: Sequence[RecordedEvent]) -> dict[str, Fact | None]:
    """Effective facts (as of just before ``events``) that their corrections and retractions refer to."""
    if not events:
        return {}
    in_batch = {e.event_id for e in events}
    targets = list({t for e in events if (t := e.target) is not None and t not in in_batch})
    found = await with_changes(conn, targets, before=events[0].position)
    return {t: effective_fact(h.original, h.changes) for t, h in found.items()}


@translating
async def apply_deltas(conn: Connection, deltas: Deltas, *, from_position: int, to_position: int,
                       tables: TableSet = LIVE) -> None:
    """Add deltas and move the checkpoint from ``from_position`` to ``to_position``. Call inside a transaction.

    Raises CheckpointMoved (and the caller rolls back) if the checkpoint was not at ``from_position``.
    """
    moved = await conn.fetchval(
        f"UPDATE {tables.name('projection_checkpoints')} SET position = $2, updated_at = now() "
        "WHERE name = $1 AND position = $3 RETURNING position", CHECKPOINT, to_position, from_position)
    if moved is None:
        raise CheckpointMoved(f"checkpoint is no longer at {from_position}")
    totals = [(c, r, parent_of(r), level_of(r), m, str(v)) for (c, r, m), v in deltas.totals.items()]
    daily = [(c, r, m, d, str(v)) for (c, r, m, d), v in deltas.daily.items()]
    categories = [(c, r, m, k, str(v)) for (c, r, m, k), v in deltas.categories.items()]
    reports = [(c, r, parent_of(r), d, str(n)) for (c, r, d), n in deltas.reports.items()]
    await _add(conn, tables.name("projection_totals"), "campaign, region, parent, level, metric",
               "text, text, text, text, text", "campaign, region, metric", "value", totals)
    await _add(conn, tables.name("projection_daily"), "campaign, region, metric, day", "text, text, text, date",
               "campaign, region, metric, day", "value", daily)
    await _add(conn, tables.name("projection_categories"), "campaign, region, metric, category",
               "text, text, text, text", "campaign, region, metric, category", "value", categories)
    await _add(conn, tables.name("projection_reports"), "campaign, region, parent, day", "text, text, text, date",
               "campaign, region, day", "events", reports)


async def _add(conn: Connection, table: str, columns: str, types: str, key: str, value: str,
               rows: Sequence[tuple[object, ...]]) -> None:
    """Upsert rows of (key columns..., increment): the increment is added to any existing value.

    Values travel as text (cast in SQL): asyncpg's binary numeric encoder costs far more per
    value than str(), and a batch carries thousands of them (every metric at every level).
    """
    if not rows:
        return
    arrays = [list(column) for column in zip(*rows, strict=True)]
    kinds = [f"${i}::{t.strip()}[]" for i, t in enumerate(types.split(","), start=1)]
    kinds.append(f"${len(kinds) + 1}::text[]::{'bigint' if value == 'events' else 'numeric'}[]")
    await conn.execute(
        f"INSERT INTO {table} AS t ({columns}, {value}) SELECT * FROM unnest({', '.join(kinds)}) "
        f"ON CONFLICT ({key}) DO UPDATE SET {value} = t.{value} + excluded.{value}", *arrays)


@dataclass(frozen=True, slots=True)
class RegionFigures:
    """Totals of one region: metric → value, and per-category values of categorised metrics."""

    totals: dict[str, Decimal]
    categories: dict[str, dict[str, Decimal]]


@translating
async def region_totals(conn: Connection, campaign: str, region: str, tables: TableSet = LIVE) -> RegionFigures:
    """One region's totals (its whole subtree) and category breakdowns: two index lookups."""
    rows = await conn.fetch(f"SELECT metric, value FROM {tables.name('projection_totals')} "
                            "WHERE campaign = $1 AND region = $2", campaign, region)
    cats = await conn.fetch(f"SELECT metric, category, value FROM {tables.name('projection_categories')} "
                            "WHERE campaign = $1 AND region = $2", campaign, region)
    categories: dict[str, dict[str, Decimal]] = {}
    for row in cats:
        categories.setdefault(row["metric"], {})[row["category"]] = row["value"]
    return RegionFigures({r["metric"]: r["value"] for r in rows}, categories)


@translating
async def figure_now(conn: Connection, campaign: str, region: str, metric: str, tables: TableSet = LIVE) -> Decimal:
    """One metric's total for a region (its whole subtree); zero when nothing was reported."""
    value = await conn.fetchval(f"SELECT value FROM {tables.name('projection_totals')} "
                                "WHERE campaign = $1 AND region = $2 AND metric = $3", campaign, region, metric)
    return Decimal(value or 0)


@translating
async def children_totals(conn: Connection, campaign: str, parent: str,
                          tables: TableSet = LIVE) -> dict[str, dict[str, Decimal]]:
    """region → metric → value for every child of ``parent`` that has figures."""
    rows = await conn.fetch(f"SELECT region, metric, value FROM {tables.name('projection_totals')} "
                            "WHERE campaign = $1 AND parent = $2", campaign, parent)
    return _by_region(rows)


@translating
async def level_totals(conn: Connection, campaign: str, level: str, prefix: str,
                       tables: TableSet = LIVE) -> dict[str, dict[str, Decimal]]:
    """region → metric → value for every region of ``level`` whose code starts with ``prefix``."""
    rows = await conn.fetch(f"SELECT region, metric, value FROM {tables.name('projection_totals')} "
                            "WHERE campaign = $1 AND level = $2 AND region LIKE $3", campaign, level, prefix + "%")
    return _by_region(rows)


def _by_region(rows: Sequence[asyncpg.Record]) -> dict[str, dict[str, Decimal]]:
    out: dict[str, dict[str, Decimal]] = {}
    for row in rows:
        out.setdefault(row["region"], {})[row["metric"]] = row["value"]
    return out


@translating
async def daily_series(conn: Connection, campaign: str, region: str, metric: str,
                       tables: TableSet = LIVE) -> dict[date, Decimal]:
    """day → value of one metric for one region."""
    rows = await conn.fetch(f"SELECT day, value FROM {tables.name('projection_daily')} "
                            "WHERE campaign = $1 AND region = $2 AND metric = $3", campaign, region, metric)
    return {r["day"]: r["value"] for r in rows}


@translating
async def latest_report_day(conn: Connection, campaign: str, parent: str, tables: TableSet = LIVE) -> date | None:
    """The latest day on which a child of ``parent`` has an effective fact, or None."""
    day: date | None = await conn.fetchval(
        f"SELECT max(day) FROM {tables.name('projection_reports')} WHERE campaign = $1 AND parent = $2 "
        "AND events > 0", campaign, parent)
    return day


@translating
async def reporting_children(conn: Connection, campaign: str, parent: str, day: date | None,
                             tables: TableSet = LIVE) -> set[str]:
    """Children of ``parent`` with at least one effective fact on ``day`` (or on any day when None)."""
    rows = await conn.fetch(
        f"SELECT region FROM {tables.name('projection_reports')} WHERE campaign = $1 AND parent = $2 "
        "AND ($3::date IS NULL OR day = $3) GROUP BY region HAVING sum(events) > 0", campaign, parent, day)
    return {r["region"] for r in rows}
