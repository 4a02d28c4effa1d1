"""A dedicated LISTEN connection: wakes consumers on NOTIFY, reconnects by itself."""

import asyncio
from collections.abc import Callable

import asyncpg
import structlog

from events.store import UNAVAILABLE_ERRORS, Connection

log = structlog.get_logger("qmstats.listener")
Callback = Callable[[str], None]


class Listener:
    """Keeps one connection LISTENing on a set of channels and calls back on every notification.

    NOTIFY is only a hint: consumers must also poll, because notifications sent while the
    connection is down are lost. ``on_connect`` runs after every (re)connection so consumers
    can catch up on what they may have missed.
    """

    def __init__(self, url: str, channels: dict[str, Callback], *, on_connect: Callable[[bool], None],
                 retry_seconds: float = 1.0) -> None:
        self._url = url
        self._channels = channels
        self._on_connect = on_connect
        self._retry = retry_seconds

    async def run(self) -> None:
        """Listen until cancelled, reconnecting with a pause after every failure."""
        while True:
            conn: Connection | None = None
            try:
                conn = await asyncpg.connect(self._url)
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _c, lost=lost: lost.set())
                for channel, callback in self._channels.items():
                    await conn.add_listener(channel, self._relay(callback))
                self._on_connect(True)
                await lost.wait()
                log.warning("listener connection lost; reconnecting")
            except UNAVAILABLE_ERRORS as exc:
                log.warning("listener cannot connect", error=str(exc))
            finally:
                self._on_connect(False)
                if conn is not None and not conn.is_closed():
                    conn.terminate()
            await asyncio.sleep(self._retry)

    @staticmethod
    def _relay(callback: Callback) -> Callable[..., None]:
        def relay(_conn: object, _pid: int, _channel: str, payload: str) -> None:
            callback(payload)
        return relay
