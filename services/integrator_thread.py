"""The integrator on a thread of its own, with its own event loop and connections.

On the loop of the process that runs it, the integrator shared turns with the projectors, and a projector
folds a batch without yielding for up to a few hundred milliseconds while it catches up; each such stretch
delayed the tree and so the next checkpoint by as much (issue 16 asks for one within about a second of an
append). On a thread it waits at most the interpreter's switch interval (5 ms) for its turn, so a checkpoint
follows the log by the integrator's own work. The thread costs one connection and no process.
"""

import asyncio
import contextlib
import threading

import structlog

from events.notes import Signer
from services.database import create_pool
from services.integrator import IntegratorState, IntegratorWorker
from services.settings import Settings

log = structlog.get_logger("qmstats.integrator")

STOP_SECONDS = 10.0
"""How long stopping waits for the thread (it only has to close its connections)."""


class IntegratorThread:
    """Runs an ``IntegratorWorker`` on a daemon thread; ``wake`` and ``stop`` may be called from any thread."""

    def __init__(self, url: str, settings: Settings, signer: Signer, state: IntegratorState) -> None:
        self.state = state
        self._url = url
        self._settings = settings
        self._signer = signer
        self._loop = asyncio.new_event_loop()
        self._worker: IntegratorWorker | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._thread = threading.Thread(target=self._main, name="qmstats-integrator", daemon=True)

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()

    def wake(self) -> None:
        """New events were appended: pass the hint to the worker on its own loop."""
        with contextlib.suppress(RuntimeError):  # the loop closed: the thread is gone, there is nothing to wake
            self._loop.call_soon_threadsafe(self._wake_worker)

    def stop(self) -> None:
        """Cancel the worker and wait for the thread to close its connections (blocking)."""
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._cancel)
        self._thread.join(STOP_SECONDS)
        if self._thread.is_alive():
            log.error("the integrator thread did not stop in time")

    def _wake_worker(self) -> None:
        if self._worker is not None:
            self._worker.wake()

    def _cancel(self) -> None:
        self._stopping = True
        if self._task is not None:
            self._task.cancel()

    def _main(self) -> None:
        try:
            self._loop.run_until_complete(self._run())
        except asyncio.CancelledError:
            pass
        except Exception:  # the worker handles what it expects; anything else ends the thread, loudly
            self.state.mode = "failed"
            log.exception("the integrator thread stopped")
        finally:
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.close()

    async def _run(self) -> None:
        self._task = asyncio.current_task()
        if self._stopping:
            return
        settings = self._settings
        # min_size 0: an unreachable database surfaces inside the worker, which retries, not here.
        pool = await create_pool(self._url, min_size=0, max_size=1, connect_timeout=settings.database_timeout_seconds,
                                 command_timeout=settings.statement_timeout_seconds)
        try:
            self._worker = IntegratorWorker(pool, self._url, self._signer, state=self.state,
                                            interval_seconds=settings.log_checkpoint_interval_seconds)
            await self._worker.run()
        finally:
            await pool.close()
