"""`qmstats project`: the projector alone, with its own LISTEN connection and fallback poll."""

import asyncio
import contextlib
import signal

import structlog

from events.store import NOTIFY_CHANNEL
from services.database import create_pool
from services.listener import Listener
from services.projection import ProjectionState
from services.projector import ProjectorWorker
from services.settings import Settings

log = structlog.get_logger("qmstats.project")


class ProjectorStopped(Exception):
    """The projector gave up by itself (it refuses a standby): the message says why."""


async def run_projector(settings: Settings, database_url: str) -> None:
    """Project until SIGINT/SIGTERM. Another running projector makes this one a hot standby.

    Raises ProjectorStopped when the projector refuses to run (the database is a standby).
    """
    pool = await create_pool(database_url, min_size=1, max_size=3, connect_timeout=settings.database_timeout_seconds,
                             command_timeout=settings.statement_timeout_seconds)
    state = ProjectionState()
    worker = ProjectorWorker(pool, database_url, state, batch_size=settings.projector_batch_size,
                             poll_seconds=settings.projector_poll_seconds)
    listener = Listener(database_url, {NOTIFY_CHANNEL: lambda _payload: worker.wake()},
                        on_connect=lambda _up: worker.wake())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    projecting = asyncio.create_task(worker.run(), name="projector")
    tasks = [projecting, asyncio.create_task(listener.run(), name="listen")]
    stopping = asyncio.create_task(stop.wait(), name="stop")
    try:
        await asyncio.wait([projecting, stopping], return_when=asyncio.FIRST_COMPLETED)
        if projecting.done():
            projecting.result()  # an unexpected error propagates as itself
            raise ProjectorStopped(state.error or "the projector stopped")
    finally:
        stopping.cancel()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await pool.close()
        log.info("projector stopped", position=state.position)
