"""The composition root: ``create_app`` wires settings, database, writer, keys and routes."""

import asyncio
import contextlib
from collections.abc import AsyncIterator

import structlog
from aiohttp import web

from events.store import NOTIFY_CHANNEL
from events.writer import GroupCommitWriter
from services.apikeys import KEYS_CHANNEL, KeyRing
from services.appkeys import KEYRING, LIMITER, POOL, SETTINGS, STATE, TELEMETRY, WRITER
from services.database import create_pool
from services.listener import Listener
from services.middleware import authenticate, request_context
from services.ratelimit import RateLimiter
from services.routes import setup_routes
from services.settings import Settings
from services.state import ServiceState
from services.telemetry import Telemetry

log = structlog.get_logger("qmstats.app")


def create_app(settings: Settings, database_url: str) -> web.Application:
    """The aiohttp application. Resources are opened in ``cleanup_ctx`` when it starts, closed when it stops."""
    app = web.Application(middlewares=[request_context, authenticate], client_max_size=settings.max_body_bytes)
    app[SETTINGS] = settings
    app[TELEMETRY] = Telemetry()
    app[STATE] = ServiceState()
    app[LIMITER] = RateLimiter(settings.rate_limit_per_second, settings.rate_limit_burst)
    setup_routes(app)

    async def database(app: web.Application) -> AsyncIterator[None]:
        pool = await create_pool(database_url, min_size=settings.pool_min_size, max_size=settings.pool_max_size)
        app[POOL] = pool
        app[KEYRING] = KeyRing(pool)
        yield
        await pool.close()

    async def writer(app: web.Application) -> AsyncIterator[None]:
        writer = GroupCommitWriter(app[POOL], max_group_events=settings.group_max_events,
                                   on_commit=app[TELEMETRY].group_committed)
        app[WRITER] = writer
        task = asyncio.create_task(writer.run(), name="group-commit-writer")
        app[STATE].writer_running = True
        yield
        # Shutdown: refuse new appends, answer everything already queued, then stop.
        app[STATE].shutting_down = True
        writer.stop_accepting()
        await task
        app[STATE].writer_running = False

    async def listener(app: web.Application) -> AsyncIterator[None]:
        ring, state = app[KEYRING], app[STATE]

        def connected(up: bool) -> None:
            state.listener_connected = up
            ring.set_live(up)

        channels = {KEYS_CHANNEL: lambda _payload: ring.invalidate(), NOTIFY_CHANNEL: lambda _payload: None}
        task = asyncio.create_task(Listener(database_url, channels, on_connect=connected).run(), name="listener")
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    app.cleanup_ctx.extend([database, writer, listener])
    return app
