"""The composition root: ``create_app`` wires settings, database, writer, keys, projector and routes."""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine
from datetime import timedelta
from typing import Any

import structlog
from aiohttp import web

from events.coordination import EVENTS_CHANNEL, KEYS_CHANNEL, PROJECTION_CHANNEL, REGIONS_CHANNEL
from events.region_store import lists_version
from events.store import head, translated_errors
from events.writer import GroupCommitted, GroupCommitWriter
from projections.projector import BatchApplied
from projections.tables import checkpoint_status
from services.appkeys import (
    DASHBOARD_CACHE,
    DIRECTORY,
    FOLLOWERS,
    INTEGRATION,
    INTEGRATOR,
    KEYRING,
    LIMITER,
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
from services.cache import ResponseCache
from services.database import create_pool
from services.directory import Directory
from services.integrator import IntegratorState, IntegratorWorker
from services.keyring import KeyRing
from services.listener import Listener
from services.middleware import authenticate, request_context
from services.projection_state import ProjectionState
from services.projector_process import ProjectorWorker
from services.ratelimit import RateLimiter
from services.replicas import ReplicaSet, following_replicas
from services.routes import setup_routes
from services.settings import Settings
from services.signingkey import load_signer
from services.state import ServiceState
from services.streams import OpenStreams
from services.telemetry import Telemetry

log = structlog.get_logger("qmstats.app")


async def _cancel(task: asyncio.Task[Any]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def _background(name: str, coro: Callable[[web.Application], Coroutine[Any, Any, None]]) -> Callable[
        [web.Application], AsyncIterator[None]]:
    async def context(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(coro(app), name=name)
        yield
        await _cancel(task)
    return context


async def poll_projection(app: web.Application) -> None:
    """Fallback for lost notifications: read the checkpoint and the head every poll interval."""
    state, pool, every = app[PROJECTION], app[POOL], app[SETTINGS].projector_poll_seconds
    while True:
        try:
            async with translated_errors(), pool.acquire() as conn:
                status = await checkpoint_status(conn)
                log_head, _ = await head(conn)  # after the checkpoint, so never behind it
                lists = await lists_version(conn)
            app[DIRECTORY].lists_changed(lists)
            state.tables = status.tables
            state.saw_head(log_head)
            state.advance(status.position, status.updated_at)
        except Exception as exc:  # the poll is a fallback: report and keep polling
            log.warning("projection poll failed", error=str(exc))
        await asyncio.sleep(every)


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


def integrator_contexts(settings: Settings, database_url: str) -> list[Callable[[web.Application],
                                                                              AsyncIterator[None]]]:
    """The log's integrator (Merkle tree and checkpoints) as a cleanup context, where the projector runs."""
    if not (settings.run_projector and settings.run_integrator):
        return []

    async def integrator(app: web.Application) -> AsyncIterator[None]:
        worker = IntegratorWorker(app[POOL], database_url, load_signer(settings), state=app[INTEGRATION],
                                  interval_seconds=settings.log_checkpoint_interval_seconds)
        app[INTEGRATOR] = worker
        app[FOLLOWERS] = [*app.get(FOLLOWERS, []), worker]
        task = asyncio.create_task(worker.run(), name="integrator")
        yield
        await _cancel(task)
    return [integrator]


def create_app(settings: Settings, database_url: str) -> web.Application:
    """The aiohttp application. Resources are opened in ``cleanup_ctx`` when it starts, closed when it stops."""
    app = web.Application(middlewares=[request_context, authenticate], client_max_size=settings.max_body_bytes)
    app[SETTINGS] = settings
    app[STATE] = ServiceState()
    app[PROJECTION] = ProjectionState()
    app[TELEMETRY] = Telemetry.for_service(app[PROJECTION])
    app[LIMITER] = RateLimiter(settings.rate_limit_per_second, settings.rate_limit_burst)
    app[DASHBOARD_CACHE] = ResponseCache()
    app[REPLICAS] = ReplicaSet.configured(settings)
    for replica in app[REPLICAS].replicas:
        app[TELEMETRY].watch_replica(replica)
    app[STREAMS] = OpenStreams()
    app[INTEGRATION] = IntegratorState()
    setup_routes(app)

    async def end_streams(app: web.Application) -> None:
        # Runs before aiohttp waits for in-flight handlers: an open page must not hold up shutdown.
        ended = app[STREAMS].close_all()
        if ended:
            log.info("shutting down: ended open event streams", streams=ended)

    app.on_shutdown.append(end_streams)

    async def database(app: web.Application) -> AsyncIterator[None]:
        pool = await create_pool(database_url, min_size=settings.pool_min_size, max_size=settings.pool_max_size,
                                 connect_timeout=settings.database_timeout_seconds,
                                 command_timeout=settings.statement_timeout_seconds)
        app[POOL] = pool
        app[KEYRING] = KeyRing(pool)
        app[DIRECTORY] = Directory(pool)
        yield
        await pool.close()

    async def writer(app: web.Application) -> AsyncIterator[None]:
        def committed(group: GroupCommitted) -> None:
            app[TELEMETRY].group_committed(group)
            app[PROJECTION].saw_head(group.head)

        writer = GroupCommitWriter(app[POOL], max_group_events=settings.group_max_events,
                                   clock_skew=timedelta(seconds=settings.clock_skew_seconds), on_commit=committed)
        app[WRITER] = writer
        task = asyncio.create_task(writer.run(), name="group-commit-writer")
        app[STATE].writer_running = True
        yield
        # Shutdown: refuse new appends, answer everything already queued, then stop.
        app[STATE].shutting_down = True
        writer.stop_accepting()
        await task
        app[STATE].writer_running = False

    async def projector(app: web.Application) -> AsyncIterator[None]:
        def applied(batch: BatchApplied) -> None:
            app[TELEMETRY].projected.inc(batch.events)

        worker = ProjectorWorker(app[POOL], database_url, app[PROJECTION], batch_size=settings.projector_batch_size,
                                 poll_seconds=settings.projector_poll_seconds, on_batch=applied)
        app[PROJECTOR] = worker
        app[FOLLOWERS] = [*app.get(FOLLOWERS, []), worker]
        task = asyncio.create_task(worker.run(), name="projector")
        yield
        await _cancel(task)

    async def listener(app: web.Application) -> AsyncIterator[None]:
        ring, state, projection = app[KEYRING], app[STATE], app[PROJECTION]
        followers: list[ProjectorWorker | IntegratorWorker] = [*app.get(FOLLOWERS, [])]

        def connected(up: bool) -> None:
            state.listener_connected = up
            ring.set_live(up)

        def appended(payload: str) -> None:
            projection.saw_head(int(payload))
            app[REPLICAS].saw_head(int(payload))  # when the primary reached it: how a replica's lag is aged
            for follower in followers:
                follower.wake()

        channels = {KEYS_CHANNEL: _keys_changed(ring, app[STREAMS]), EVENTS_CHANNEL: appended,
                    PROJECTION_CHANNEL: lambda payload: projection.advance(int(payload)),
                    REGIONS_CHANNEL: lambda payload: app[DIRECTORY].lists_changed(int(payload))}
        task = asyncio.create_task(Listener(database_url, channels, on_connect=connected).run(), name="listener")
        yield
        await _cancel(task)

    async def replicas(app: web.Application) -> AsyncIterator[None]:
        async with following_replicas(app[REPLICAS], settings, app[PROJECTION]):
            yield

    contexts = [database, replicas, writer, _background("projection-poll", poll_projection)]
    if settings.run_projector:
        contexts.append(projector)
    contexts.extend(integrator_contexts(settings, database_url))
    contexts.append(listener)
    app.cleanup_ctx.extend(contexts)
    return app
