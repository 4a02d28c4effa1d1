"""Rebuild the dashboard projection from position 0 into fresh tables, then swap them in.

The live tables keep serving while the shadow set is filled. For the swap, the rebuild
takes TABLES_LOCK exclusively (live batches hold it shared), brings both sets to the
same position, compares every figure, renames the shadow set into place and drops the
old one — all in one transaction, so readers see either the old or the new tables.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass

from events.coordination import TABLES_LOCK, lock_transaction
from events.store import Connection, head
from projections.projector import apply_batch
from projections.tables import CHECKPOINT, LIVE, TABLES, TableSet, checkpoint

SHADOW = TableSet("_rebuild")
RETIRED = TableSet("_retired")
# What each table's figures are, for comparing two sets (zero rows are equivalent to absent ones).
_COMPARED = {
    "projection_totals": ("campaign, region, metric", "value"),
    "projection_daily": ("campaign, region, metric, day", "value"),
    "projection_categories": ("campaign, region, metric, category", "value"),
    "projection_reports": ("campaign, region, day", "events"),
}

Progress = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class RebuildReport:
    """The outcome of a rebuild."""

    position: int
    events: int
    seconds: float
    identical: bool
    differences: dict[str, int]
    """table → number of rows whose figure differed between the rebuilt and the live set."""


async def create_shadow(conn: Connection) -> None:
    """Empty shadow tables shaped like the live ones, checkpoint at 0."""
    for table in TABLES:
        await conn.execute(f"DROP TABLE IF EXISTS {SHADOW.name(table)}")
        await conn.execute(f"CREATE TABLE {SHADOW.name(table)} (LIKE {table} INCLUDING ALL)")
    await conn.execute(f"INSERT INTO {SHADOW.name('projection_checkpoints')} (name, position) VALUES ($1, 0)",
                       CHECKPOINT)


async def fill(conn: Connection, tables: TableSet, until: int, *, batch_size: int,
               progress: Progress | None = None) -> int:
    """Apply batches to ``tables`` until its checkpoint reaches ``until``; returns events applied."""
    applied = 0
    while True:
        batch = await apply_batch(conn, batch_size=batch_size, tables=tables, until=until)
        if not batch.events:
            return applied
        applied += batch.events
        if progress is not None:
            progress(batch.to_position, until)


async def compare(conn: Connection, a: TableSet, b: TableSet) -> dict[str, int]:
    """Rows whose non-zero figure differs between two sets, per table."""
    out: dict[str, int] = {}
    for table, (keys, value) in _COMPARED.items():
        # A row whose figure differs appears on both sides of the symmetric difference: count its key once.
        query = (f"SELECT count(*) FROM (SELECT DISTINCT {keys} FROM ("
                 f"(SELECT {keys}, {value} FROM {a.name(table)} WHERE {value} <> 0 "
                 f"EXCEPT SELECT {keys}, {value} FROM {b.name(table)} WHERE {value} <> 0) UNION ALL "
                 f"(SELECT {keys}, {value} FROM {b.name(table)} WHERE {value} <> 0 "
                 f"EXCEPT SELECT {keys}, {value} FROM {a.name(table)} WHERE {value} <> 0)) AS d) AS k")
        out[table] = int(await conn.fetchval(query))
    return out


async def rebuild(conn: Connection, *, batch_size: int = 5000, progress: Progress | None = None) -> RebuildReport:
    """Rebuild from position 0 and swap the result in; reports whether it equals the live figures."""
    started = time.perf_counter()
    await create_shadow(conn)
    # Up to the head of the log, not the live checkpoint: live tables that are behind (after `import`, or with
    # no projector running) are brought up to it too, rather than "rebuilt 0 events … identical".
    events = await fill(conn, SHADOW, (await head(conn))[0], batch_size=batch_size, progress=progress)
    async with conn.transaction():
        await lock_transaction(conn, TABLES_LOCK)
        target = max(await checkpoint(conn, LIVE), await checkpoint(conn, SHADOW))
        events += await fill(conn, SHADOW, target, batch_size=batch_size, progress=progress)
        await fill(conn, LIVE, target, batch_size=batch_size)
        differences = await compare(conn, SHADOW, LIVE)
        for table in TABLES:
            await conn.execute(f"ALTER TABLE {table} RENAME TO {RETIRED.name(table)}")
            await conn.execute(f"ALTER TABLE {SHADOW.name(table)} RENAME TO {table}")
            await conn.execute(f"DROP TABLE {RETIRED.name(table)}")
        await conn.execute("""DO $$ BEGIN
            IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'qmstats_app') THEN
                GRANT SELECT, INSERT, UPDATE, DELETE ON """ + ", ".join(TABLES) + """ TO qmstats_app;
            END IF; END $$""")
    return RebuildReport(target, events, time.perf_counter() - started, not any(differences.values()), differences)
