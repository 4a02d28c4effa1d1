"""Rebuild the dashboard projection from position 0 into fresh tables, then swap them in.

The live tables keep serving while PostgreSQL fills the shadow set in one aggregate over the log
(projections/aggregate_store.py, generated from the catalogue), on as many connections as it is given (one per
core: each aggregates a share of the regions, then fills and indexes some of the tables). For the swap, the rebuild
takes TABLES_LOCK exclusively (live batches hold it shared), brings both sets to the
same position, compares every figure, renames the shadow set into place and drops the
old one — all in one transaction, so readers see either the old or the new tables.
"""

import re
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from events.coordination import REBUILD_LOCK, TABLES_LOCK, lock_transaction, try_lock_session, unlock_session
from events.store import Connection, head
from projections.aggregate_store import build_from_log, share_out
from projections.projector import SNAPSHOT_EVERY, apply_batch
from projections.tables import CHECKPOINT, LIVE, TABLES, TableSet, checkpoint, discard_snapshots

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


async def create_shadow(conn: Connection, *, indexed: bool = True) -> None:
    """Empty shadow tables shaped like the live ones, checkpoint at 0; without ``indexed``, the read tables get
    their indexes from index_shadow once they are filled (one sorted build instead of a probe per row)."""
    for table in TABLES:
        await conn.execute(f"DROP TABLE IF EXISTS {SHADOW.name(table)}")
        later = not indexed and table != "projection_checkpoints"
        # LIKE copies no storage parameters: the live tables' fillfactor (migration 0009) is carried over here,
        # or a swap would leave the live set without it.
        options = await conn.fetchval("SELECT reloptions FROM pg_class WHERE oid = $1::regclass", table)
        with_options = f" WITH ({', '.join(options)})" if options else ""
        await conn.execute(f"CREATE TABLE {SHADOW.name(table)} (LIKE {table} INCLUDING ALL"
                           f"{' EXCLUDING INDEXES' if later else ''}){with_options}")
    await conn.execute(f"INSERT INTO {SHADOW.name('projection_checkpoints')} (name, position) VALUES ($1, 0)",
                       CHECKPOINT)


async def index_shadow(conn: Connection, helpers: Sequence[Connection] = ()) -> None:
    """Give the shadow read tables every index (and the primary key) their live counterparts have; a table's
    indexes are built on one connection, the tables' on all of them at once (the largest table first)."""
    builds: list[tuple[int, str]] = []
    for table in TABLES[1:]:
        shadow = SHADOW.name(table)
        if await conn.fetchval("SELECT EXISTS (SELECT FROM pg_index WHERE indrelid = $1::regclass)", shadow):
            continue
        statements = []
        for row in await conn.fetch("SELECT pg_get_indexdef(indexrelid) AS definition, indisprimary "
                                    "FROM pg_index WHERE indrelid = $1::regclass", table):
            name = f"{shadow}_{uuid.uuid4().hex[:12]}"  # index names are unique per schema, across rebuilds
            statements.append(re.sub(r"INDEX \S+ ON \S+ USING", f"INDEX {name} ON {shadow} USING", row["definition"],
                                     count=1))
            if row["indisprimary"]:
                statements.append(f"ALTER TABLE {shadow} ADD CONSTRAINT {name} PRIMARY KEY USING INDEX {name}")
        pages = int(await conn.fetchval("SELECT pg_relation_size($1::regclass) / 8192", shadow))
        builds.append((pages, "; ".join(statements)))
    await share_out([conn, *helpers], [(sql, ()) for _, sql in sorted(builds, reverse=True)])


async def fill(conn: Connection, tables: TableSet, until: int, *, batch_size: int,
               progress: Progress | None = None, snapshot_every: int = SNAPSHOT_EVERY) -> int:
    """Apply batches to ``tables`` until its checkpoint reaches ``until``; returns events applied."""
    applied = 0
    while True:
        batch = await apply_batch(conn, batch_size=batch_size, tables=tables, until=until,
                                  snapshot_every=snapshot_every)
        if not batch.events:
            return applied
        applied += batch.events
        if progress is not None:
            progress(batch.to_position, until)


async def compare(conn: Connection, a: TableSet, b: TableSet) -> dict[str, int]:
    """Rows whose non-zero figure differs between two sets, per table (a missing row counts as zero)."""
    out: dict[str, int] = {}
    for table, (keys, value) in _COMPARED.items():
        # One hashed full join per table (the two sets' rows side by side); a key whose figure differs counts once.
        query = (f"SELECT count(*) FROM {a.name(table)} a FULL JOIN {b.name(table)} b USING ({keys}) "
                 f"WHERE coalesce(a.{value}, 0) <> coalesce(b.{value}, 0)")
        out[table] = int(await conn.fetchval(query))
    return out


class RebuildRunning(Exception):
    """Another rebuild holds REBUILD_LOCK on this database; this one did nothing."""


async def rebuild(conn: Connection, *, batch_size: int = 5000, progress: Progress | None = None,
                  snapshot_every: int = SNAPSHOT_EVERY, helpers: Sequence[Connection] = ()) -> RebuildReport:
    """Rebuild from position 0 and swap the result in; reports whether it equals the live figures.

    The shadow set is built by PostgreSQL up to the head of the log (sharing the work with ``helpers``, more
    connections to the same database); under the lock, the live set is brought to the same position and events
    appended meanwhile are folded into both, batch by batch, before they are compared.

    Raises RebuildRunning, having changed nothing, while another rebuild runs on the same database (both build
    the same shadow and working tables).
    """
    if not await try_lock_session(conn, REBUILD_LOCK):
        raise RebuildRunning("another rebuild is running on this database; nothing was changed")
    try:
        return await _rebuild(conn, batch_size, progress, snapshot_every, helpers)
    finally:
        await unlock_session(conn, REBUILD_LOCK)


async def _rebuild(conn: Connection, batch_size: int, progress: Progress | None, snapshot_every: int,
                   helpers: Sequence[Connection]) -> RebuildReport:
    started = time.perf_counter()
    await create_shadow(conn, indexed=False)
    # Up to the head of the log, not the live checkpoint: live tables that are behind (after `import`, or with
    # no projector running) are brought up to it too, rather than "rebuilt 0 events … identical".
    events = (await head(conn))[0]
    await build_from_log(conn, SHADOW, events, snapshot_every, helpers)
    await index_shadow(conn, helpers)
    if progress is not None:
        progress(events, events)
    async with conn.transaction():
        await lock_transaction(conn, TABLES_LOCK)
        await conn.execute("SET LOCAL work_mem = '64MB'")  # compare hashes each table's rows in memory
        target = max(await checkpoint(conn, LIVE), await checkpoint(conn, SHADOW))
        events += await fill(conn, SHADOW, target, batch_size=batch_size, progress=progress,
                             snapshot_every=snapshot_every)
        await fill(conn, LIVE, target, batch_size=batch_size, snapshot_every=snapshot_every)
        differences = await compare(conn, SHADOW, LIVE)
        if any(differences.values()):
            # The snapshots were taken of the figures now found wrong: past-position reads fold from 0 again
            # until the projector's next snapshot, which copies every row (none was snapshotted before it).
            await discard_snapshots(conn)
        for table in TABLES:
            await conn.execute(f"ALTER TABLE {table} RENAME TO {RETIRED.name(table)}")
            await conn.execute(f"ALTER TABLE {SHADOW.name(table)} RENAME TO {table}")
            await conn.execute(f"DROP TABLE {RETIRED.name(table)}")
        await conn.execute("""DO $$ BEGIN
            IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'qmstats_app') THEN
                GRANT SELECT, INSERT, UPDATE, DELETE ON """ + ", ".join(TABLES) + """ TO qmstats_app;
            END IF; END $$""")
    return RebuildReport(target, events, time.perf_counter() - started, not any(differences.values()), differences)
