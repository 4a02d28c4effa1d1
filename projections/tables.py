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
                       window: int, tables: TableSet = LIVE) -> None:
    """Add deltas and move the checkpoint from ``from_position`` to ``to_position``. Call inside a transaction.

    ``window`` is the snapshot position that follows this batch (rows changed here go into that snapshot).
    Raises CheckpointMoved (and the caller rolls back) if the checkpoint was not at ``from_position``.

    One statement: the checkpoint's move and the four upserts are parts of one WITH, so a batch costs one
    round trip and one statement's overhead here instead of five. Each upsert reads ``moved`` first,
    so the checkpoint row is locked (or found moved) before any read-table row is: concurrent appliers queue
    on that one row as they did when it was a statement of its own, instead of deadlocking on the others.
    """
    totals = [(c, r, parent_of(r), level_of(r), m, str(v)) for (c, r, m), v in deltas.totals.items()]
    daily = [(c, r, m, d, str(v)) for (c, r, m, d), v in deltas.daily.items()]
    categories = [(c, r, m, k, str(v)) for (c, r, m, k), v in deltas.categories.items()]
    reports = [(c, r, parent_of(r), d, str(n)) for (c, r, d), n in deltas.reports.items()]
    args: list[object] = [CHECKPOINT, to_position, from_position, window]
    parts = [f"moved AS (UPDATE {tables.name('projection_checkpoints')} SET position = $2, updated_at = now() "
             "WHERE name = $1 AND position = $3 RETURNING position, $4::bigint AS window)"]  # $4 typed if unused
    changes: tuple[Sequence[tuple[object, ...]], ...] = (totals, daily, categories, reports)
    for name, (table, columns, types, key, value), rows in zip(
            ("totals", "daily", "categories", "reports"), _UPSERTS, changes, strict=True):
        if rows:
            parts.append(f"{name} AS ({_upsert(tables.name(table), columns, types, key, value, rows, args)})")
    moved = await conn.fetchval(f"WITH {', '.join(parts)} SELECT position FROM moved", *args)
    if moved is None:
        raise CheckpointMoved(f"checkpoint is no longer at {from_position}")


_UPSERTS: Final = (
    ("projection_totals", "campaign, region, parent, level, metric", "text, text, text, text, text",
     "campaign, region, metric", "value"),
    ("projection_daily", "campaign, region, metric, day", "text, text, text, date", "campaign, region, metric, day",
     "value"),
    ("projection_categories", "campaign, region, metric, category", "text, text, text, text",
     "campaign, region, metric, category", "value"),
    ("projection_reports", "campaign, region, parent, day", "text, text, text, date", "campaign, region, day",
     "events"),
)
"""Each read table the deltas go to: its name, key and label columns, their types, its key, its value column."""


def _upsert(table: str, columns: str, types: str, key: str, value: str, rows: Sequence[tuple[object, ...]],
            args: list[object]) -> str:
    """An upsert of rows of (key columns..., increment), their columns appended to ``args`` as arrays: the
    increment is added to any existing value, and the row marked changed in the window (``$4``); nothing when
    the checkpoint did not move (the WITH's ``moved``).

    Values travel as text (cast in SQL): asyncpg's binary numeric encoder costs far more per
    value than str(), and a batch carries thousands of them (every metric at every level).
    """
    kinds = []
    for column, kind in zip(zip(*rows, strict=True), [*types.split(","), "text"], strict=True):
        args.append(list(column))
        kinds.append(f"${len(args)}::{kind.strip()}[]")
    kinds[-1] += f"::{'bigint' if value == 'events' else 'numeric'}[]"
    return (f"INSERT INTO {table} AS t ({columns}, {value}, changed_window) "
            f"SELECT *, $4::bigint FROM unnest({', '.join(kinds)}) WHERE EXISTS (SELECT FROM moved) "
            f"ON CONFLICT ({key}) DO UPDATE SET {value} = t.{value} + excluded.{value}, "
            "changed_window = excluded.changed_window")


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


# --- snapshots: the read tables at every SNAPSHOT_EVERY positions (migration 0005) ---------------

_SNAPSHOTTED: Final = (
    ("projection_totals", "snapshot_totals", "campaign, region, metric", "value"),
    ("projection_categories", "snapshot_categories", "campaign, region, metric, category", "value"),
    ("projection_reports", "snapshot_reports", "campaign, region, day", "events"),
)


@translating
async def record_snapshot(conn: Connection, position: int) -> None:
    """Record the live rows changed since the previous snapshot as they stand at ``position``. Call in the batch's
    transaction, with the checkpoint at ``position``."""
    previous = int(await conn.fetchval("SELECT coalesce(max(position), 0) FROM projection_snapshots"))
    for live, snapshot, key, value in _SNAPSHOTTED:
        await conn.execute(f"INSERT INTO {snapshot} ({key}, position, {value}) "
                           f"SELECT {key}, $1, {value} FROM {live} WHERE changed_window > $2", position, previous)
    await conn.execute("INSERT INTO projection_snapshots (position) VALUES ($1)", position)


@translating
async def discard_snapshots(conn: Connection) -> None:
    """Forget every snapshot (after a rebuild found the live figures wrong)."""
    await conn.execute("TRUNCATE projection_snapshots, snapshot_totals, snapshot_categories, snapshot_reports")


@translating
async def latest_snapshot(conn: Connection, at_most: int) -> int:
    """The position of the latest snapshot at or below ``at_most`` (0, the empty figures, when there is none)."""
    return int(await conn.fetchval(
        "SELECT coalesce(max(position), 0) FROM projection_snapshots WHERE position <= $1", at_most))


@dataclass(frozen=True, slots=True)
class Scope:
    """Which rows a past-position read needs: one region's totals, categories and reports, and its children's
    (or, with ``level``, those of every region of that level whose code starts with ``prefix``)."""

    region: str
    level: str | None = None
    prefix: str = ""


@translating
async def snapshot_figures(conn: Connection, campaign: str, position: int, scope: Scope) -> Deltas:
    """The rows of ``scope`` as the snapshot at ``position`` holds them.

    Every key is looked up on its own (the newest version at or below ``position``, one index descent), so the
    cost follows the number of rows asked for, not the length of the log. The live tables enumerate the keys:
    they keep every row any event ever touched.
    """
    out = Deltas()
    rows = await conn.fetch(
        "SELECT t.region, t.metric, s.value FROM projection_totals t CROSS JOIN LATERAL ("
        "  SELECT value FROM snapshot_totals s WHERE s.campaign = t.campaign AND s.region = t.region "
        "  AND s.metric = t.metric AND s.position <= $2 ORDER BY s.position DESC LIMIT 1) s "
        "WHERE t.campaign = $1 AND (t.region = $3 OR ($4::text IS NULL AND t.parent = $3) "
        "                           OR (t.level = $4 AND t.region LIKE $5))",
        campaign, position, scope.region, scope.level, scope.prefix + "%")
    for row in rows:
        out.totals[(campaign, row["region"], row["metric"])] = row["value"]
    rows = await conn.fetch(
        "SELECT t.metric, t.category, s.value FROM projection_categories t CROSS JOIN LATERAL ("
        "  SELECT value FROM snapshot_categories s WHERE s.campaign = t.campaign AND s.region = t.region "
        "  AND s.metric = t.metric AND s.category = t.category AND s.position <= $2 "
        "  ORDER BY s.position DESC LIMIT 1) s WHERE t.campaign = $1 AND t.region = $3",
        campaign, position, scope.region)
    for row in rows:
        out.categories[(campaign, scope.region, row["metric"], row["category"])] = row["value"]
    rows = await conn.fetch(
        "SELECT t.region, t.day, s.events FROM projection_reports t CROSS JOIN LATERAL ("
        "  SELECT events FROM snapshot_reports s WHERE s.campaign = t.campaign AND s.region = t.region "
        "  AND s.day = t.day AND s.position <= $2 ORDER BY s.position DESC LIMIT 1) s "
        "WHERE t.campaign = $1 AND (t.region = $3 OR t.parent = $3)", campaign, position, scope.region)
    for row in rows:
        out.reports[(campaign, row["region"], row["day"])] = row["events"]
    return out
