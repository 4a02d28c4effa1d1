"""The flags projector's batch: read the next events after its checkpoint, score them, commit with the checkpoint.

Like the dashboard projector (projections/projector.py) but with its own checkpoint and tables, so either
can lag, fail or be rebuilt without the other. It never writes a figure. A projector that runs batch after
batch keeps its baselines in a BaselineMemory (projections/baselines.py) instead of reading them per batch.
"""

from datetime import timedelta

from events.coordination import FLAGS_CHANNEL, notify
from events.store import Connection, LogFilter, read_page
from projections.baselines import BaselineMemory
from projections.flag_tables import flags_checkpoint, load_state, write_changes
from projections.projector import BatchApplied
from projections.quality import fold_flags


async def apply_flag_batch(conn: Connection, *, batch_size: int = 1000, until: int | None = None,
                           late_after: timedelta = timedelta(days=7),
                           memory: BaselineMemory | None = None) -> BatchApplied:
    """Score the next batch after the flags checkpoint and commit it. Empty when caught up.

    ``memory``: baselines kept from the previous batch (started afresh when the checkpoint is not where it
    was left); settled at the new checkpoint once the batch is committed.
    """
    start = await flags_checkpoint(conn)
    limit = batch_size if until is None else max(0, min(batch_size, until - start))
    events = await read_page(conn, LogFilter(after=start), limit) if limit else []
    if not events:
        return BatchApplied(start, start, 0, None)
    if memory is not None and not memory.valid_at(start):
        memory.start(start, empty=start == 0)  # position 0: the quality tables are empty (reset_flags, migration)
    async with conn.transaction():
        state = await load_state(conn, events, memory)
        changes = fold_flags(state, events, late_after=late_after)
        await write_changes(conn, changes, from_position=start, to_position=events[-1].position)
        await notify(conn, FLAGS_CHANNEL, str(events[-1].position))
    if memory is not None:
        memory.settle(events[-1].position)
    return BatchApplied(start, events[-1].position, len(events), events[-1].recorded_at)


async def project_flags(conn: Connection, *, batch_size: int = 1000, until: int | None = None,
                        late_after: timedelta = timedelta(days=7)) -> int:
    """Apply flag batches until caught up (or ``until``); returns the events scored. For rebuilds and tests."""
    scored = 0
    memory = BaselineMemory()
    while True:
        batch = await apply_flag_batch(conn, batch_size=batch_size, until=until, late_after=late_after,
                                       memory=memory)
        if not batch.events:
            return scored
        scored += batch.events
