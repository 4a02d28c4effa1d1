"""The flags projector: a second projector beside the dashboard's, elected and woken the same way."""

from datetime import timedelta
from typing import Final

import asyncpg

from events.store import Connection
from projections.flag_runner import apply_flag_batch
from projections.runner import BatchApplied
from services.projection import ProjectionState
from services.projector import ProjectorWorker
from services.settings import Settings

# Held for the session by the active flags projector (the dashboard projector holds PROJECTOR_LOCK):
# the two lead independently, so either may run in any process that runs projectors.
FLAGS_PROJECTOR_LOCK: Final = 0x716D_0F01


def flags_worker(pool: asyncpg.Pool, leader_url: str, settings: Settings) -> ProjectorWorker:
    """A projector worker that scores the log into the quality tables."""
    late_after = timedelta(days=settings.flag_late_after_days)

    async def batch(conn: Connection, size: int) -> BatchApplied:
        return await apply_flag_batch(conn, batch_size=size, late_after=late_after)

    return ProjectorWorker(pool, leader_url, ProjectionState(), batch_size=settings.projector_batch_size,
                           poll_seconds=settings.projector_poll_seconds, apply=batch, lock=FLAGS_PROJECTOR_LOCK,
                           name="flags")
