"""`qmstats project`: the projector alone, with its own LISTEN connection and fallback poll."""

import asyncio
import contextlib
import signal

import structlog

from events.store import NOTIFY_CHANNEL
from services.database import create_pool
from services.integrator import IntegratorWorker
from services.listener import Listener
from services.projection import ProjectionState
from services.projector import ProjectorWorker
from services.settings import Settings
from services.signingkey import load_signer

log = structlog.get_logger("qmstats.project")


async def run_projector(settings: Settings, database_url: str) -> None:
    """Project until SIGINT/SIGTERM. Another running projector makes this one a hot standby."""
    pool = await create_pool(database_url, min_size=1, max_size=4, connect_timeout=settings.database_timeout_seconds,
                             command_timeout=settings.statement_timeout_seconds)
    state = ProjectionState()
    worker = ProjectorWorker(pool, database_url, state, batch_size=settings.projector_batch_size,
                             poll_seconds=settings.projector_poll_seconds)
    workers: list[ProjectorWorker | IntegratorWorker] = [worker]
    if settings.run_integrator:
        workers.append(IntegratorWorker(pool, database_url, load_signer(settings),
                                        interval_seconds=settings.log_checkpoint_interval_seconds))

    def wake(*_args: object) -> None:
        for each in workers:
            each.wake()

    listener = Listener(database_url, {NOTIFY_CHANNEL: wake}, on_connect=wake)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    tasks = [asyncio.create_task(each.run(), name=type(each).__name__) for each in workers]
    tasks.append(asyncio.create_task(listener.run(), name="listen"))
    try:
        await stop.wait()
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await pool.close()
        log.info("projector stopped", position=state.position)
