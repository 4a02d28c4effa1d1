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

import asyncio
from collections.abc import Sequence
from datetime import timedelta
from typing import Final

import orjson

from events.catalogue import CATALOGUE, EventType
from events.decide import CHINA_STANDARD_TIME
from events.fields import MAX_COUNT
from events.regions import ancestors_and_self, level_of, parent_of
from events.store import Connection, translating
from events.upcasting import upcast
from projections.tables import CHECKPOINT, TableSet

# Working tables of one build (created and dropped by it). Unlogged, not temporary: the other connections of the
# build read them, each aggregating its share of the log.
_CHANGES: Final = "rebuild_changes"
_CHANGED: Final = "rebuild_changed_facts"
_LEAF: Final = "rebuild_leaf"
_UPCAST: Final = "rebuild_upcast"
_WORKING: Final = (_LEAF, _CHANGED, _CHANGES, _UPCAST)
# Counts are read from the payload as integer when every count fits (a payload's count is at most MAX_COUNT):
# sum(integer) keeps a plain bigint running sum, which PostgreSQL updates (and passes between parallel workers)
# far more cheaply than sum(bigint)'s 128-bit one. The sums themselves are bigint.
_COUNT_CAST: Final = "integer" if MAX_COUNT < 2**31 else "bigint"


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
    """The effective sum of each slot of the versions grouped: its type's metric field, read from ``counted`` (the
    payload of an effective version, NULL for one a later change superseded), cast to the slot's type; 0 when no
    version counted."""
    columns = []
    for slot in _slot_columns():
        cast, total = (_COUNT_CAST, "bigint") if slot.startswith("k") else ("numeric", "numeric")
        cases = " ".join(
            f"WHEN {_literal(t.name)} THEN ({alias}.counted ->> {_literal(field)})::{cast}"
            for t in _facts() for s, metric in _slots(t) if s == slot
            for field in [next(m.field for m in t.metrics if m.name == metric)])
        columns.append(f"coalesce(sum(CASE {alias}.fact_type {cases} END), 0)::{total} AS {slot}")
    return ", ".join(columns)


def _category(alias: str) -> str:
    cases = " ".join(f"WHEN {_literal(t.name)} THEN {alias}.data ->> {_literal(t.category_field)}"
                     for t in _facts() if t.category_field)
    return f"CASE {alias}.fact_type {cases} END" if cases else "NULL::text"


def _utc_offset() -> str:
    offset = CHINA_STANDARD_TIME.utcoffset(None) or timedelta(0)
    return f"INTERVAL '{int(offset.total_seconds())} seconds'"


def _upcast_join(alias: str) -> tuple[str, str]:
    """(payload expression, join) for reading events ``alias``: the upcast payload where there is one."""
    if not old_versions():
        return f"{alias}.data", ""
    return f"coalesce(u.data, {alias}.data)", f"LEFT JOIN {_UPCAST} u ON u.event_id = {alias}.event_id"


def changes_sql() -> list[str]:
    """CREATE the corrections and retractions up to $1, each with the next change of its fact; and every changed
    fact as first stored (upcast), with its first change.

    The changed facts are looked up by event_id (a few index descents each), not by a join that PostgreSQL
    would answer with another pass over the whole log."""
    data, join = _upcast_join("e")
    types = ", ".join(_literal(t.name) for t in _facts())
    return [f"""CREATE UNLOGGED TABLE {_CHANGES} AS
    SELECT position, target_event_id AS fact_id, type, region, occurred_at, data,
           lead(position) OVER (PARTITION BY target_event_id ORDER BY position) AS next_position
      FROM events WHERE target_event_id IS NOT NULL AND position <= $1""",
            f"""CREATE UNLOGGED TABLE {_CHANGED} AS
    SELECT c.fact_id, c.first_position, e.type, e.campaign, e.region, e.occurred_at, {data} AS data
      FROM (SELECT fact_id, min(position) AS first_position FROM {_CHANGES} GROUP BY fact_id) c
      JOIN events e ON e.event_id = c.fact_id {join}
     WHERE e.event_id = ANY(ARRAY(SELECT DISTINCT fact_id FROM {_CHANGES})) AND e.type IN ({types})
       AND e.position <= $1"""]


def _leaf_select(share: int, shares: int) -> str:
    types = ", ".join(_literal(t.name) for t in _facts())
    data, join = _upcast_join("e")
    day = f"(v.occurred_at AT TIME ZONE {_utc_offset()})::date"
    # A share is a set of (region, day) pairs, so the shares' rows (each keyed by one region and day) are disjoint;
    # the pairs spread the log evenly where regions alone (a few hundred of unequal size) would not.
    mine = (f"WHERE abs((hashtext(v.region) # ({day} - DATE '2000-01-01'))::bigint) % {shares} = {share}"
            if shares > 1 else "")
    return f"""
WITH versions AS (
    SELECT e.type AS fact_type, e.campaign, e.region, e.occurred_at, {data} AS data, {data} AS counted,
           TRUE AS effective, e.position AS touched
      FROM events e {join}
     WHERE e.type IN ({types}) AND e.position <= $1 AND e.event_id NOT IN (SELECT fact_id FROM {_CHANGED})
    UNION ALL
    SELECT type, campaign, region, occurred_at, data, NULL, FALSE, first_position FROM {_CHANGED}
    UNION ALL
    SELECT o.type, o.campaign, c.region, c.occurred_at, c.data -> 'replacement',
           CASE WHEN c.next_position IS NULL THEN c.data -> 'replacement' END,
           c.next_position IS NULL, coalesce(c.next_position, c.position)
      FROM {_CHANGES} c JOIN {_CHANGED} o USING (fact_id)
     WHERE c.type = 'event_corrected'
)
SELECT v.campaign, v.region, {day} AS day, v.fact_type AS type,
       {_category("v")} AS category, {_slot_values("v")},
       count(*) FILTER (WHERE v.effective) AS facts, max(v.touched) AS touched
  FROM versions v {mine}
 GROUP BY 1, 2, 3, 4, 5"""


def leaf_sql(share: int = 0, shares: int = 1) -> str:
    """INSERT into the leaf aggregate its rows of ``share`` (of ``shares``, 0-based; see _leaf_select): per
    (campaign, region, day, type, category) the effective sum of each metric slot (see _slots), the number of
    effective facts, and the last position that touched it. $1: the position to build up to.

    One pass over the log: facts never changed are read from it, changed ones (and their corrections) from the
    small working tables. ``data`` gives a version's rows (its category), ``counted`` its figures."""
    return f"INSERT INTO {_LEAF} {_leaf_select(share, shares)}"


def leaf_table_sql() -> str:
    """CREATE the empty leaf aggregate table (shaped by its query; $1 as in leaf_sql)."""
    return f"CREATE UNLOGGED TABLE {_LEAF} AS {_leaf_select(0, 1)} WITH NO DATA"


def rollup_sql(tables: TableSet, shares: int = 1) -> list[str]:
    """INSERT each read table of ``tables`` from the leaf aggregate rolled up to every ancestor; the daily series
    (the most rows by far) in ``shares`` statements of a share of the days each, listed first.

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
    days = [f"(day - DATE '2000-01-01') % {shares} = {share}" if shares > 1 else "TRUE" for share in range(shares)]
    return [
        *(f"INSERT INTO {tables.name('projection_daily')} (campaign, region, metric, day, value, changed_window) "
          f"SELECT g.campaign, g.region, m.metric, g.day, {value}, g.window "
          f"FROM {rolled('type, day', where=mine)} {metrics}" for mine in days),
        f"INSERT INTO {tables.name('projection_categories')} (campaign, region, metric, category, value, "
        f"changed_window) SELECT g.campaign, g.region, m.metric, g.category, {value}, g.window "
        f"FROM {rolled('type, category', where='category IS NOT NULL')} {metrics}",
        f"INSERT INTO {tables.name('projection_totals')} (campaign, region, parent, level, metric, value, "
        f"changed_window) SELECT g.campaign, g.region, g.parent, g.level, m.metric, {value}, g.window "
        f"FROM {rolled('type', extra=', min(parent) AS parent, min(level) AS level')} {metrics}",
        f"INSERT INTO {tables.name('projection_reports')} (campaign, region, parent, day, events, changed_window) "
        f"SELECT g.campaign, g.region, g.parent, g.day, g.facts, g.window "
        f"FROM {rolled('day', extra=', min(parent) AS parent')}",
    ]


async def _load_upcast(conn: Connection, until: int) -> None:
    """Older schema versions, upcast in Python, into a working table the leaf aggregate prefers."""
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


Statement = tuple[str, Sequence[object]]
# For the aggregates: memory to hash in, and hashing asked for, since the planner cannot estimate a share's filter
# and would sort half a million rows to group them instead. (PostgreSQL runs no INSERT … SELECT with parallel
# workers: the connections are the parallelism.)
_AGGREGATING: Final = "SET LOCAL work_mem = '256MB'; SET LOCAL enable_sort = off"


async def _run(conn: Connection, statements: Sequence[Statement], settings: str) -> None:
    """Execute statements in one transaction (a savepoint inside the caller's) after SET LOCAL ``settings``."""
    async with conn.transaction():
        await conn.execute(settings)
        for sql, args in statements:
            await conn.execute(sql, *args)


async def share_out(connections: Sequence[Connection], statements: Sequence[Statement]) -> None:
    """Execute independent statements over ``connections`` at once, each connection taking the next statement
    when it is free (list the longest first); each in a transaction of its own."""
    queue = list(statements)

    async def take(conn: Connection) -> None:
        while queue:
            await _run(conn, [queue.pop(0)], _AGGREGATING)

    tasks = [asyncio.ensure_future(take(conn)) for conn in connections]
    try:
        await asyncio.gather(*tasks)
    finally:  # one failed: the others stop too, before the caller goes on (or closes their connections)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


@translating
async def build_from_log(conn: Connection, tables: TableSet, until: int, snapshot_every: int,
                         helpers: Sequence[Connection] = ()) -> None:
    """Fill the empty read tables of ``tables`` with the figures of positions 1..``until`` and set their
    checkpoint there.

    ``helpers`` are more connections to the same database, to use more than one core: ``conn`` and each helper
    aggregate a share of the log at once, then fill the read tables between them. With helpers, call
    outside a transaction (they must see the working tables ``conn`` commits); without, either way.
    """
    if helpers and conn.is_in_transaction():
        raise ValueError("build_from_log with helpers must not run inside a transaction")
    connections = [conn, *helpers]
    async with conn.transaction():
        await conn.execute(f"DROP TABLE IF EXISTS {', '.join(_WORKING)}")  # left by a build that failed
        if old_versions():
            await _load_upcast(conn, until)
        await _run(conn, [(statement, (until,)) for statement in changes_sql()] + [(leaf_table_sql(), (until,))],
                   "SET LOCAL work_mem = '256MB'")
    await share_out(connections, [(leaf_sql(share, len(connections)), (until,))
                                  for share in range(len(connections))])
    regions = [r["region"] for r in await conn.fetch(f"SELECT DISTINCT region FROM {_LEAF}")]
    arrays = _ancestry(regions)
    await share_out(connections, [(statement, (*arrays, snapshot_every))
                                  for statement in rollup_sql(tables, len(connections))])
    async with conn.transaction():
        await conn.execute(f"DROP TABLE {', '.join(_WORKING[:3])}")
        if old_versions():
            await conn.execute(f"DROP TABLE {_UPCAST}")
        await conn.execute(f"UPDATE {tables.name('projection_checkpoints')} SET position = $2, updated_at = now() "
                           "WHERE name = $1", CHECKPOINT, until)
