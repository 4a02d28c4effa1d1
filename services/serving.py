"""Running qmstats processes: one API process, N API workers on one port with a projector process, the projector.

``serve --workers N`` (N ≥ 2) forks N API processes that each bind the port with SO_REUSEPORT, so the
kernel spreads connections over them, and one projector process. Every worker has its own group-commit
writer; their groups are serialized by the append lock in PostgreSQL (events.store), so the log keeps one
order, contiguous positions and one hash chain whatever worker a request reaches. Per-key rate limits
live in shared memory made before the fork (services.ratelimit); key revocations, projection advances and
appends reach every worker by NOTIFY, each worker holding its own LISTEN connection.

Once its children run, the parent replaces itself with a small supervisor (services.supervisor: the same
process id without the ~70 MB it imported). SIGTERM or SIGINT is passed on to every child, which drains (answers what it
accepted) and exits; the parent exits 0 when all of them did. A child that dies on its own stops the whole
group with exit code 1, for the outer supervisor (systemd, Docker) to restart. Children die with the
parent (PR_SET_PDEATHSIG), so a SIGKILLed server leaves no worker holding the port.
"""

import asyncio
import contextlib
import ctypes
import gc
import multiprocessing
import os
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path

import structlog
from aiohttp import web

from events.coordination import EVENTS_CHANNEL
from services.app import Overrides, create_app
from services.heap import trimming
from services.integrator_thread import IntegratorThread
from services.logs import console_logs
from services.pause_gate import PauseGate, PauseReport
from services.projection_state import ProjectionState
from services.projector_process import ProjectorStopped, ProjectorWorker
from services.ratelimit import RateLimiter
from services.resources import background, database_pool, flags_projector, integrator, listening, projector
from services.settings import Settings, usable_cpus
from services.supervisor import STOP_SIGNALS, logger, plan_argv, supervise

log = structlog.get_logger("qmstats.serve")
SHUTDOWN_SECONDS = 30.0
_PR_SET_PDEATHSIG = 1


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A uvloop loop where uvloop is installed, else asyncio's."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux and macOS
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def worker_count(settings: Settings) -> int:
    """How many API processes ``serve`` runs: the setting, else the CPUs this process may use."""
    if settings.workers is not None:
        return settings.workers
    return usable_cpus()


async def run_projector(settings: Settings, database_url: str, *, pause_report: PauseReport | None = None) -> None:
    """Project until SIGINT/SIGTERM. Another running projector makes this one a hot standby.

    ``pause_report``: where the projectors' pause decision is published (shared with the API processes, which
    export it on /metrics). Raises ProjectorStopped when the projector refuses to run (the database is a standby).
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    state = ProjectionState()
    # The integrator does not step aside: it costs little per event, and its checkpoint must cover a burst's
    # last event within a second of it (docs/decisions.md).
    gate = PauseGate(settings.projector_pause_rate, report=pause_report)
    async with database_pool(settings, database_url, min_size=1, max_size=4) as pool, \
            projector(pool, database_url, settings, state, pause=gate) as worker, \
            flags_projector(pool, database_url, settings, pause=gate) as flags, \
            contextlib.AsyncExitStack() as stack:

        followers: list[ProjectorWorker | IntegratorThread] = [worker, flags]
        if settings.malloc_trim_seconds:
            await stack.enter_async_context(background("malloc-trim", trimming(settings.malloc_trim_seconds)))
        if settings.run_integrator:  # the log's Merkle tree and checkpoints run wherever the projector runs
            followers.append(await stack.enter_async_context(integrator(database_url, settings)))

        def wake(payload: object) -> None:  # every follower of the log wakes on each append
            gate.heard(payload)  # the log's head after the commit: the append rate
            for follower in followers:
                follower.wake()

        async with listening(database_url, {EVENTS_CHANNEL: wake}, on_connect=wake):
            stopping = asyncio.create_task(stop.wait(), name="stop")
            projecting = worker.running
            assert projecting is not None  # set by the projector context
            try:
                await asyncio.wait([projecting, stopping], return_when=asyncio.FIRST_COMPLETED)
            finally:
                stopping.cancel()
            if projecting.done() and not projecting.cancelled():
                projecting.result()  # an unexpected error propagates as itself
                raise ProjectorStopped(state.error or "the projector stopped")
    log.info("projector stopped", position=state.position)


def run_api(settings: Settings, database_url: str, *, sock: socket.socket | None = None, reuse_port: bool = False,
            overrides: Overrides | None = None) -> None:
    """One API process until SIGINT/SIGTERM (aiohttp drains on the way out): on ``sock`` when given (bound
    already), else binding the configured host and port itself."""
    app = create_app(settings, database_url, overrides or Overrides())
    if sock is not None:
        web.run_app(app, sock=sock, access_log=None, print=None, loop=new_event_loop(),
                    shutdown_timeout=SHUTDOWN_SECONDS)
        return
    web.run_app(app, host=settings.host, port=settings.port, reuse_port=reuse_port or None, access_log=None,
                print=None, loop=new_event_loop(), shutdown_timeout=SHUTDOWN_SECONDS)


def _die_with_parent(parent: int) -> None:
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def _child(parent: int, target: Callable[[], None]) -> None:
    _die_with_parent(parent)
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    target()


def _api_worker(settings: Settings, database_url: str, limiter: RateLimiter, pause_report: PauseReport) -> None:
    run_api(settings, database_url, reuse_port=True, overrides=Overrides(limiter=limiter, pause_report=pause_report))


def _projector_worker(settings: Settings, database_url: str, pause_report: PauseReport) -> None:
    # Off by default: niced, the projector fell behind whenever the cores were contended (docs/decisions.md).
    if settings.projector_nice:
        os.nice(settings.projector_nice)
    loop = new_event_loop()
    try:
        loop.run_until_complete(run_projector(settings, database_url, pause_report=pause_report))
    finally:
        loop.close()


def serve_workers(settings: Settings, database_url: str, workers: int, *,
                  embedded_data_dir: Path | None = None) -> int:
    """Run ``workers`` API processes and (unless run_projector is off) a projector process, then become their
    supervisor (services.supervisor: this process replaced by a small one); the exit code.

    ``embedded_data_dir``: serve started or joined the embedded PostgreSQL there; the supervisor releases it.
    """
    limiter = RateLimiter.shared(settings.rate_limit_per_second, settings.rate_limit_burst)
    pause_report = PauseReport.shared()  # the projector process decides, the API processes export it
    api_settings = settings.model_copy(update={"run_projector": False})
    targets: dict[str, Callable[[], None]] = {
        f"api-{i + 1}": lambda: _api_worker(api_settings, database_url, limiter, pause_report) for i in range(workers)}
    if settings.run_projector:
        targets["projector"] = lambda: _projector_worker(settings, database_url, pause_report)
    context = multiprocessing.get_context("fork")
    # Objects made so far are shared with the children; frozen, the collector never writes to their pages,
    # so they stay shared copy-on-write instead of being copied into every worker.
    gc.freeze()
    # Blocked until the supervisor handles them (each child unblocks them for itself): see services.supervisor.
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    children: dict[str, int] = {}
    try:
        for name, target in targets.items():
            child = context.Process(target=_child, args=(os.getpid(), target), name=f"qmstats-{name}")
            child.start()
            assert child.pid is not None  # started
            children[name] = child.pid
    except BaseException:
        for pid in children.values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        for pid in children.values():
            os.waitpid(pid, 0)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
        raise
    json_logs = not console_logs(settings.log_format)
    if sys.executable:
        sys.stdout.flush()
        sys.stderr.flush()
        argv = plan_argv(children, shutdown_seconds=SHUTDOWN_SECONDS, json_logs=json_logs,
                         embedded_data_dir=embedded_data_dir)
        os.execv(argv[0], argv)
    # No interpreter to start (an embedded Python): supervise from here; exiting releases the database.
    return supervise({pid: name for name, pid in children.items()}, shutdown_seconds=SHUTDOWN_SECONDS,
                     log=logger(json_logs))
