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
from events.store import Connection, translating
from events.upcasting import upcast
from projections.tables import CHECKPOINT, TableSet

# Working tables of one rebuild transaction (created and dropped in it). Unlogged, not temporary: parallel
# workers may read these, so PostgreSQL can scan the log and aggregate it with more than one process.
_CHANGES: Final = "rebuild_changes"
_FIRST: Final = "rebuild_first_changes"
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


def _slots(spec: EventType) -> list[tuple[str, str]]:
    """(slot column, metric) for each metric of a fact type: counts fill k1, k2, … (bigint, summed exactly and
    fast), money fills d1, d2, … (numeric), each in declared order."""
    out: list[tuple[str, str]] = []
    for kind, letter in (("count", "k"), ("money", "d")):
        out += [(f"{letter}{i}", m.name) for i, m in enumerate((m for m in spec.metrics if m.kind == kind), 1)]
    return out


def _slot_columns() -> list[str]:
    names = {slot for t in _facts() for slot, _ in _slots(t)}
    return sorted(names, key=lambda n: (n[0], int(n[1:])))


def _metric_map() -> str:
    """VALUES (type, slot, metric): which leaf column holds which metric of a type."""
    rows = [f"({_literal(t.name)}, {_literal(slot)}, {_literal(metric)})"
            for t in _facts() for slot, metric in _slots(t)]
    return "(VALUES " + ", ".join(rows) + ") AS m(type, slot, metric)"


def _slot_values(alias: str) -> str:
    """The effective sum of each slot of the versions grouped: its type's metric field cast to the slot's type."""
    columns = []
    for slot in _slot_columns():
        cast = "bigint" if slot.startswith("k") else "numeric"
        cases = " ".join(
            f"WHEN {_literal(t.name)} THEN ({alias}.data ->> {_literal(field)})::{cast}"
            for t in _facts() for s, metric in _slots(t) if s == slot
            for field in [next(m.field for m in t.metrics if m.name == metric)])
        # Counts are summed as bigint from here on (integer arithmetic; 10^9 per event leaves room for 10^9
        # events), money as numeric.
        columns.append(f"sum(CASE WHEN NOT {alias}.effective THEN 0 ELSE CASE {alias}.fact_type {cases} END END)"
                       f"::{cast} AS {slot}")
    return ", ".join(columns)


def _category(alias: str) -> str:
    cases = " ".join(f"WHEN {_literal(t.name)} THEN {alias}.data ->> {_literal(t.category_field)}"
                     for t in _facts() if t.category_field)
    return f"CASE {alias}.fact_type {cases} END" if cases else "NULL::text"


def _utc_offset() -> str:
    offset = CHINA_STANDARD_TIME.utcoffset(None) or timedelta(0)
    return f"INTERVAL '{int(offset.total_seconds())} seconds'"


def changes_sql() -> list[str]:
    """CREATE the corrections and retractions up to $1, each with the next change of its fact, and every
    changed fact with its first change."""
    return [f"""CREATE UNLOGGED TABLE {_CHANGES} AS
    SELECT position, target_event_id AS fact_id, type, region, occurred_at, data,
           lead(position) OVER (PARTITION BY target_event_id ORDER BY position) AS next_position
      FROM events WHERE target_event_id IS NOT NULL AND position <= $1""",
            f"CREATE UNLOGGED TABLE {_FIRST} AS SELECT fact_id, min(position) AS first_position FROM {_CHANGES} "
            "WHERE position <= $1 GROUP BY fact_id"]


def leaf_sql() -> str:
    """CREATE the leaf aggregate: per (campaign, region, day, type, category) the effective sum of each metric
    slot (see _slots), the number of effective facts, and the last position that touched it.
    $1: the position to build up to."""
    types = ", ".join(_literal(t.name) for t in _facts())
    upcasting = bool(old_versions())
    data = "coalesce(u.data, e.data)" if upcasting else "e.data"
    join = f"LEFT JOIN {_UPCAST} u ON u.event_id = e.event_id" if upcasting else ""
    return f"""
CREATE UNLOGGED TABLE {_LEAF} AS
WITH versions AS (
    SELECT e.type AS fact_type, e.campaign, e.region, e.occurred_at, {data} AS data,
           TRUE AS effective, e.position AS touched
      FROM events e {join}
     WHERE e.type IN ({types}) AND e.position <= $1 AND e.event_id NOT IN (SELECT fact_id FROM {_FIRST})
    UNION ALL
    SELECT e.type, e.campaign, e.region, e.occurred_at, e.data, FALSE, c.first_position
      FROM {_FIRST} c CROSS JOIN LATERAL (
           SELECT e.type, e.campaign, e.region, e.occurred_at, {data} AS data
             FROM events e {join} WHERE e.event_id = c.fact_id AND e.type IN ({types})) e
    UNION ALL
    SELECT o.type, o.campaign, c.region, c.occurred_at, c.data -> 'replacement',
           c.next_position IS NULL, coalesce(c.next_position, c.position)
      FROM {_CHANGES} c JOIN events o ON o.event_id = c.fact_id
     WHERE c.type = 'event_corrected' AND o.type IN ({types})
)
SELECT v.campaign, v.region, (v.occurred_at AT TIME ZONE {_utc_offset()})::date AS day, v.fact_type AS type,
       {_category("v")} AS category, {_slot_values("v")},
       count(*) FILTER (WHERE v.effective) AS facts, max(v.touched) AS touched
  FROM versions v
 GROUP BY 1, 2, 3, 4, 5"""


def rollup_sql(tables: TableSet) -> list[str]:
    """INSERT each read table of ``tables`` from the leaf aggregate rolled up to every ancestor.

    $1..$4: region, ancestor, its parent, its level (one row per pair); $5: snapshot interval.
    """
    slots = _slot_columns()
    sums = ", ".join(f"sum({s}){'::bigint' if s.startswith('k') else ''} AS {s}" for s in slots)
    value = "CASE m.slot " + " ".join(f"WHEN {_literal(s)} THEN g.{s}" for s in slots) + " END"
    window = "((max(touched) + $5 - 1) / $5) * $5 AS window"

    def rolled(keys: str, where: str = "TRUE", extra: str = "") -> str:
        # Summed over what the table does not key on, then once per ancestor, then per ancestor.
        return (f"(SELECT campaign, ancestor AS region, {keys}{extra}, {sums}, sum(facts) AS facts, {window} FROM "
                f"(SELECT campaign, region, {keys}, {sums}, sum(facts) AS facts, max(touched) AS touched "
                f"FROM {_LEAF} WHERE {where} GROUP BY campaign, region, {keys}) l "
                "JOIN unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS a(region, ancestor, parent, level) "
                f"USING (region) GROUP BY campaign, ancestor, {keys}) g")

    metrics = f"JOIN {_metric_map()} ON m.type = g.type"
    return [
        f"INSERT INTO {tables.name('projection_totals')} (campaign, region, parent, level, metric, value, "
        f"changed_window) SELECT g.campaign, g.region, g.parent, g.level, m.metric, {value}, g.window "
        f"FROM {rolled('type', extra=', min(parent) AS parent, min(level) AS level')} {metrics}",
        f"INSERT INTO {tables.name('projection_daily')} (campaign, region, metric, day, value, changed_window) "
        f"SELECT g.campaign, g.region, m.metric, g.day, {value}, g.window FROM {rolled('type, day')} {metrics}",
        f"INSERT INTO {tables.name('projection_categories')} (campaign, region, metric, category, value, "
        f"changed_window) SELECT g.campaign, g.region, m.metric, g.category, {value}, g.window "
        f"FROM {rolled('type, category', where='category IS NOT NULL')} {metrics}",
        f"INSERT INTO {tables.name('projection_reports')} (campaign, region, parent, day, events, changed_window) "
        f"SELECT g.campaign, g.region, g.parent, g.day, g.facts, g.window "
        f"FROM {rolled('day', extra=', min(parent) AS parent')}",
    ]


async def _load_upcast(conn: Connection, until: int) -> None:
    """Older schema versions, upcast in Python, into a temporary table the leaf aggregate prefers."""
    await conn.execute(f"CREATE UNLOGGED TABLE {_UPCAST} (event_id uuid PRIMARY KEY, data jsonb NOT NULL)")
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


@translating
async def build_from_log(conn: Connection, tables: TableSet, until: int, snapshot_every: int) -> None:
    """Fill the empty read tables of ``tables`` with the figures of positions 1..``until`` and set their
    checkpoint there. Call inside a transaction."""
    # One aggregate over the whole log: let it hash in memory rather than sort on disk (this transaction only).
    await conn.execute("SET LOCAL work_mem = '256MB'")
    # They are dropped at the end of the transaction that made them; these are left by hand, if any.
    await conn.execute(f"DROP TABLE IF EXISTS {_LEAF}, {_FIRST}, {_CHANGES}, {_UPCAST}")
    if old_versions():
        await _load_upcast(conn, until)
    for statement in changes_sql():
        await conn.execute(statement, until)
    await conn.execute(f"ANALYZE {_CHANGES}, {_FIRST}")  # the planner's guesses for fresh tables are far off
    await conn.execute(leaf_sql(), until)
    regions = [r["region"] for r in await conn.fetch(f"SELECT DISTINCT region FROM {_LEAF}")]
    arrays = _ancestry(regions)
    for statement in rollup_sql(tables):
        await conn.execute(statement, *arrays, snapshot_every)
    await conn.execute(f"DROP TABLE {_LEAF}, {_FIRST}, {_CHANGES}")
    if old_versions():
        await conn.execute(f"DROP TABLE {_UPCAST}")
    await conn.execute(f"UPDATE {tables.name('projection_checkpoints')} SET position = $2, updated_at = now() "
                       "WHERE name = $1", CHECKPOINT, until)
