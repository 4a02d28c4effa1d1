"""Read tables built by PostgreSQL from the whole log, with SQL generated from the catalogue's declarations.

This is the fold (projections/fold.py) restated as one aggregate, for a full rebuild: a fact contributes each
metric its type declares to its region and every ancestor, for its day in China Standard Time; a correction's
replacement takes the place of what it corrects; a retraction ends it. Every version of a fact (the original
and each correction) touches its rows, as in the fold, so rows whose figures came back to zero exist here too;
only the version no later change supersedes counts. Nothing here is written per metric: the metric map, the
category fields and the upcast versions all come from events.catalogue, and older schema versions are upcast
by the one ``upcast`` in Python (they are rare) before PostgreSQL reads them. A property test holds this equal
to the fold over generated logs.
"""

from collections.abc import Sequence
from datetime import timedelta
from typing import Final

import orjson

from events.catalogue import CATALOGUE, EventType
from events.decide import CHINA_STANDARD_TIME
from events.regions import ancestors_and_self, level_of, parent_of
from events.store import Connection
from events.upcasting import upcast
from projections.tables import CHECKPOINT, TableSet

_LEAF: Final = "rebuild_leaf"
_UPCAST: Final = "rebuild_upcast"


def _literal(text: str | None) -> str:
    if text is None:
        return "NULL"
    return "'" + text.replace("'", "''") + "'"


def _facts() -> list[EventType]:
    return [t for t in CATALOGUE.values() if t.kind == "fact"]


def old_versions() -> list[tuple[str, int]]:
    """(type, version) pairs of fact payloads that must be upcast before they are read."""
    return [(t.name, v) for t in _facts() for v in sorted(t.versions) if v < t.latest_version]


def _metric_map() -> str:
    """VALUES (type, metric, field, category field): one row per declared metric, and one row per type with a
    NULL metric that counts the fact itself (the reports table)."""
    rows: list[str] = []
    for spec in _facts():
        category = _literal(spec.category_field)
        rows += [f"({_literal(spec.name)}, {_literal(m.name)}, {_literal(m.field)}, {category})" for m in spec.metrics]
        rows.append(f"({_literal(spec.name)}, NULL, NULL, NULL)")
    return "(VALUES " + ", ".join(rows) + ") AS m(type, metric, field, category_field)"


def _utc_offset() -> str:
    offset = CHINA_STANDARD_TIME.utcoffset(None) or timedelta(0)
    return f"INTERVAL '{int(offset.total_seconds())} seconds'"


def leaf_sql() -> str:
    """CREATE the leaf aggregate: per (campaign, region, day, metric, category) the effective sum and the last
    position that touched it; metric NULL rows count effective facts. $1 is the position to build up to."""
    types = ", ".join(_literal(t.name) for t in _facts())
    upcasting = bool(old_versions())
    data = "coalesce(u.data, e.data)" if upcasting else "e.data"
    join = f"LEFT JOIN {_UPCAST} u ON u.event_id = e.event_id" if upcasting else ""
    return f"""
CREATE TEMP TABLE {_LEAF} ON COMMIT DROP AS
WITH changes AS MATERIALIZED (
    SELECT position, target_event_id AS fact_id, type, region, occurred_at, data,
           lead(position) OVER (PARTITION BY target_event_id ORDER BY position) AS next_position,
           min(position) OVER (PARTITION BY target_event_id) AS first_position
      FROM events WHERE target_event_id IS NOT NULL AND position <= $1
), versions AS (
    SELECT e.type AS fact_type, e.campaign, e.region, e.occurred_at, {data} AS data,
           c.first_position IS NULL AS effective, coalesce(c.first_position, e.position) AS touched
      FROM events e
      LEFT JOIN (SELECT DISTINCT fact_id, first_position FROM changes) c ON c.fact_id = e.event_id
      {join}
     WHERE e.type IN ({types}) AND e.position <= $1
    UNION ALL
    SELECT o.type, o.campaign, c.region, c.occurred_at, c.data -> 'replacement',
           c.next_position IS NULL, coalesce(c.next_position, c.position)
      FROM changes c JOIN events o ON o.event_id = c.fact_id
     WHERE c.type = 'event_corrected' AND o.type IN ({types})
)
SELECT v.campaign, v.region, (v.occurred_at AT TIME ZONE {_utc_offset()})::date AS day, m.metric,
       v.data ->> m.category_field AS category,
       sum(CASE WHEN NOT v.effective THEN 0 WHEN m.metric IS NULL THEN 1
                ELSE (v.data ->> m.field)::numeric END) AS value,
       max(v.touched) AS touched
  FROM versions v JOIN {_metric_map()} ON m.type = v.fact_type
 GROUP BY 1, 2, 3, 4, 5"""


def rollup_sql(tables: TableSet) -> list[str]:
    """INSERT each read table of ``tables`` from the leaf aggregate rolled up to every ancestor.

    $1..$4: region, ancestor, its parent, its level (one row per pair); $5: snapshot interval.
    """
    ancestry = ("JOIN unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS a(region, ancestor, parent, level) "
                "USING (region)")
    window = "((max(l.touched) + $5 - 1) / $5) * $5"
    return [
        f"INSERT INTO {tables.name('projection_totals')} (campaign, region, parent, level, metric, value, "
        f"changed_window) SELECT l.campaign, a.ancestor, min(a.parent), min(a.level), l.metric, sum(l.value), "
        f"{window} FROM {_LEAF} l {ancestry} WHERE l.metric IS NOT NULL GROUP BY l.campaign, a.ancestor, l.metric",
        f"INSERT INTO {tables.name('projection_daily')} (campaign, region, metric, day, value, changed_window) "
        f"SELECT l.campaign, a.ancestor, l.metric, l.day, sum(l.value), {window} FROM {_LEAF} l {ancestry} "
        "WHERE l.metric IS NOT NULL GROUP BY l.campaign, a.ancestor, l.metric, l.day",
        f"INSERT INTO {tables.name('projection_categories')} (campaign, region, metric, category, value, "
        f"changed_window) SELECT l.campaign, a.ancestor, l.metric, l.category, sum(l.value), {window} "
        f"FROM {_LEAF} l {ancestry} WHERE l.metric IS NOT NULL AND l.category IS NOT NULL "
        "GROUP BY l.campaign, a.ancestor, l.metric, l.category",
        f"INSERT INTO {tables.name('projection_reports')} (campaign, region, parent, day, events, changed_window) "
        f"SELECT l.campaign, a.ancestor, min(a.parent), l.day, sum(l.value)::bigint, {window} "
        f"FROM {_LEAF} l {ancestry} WHERE l.metric IS NULL GROUP BY l.campaign, a.ancestor, l.day",
    ]


async def _load_upcast(conn: Connection, until: int) -> None:
    """Older schema versions, upcast in Python, into a temporary table the leaf aggregate prefers."""
    await conn.execute(f"CREATE TEMP TABLE {_UPCAST} (event_id uuid PRIMARY KEY, data jsonb NOT NULL) "
                       "ON COMMIT DROP")
    pairs = old_versions()
    rows = await conn.fetch(
        "SELECT event_id, type, schema_version, data FROM events WHERE position <= $1 "
        "AND (type, schema_version) IN (SELECT * FROM unnest($2::text[], $3::smallint[]))",
        until, [t for t, _ in pairs], [v for _, v in pairs])
    records = [(r["event_id"], orjson.dumps(upcast(r["type"], r["schema_version"], orjson.loads(r["data"]))[1])
                .decode()) for r in rows]
    if records:
        await conn.copy_records_to_table(_UPCAST, records=records, columns=["event_id", "data"])


def _ancestry(regions: Sequence[str]) -> list[list[str | None]]:
    pairs = [(r, a) for r in regions for a in ancestors_and_self(r)]
    return [[r for r, _ in pairs], [a for _, a in pairs], [parent_of(a) for _, a in pairs],
            [level_of(a) for _, a in pairs]]


async def build_from_log(conn: Connection, tables: TableSet, until: int, snapshot_every: int) -> None:
    """Fill the empty read tables of ``tables`` with the figures of positions 1..``until`` and set their
    checkpoint there. Call inside a transaction."""
    if old_versions():
        await _load_upcast(conn, until)
    await conn.execute(leaf_sql(), until)
    regions = [r["region"] for r in await conn.fetch(f"SELECT DISTINCT region FROM {_LEAF}")]
    arrays = _ancestry(regions)
    for statement in rollup_sql(tables):
        await conn.execute(statement, *arrays, snapshot_every)
    await conn.execute(f"DROP TABLE {_LEAF}")
    if old_versions():
        await conn.execute(f"DROP TABLE {_UPCAST}")
    await conn.execute(f"UPDATE {tables.name('projection_checkpoints')} SET position = $2, updated_at = now() "
                       "WHERE name = $1", CHECKPOINT, until)
