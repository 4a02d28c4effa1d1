"""The composition root: ``create_app`` enters each resource (services/resources.py) in one place.

Every resource takes what it depends on as arguments (no lookup through the app by position), so
``qmstats project`` opens the same pool, projector and listener as ``serve`` without wiring them again,
and tests can pass overrides (a clock, a shared rate limiter) to ``create_app``.
"""

from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass

from aiohttp import web

from events.coordination import EVENTS_CHANNEL, KEYS_CHANNEL, PROJECTION_CHANNEL
from events.writer import GroupCommitted
from services.appkeys import (
    DASHBOARD_CACHE,
    KEYRING,
    LIMITER,
    POLL_ANSWERS,
    POOL,
    PROJECTION,
    SETTINGS,
    STATE,
    TELEMETRY,
    WRITER,
)
from services.cache import PollAnswers, ResponseCache
from services.keyring import KeyRing
from services.middleware import authenticate, request_context
from services.poll_answers import answer_polls
from services.projection_state import ProjectionState
from services.ratelimit import RateLimiter
from services.resources import (
    Clock,
    background,
    database_pool,
    group_commit_writer,
    listening,
    poll_projection,
    projector,
    utc_now,
)
from services.routes import setup_routes
from services.settings import Settings
from services.state import ServiceState
from services.telemetry import Telemetry


@dataclass(frozen=True, slots=True)
class Overrides:
    """What tests (and the multi-worker server) may replace in ``create_app``."""

    clock: Clock = utc_now
    limiter: RateLimiter | None = None


def create_app(settings: Settings, database_url: str, overrides: Overrides = Overrides()) -> web.Application:
    """The aiohttp application. Resources are opened in order when it starts and closed in reverse when it stops."""
    app = web.Application(middlewares=[answer_polls, request_context, authenticate],
                          client_max_size=settings.max_body_bytes)
    state, projection = ServiceState(), ProjectionState()
    telemetry = Telemetry.for_service(projection)
    app[SETTINGS], app[STATE], app[PROJECTION], app[TELEMETRY] = settings, state, projection, telemetry
    app[LIMITER] = overrides.limiter or RateLimiter(settings.rate_limit_per_second, settings.rate_limit_burst)
    app[DASHBOARD_CACHE], app[POLL_ANSWERS] = ResponseCache(), PollAnswers()
    setup_routes(app)

    def committed(group: GroupCommitted) -> None:
        telemetry.group_committed(group)
        projection.saw_head(group.head)

    async def resources(app: web.Application) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            pool = app[POOL] = await stack.enter_async_context(database_pool(settings, database_url))
            ring = app[KEYRING] = KeyRing(pool)
            app[WRITER] = await stack.enter_async_context(
                group_commit_writer(pool, settings, state, clock=overrides.clock, on_commit=committed))
            await stack.enter_async_context(
                background("projection-poll", poll_projection(pool, projection, settings.projector_poll_seconds)))
            wake: Callable[[], None] = lambda: None  # noqa: E731 - replaced when the projector runs here
            if settings.run_projector:
                worker = await stack.enter_async_context(projector(
                    pool, database_url, settings, projection,
                    on_batch=lambda batch: telemetry.projected.inc(batch.events)))
                wake = worker.wake

            def connected(up: bool) -> None:
                state.listener_connected = up
                ring.set_live(up)

            def appended(payload: str) -> None:
                projection.saw_head(int(payload))
                wake()

            await stack.enter_async_context(listening(database_url, {
                KEYS_CHANNEL: lambda _payload: ring.invalidate(), EVENTS_CHANNEL: appended,
                PROJECTION_CHANNEL: lambda payload: projection.advance(int(payload))}, connected))
            yield

    app.cleanup_ctx.append(resources)
    return app
