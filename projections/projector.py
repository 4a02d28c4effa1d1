"""The projector: follows the log from its checkpoint in position order and applies batches.

Each batch is read, folded, and written together with the checkpoint in one transaction,
so a crash at any point neither loses nor double-counts an event: after a restart the
projector resumes from the last committed checkpoint. An event the fold cannot apply
raises FoldError and nothing of its batch is written; the projector never skips it.
"""

from dataclasses import dataclass
from datetime import datetime

from events.coordination import PROJECTION_CHANNEL, TABLES_LOCK, lock_transaction, notify
from events.store import Connection, LogFilter, read_page
from projections.fold import Fold
from projections.tables import LIVE, TableSet, apply_deltas, checkpoint, known_facts


@dataclass(frozen=True, slots=True)
class BatchApplied:
    """What one batch did."""

    from_position: int
    to_position: int
    events: int
    last_recorded_at: datetime | None


async def apply_batch(conn: Connection, *, batch_size: int = 1000, tables: TableSet = LIVE,
                      until: int | None = None) -> BatchApplied:
    """Read the next batch after the checkpoint, fold it, commit it with the checkpoint. Empty when caught up."""
    start = await checkpoint(conn, tables)
    limit = batch_size if until is None else max(0, min(batch_size, until - start))
    events = await read_page(conn, LogFilter(after=start), limit) if limit else []
    if not events:
        return BatchApplied(start, start, 0, None)
    async with conn.transaction():
        if tables == LIVE:
            await lock_transaction(conn, TABLES_LOCK, shared=True)  # no batch straddles a rebuild's swap
        fold = Fold(await known_facts(conn, events))
        for event in events:
            fold.apply(event)
        await apply_deltas(conn, fold.deltas, from_position=start, to_position=events[-1].position, tables=tables)
        if tables == LIVE:
            await notify(conn, PROJECTION_CHANNEL, str(events[-1].position))
    return BatchApplied(start, events[-1].position, len(events), events[-1].recorded_at)
