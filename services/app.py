"""The composition root: ``create_app`` enters each resource (services/resources.py) in one place.

Every resource takes what it depends on as arguments (no lookup through the app by position), so
``qmstats project`` opens the same pool, projector and listener as ``serve`` without wiring them again,
and tests can pass overrides (a clock, a shared rate limiter) to ``create_app``.
"""

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass

import structlog
from aiohttp import web

from events.coordination import EVENTS_CHANNEL, KEYS_CHANNEL, PROJECTION_CHANNEL, REGIONS_CHANNEL
from events.writer import GroupCommitted
from services.appkeys import (
    DASHBOARD_CACHE,
    DIRECTORY,
    FLAGS_PROJECTOR,
    INTEGRATION,
    INTEGRATOR,
    KEYRING,
    LIMITER,
    POLL_ANSWERS,
    POOL,
    PROJECTION,
    PROJECTOR,
    REPLICAS,
    SETTINGS,
    STATE,
    STREAMS,
    TELEMETRY,
    WRITER,
)
from services.cache import PollAnswers, ResponseCache
from services.directory import Directory
from services.heap import trimming
from services.integrator import IntegratorState
from services.integrator_thread import IntegratorThread
from services.keyring import KeyRing
from services.middleware import authenticate, echo_request_id, request_context
from services.pause_gate import PauseGate, PauseReport
from services.poll_answers import answer_polls
from services.projection_state import ProjectionState
from services.projector_process import ProjectorWorker
from services.ratelimit import RateLimiter
from services.replicas import ReplicaSet, following_replicas
from services.resources import (
    Clock,
    background,
    database_pool,
    flags_projector,
    group_commit_writer,
    integrator,
    listening,
    poll_projection,
    projector,
    utc_now,
)
from services.routes import setup_routes
from services.settings import Settings
from services.state import ServiceState
from services.streams import OpenStreams
from services.telemetry import Telemetry

log = structlog.get_logger("qmstats.app")


def _keys_changed(ring: KeyRing, streams: OpenStreams) -> Callable[[str], None]:
    """On NOTIFY qmstats_keys (payload: the key id): reload the keys, and end the open streams of a revoked key."""
    revocations: set[asyncio.Task[None]] = set()

    async def end_if_revoked(key_id: str) -> None:
        if not await ring.is_active(key_id):
            streams.close_key(key_id)

    def changed(key_id: str) -> None:
        ring.invalidate()
        if streams.holds(key_id):  # a revoked viewer must not keep watching a quiet campaign
            task = asyncio.create_task(end_if_revoked(key_id))
            revocations.add(task)
            task.add_done_callback(revocations.discard)
    return changed


@dataclass(frozen=True, slots=True)
class Overrides:
    """What tests (and the multi-worker server) may replace in ``create_app``."""

    clock: Clock = utc_now
    limiter: RateLimiter | None = None
    pause_report: PauseReport | None = None
    """Where the projectors' pause decision is read from (serve --workers N: written by the projector process)."""


def create_app(settings: Settings, database_url: str, overrides: Overrides = Overrides()) -> web.Application:
    """The aiohttp application. Resources are opened in order when it starts and closed in reverse when it stops."""
    app = web.Application(middlewares=[answer_polls, request_context, authenticate],
                          client_max_size=settings.max_body_bytes)
    state, projection = ServiceState(), ProjectionState()
    pause = PauseGate(settings.projector_pause_rate, report=overrides.pause_report) if settings.run_projector \
        else None
    pause_report = pause.report if pause is not None else overrides.pause_report
    telemetry = Telemetry.for_service(projection, pause_report)
    app[SETTINGS], app[STATE], app[PROJECTION], app[TELEMETRY] = settings, state, projection, telemetry
    app[LIMITER] = overrides.limiter or RateLimiter(settings.rate_limit_per_second, settings.rate_limit_burst)
    app[DASHBOARD_CACHE], app[POLL_ANSWERS], app[STREAMS] = ResponseCache(), PollAnswers(), OpenStreams()
    app[REPLICAS] = ReplicaSet.configured(settings)
    for replica in app[REPLICAS].replicas:
        telemetry.watch_replica(replica)
    app[INTEGRATION] = IntegratorState()
    setup_routes(app)

    async def end_streams(app: web.Application) -> None:
        # Runs before aiohttp waits for in-flight handlers: an open page must not hold up shutdown.
        ended = app[STREAMS].close_all()
        if ended:
            log.info("shutting down: ended open event streams", streams=ended)

    app.on_shutdown.append(end_streams)
    app.on_response_prepare.append(echo_request_id)

    def committed(group: GroupCommitted) -> None:
        telemetry.group_committed(group)
        projection.saw_head(group.head)

    async def resources(app: web.Application) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            pool = app[POOL] = await stack.enter_async_context(database_pool(settings, database_url))
            ring = app[KEYRING] = KeyRing(pool)
            directory = app[DIRECTORY] = Directory(pool)
            await stack.enter_async_context(following_replicas(app[REPLICAS], settings, projection))
            app[WRITER] = await stack.enter_async_context(
                group_commit_writer(pool, settings, state, clock=overrides.clock, on_commit=committed))
            await stack.enter_async_context(
                background("projection-poll", poll_projection(pool, projection, settings.projector_poll_seconds,
                                                              on_lists=directory.lists_changed)))
            if settings.malloc_trim_seconds:
                await stack.enter_async_context(background("malloc-trim", trimming(settings.malloc_trim_seconds)))
            wake: Callable[[], None] = lambda: None  # noqa: E731 - replaced when the projector runs here
            if settings.run_projector:
                worker = await stack.enter_async_context(projector(
                    pool, database_url, settings, projection,
                    on_batch=lambda batch: telemetry.projected.inc(batch.events), pause=pause))
                flags = app[FLAGS_PROJECTOR] = await stack.enter_async_context(
                    flags_projector(pool, database_url, settings, pause=pause))
                app[PROJECTOR] = worker
                followers: list[ProjectorWorker | IntegratorThread] = [worker, flags]
                if settings.run_integrator:  # the log's Merkle tree and checkpoints, where the projector runs
                    tree = app[INTEGRATOR] = await stack.enter_async_context(
                        integrator(database_url, settings, app[INTEGRATION]))
                    followers.append(tree)

                def wake() -> None:
                    for follower in followers:
                        follower.wake()

            def connected(up: bool) -> None:
                state.listener_connected = up
                ring.set_live(up)

            def appended(payload: str) -> None:
                if pause is not None:
                    pause.heard(payload)  # the append rate the projectors here step aside from
                projection.saw_head(int(payload))
                app[REPLICAS].saw_head(int(payload))  # when the primary reached it: how a replica's lag is aged
                wake()

            await stack.enter_async_context(listening(database_url, {
                KEYS_CHANNEL: _keys_changed(ring, app[STREAMS]), EVENTS_CHANNEL: appended,
                PROJECTION_CHANNEL: lambda payload: projection.advance(int(payload)),
                REGIONS_CHANNEL: lambda payload: directory.lists_changed(int(payload))}, connected))
            yield

    app.cleanup_ctx.append(resources)
    return app
