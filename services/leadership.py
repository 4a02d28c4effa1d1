"""Leader election for the log's followers (the projectors and the integrator): one session-level
advisory lock each, held for as long as the leader's connection lives; and the one loop every follower
runs around it (``follow_as_leader``): lead when possible, stand by otherwise, start over after a setback.

The lock is taken on a connection of its own, not a pooled one: the connection dying (process killed,
network gone) releases it, and a hot standby polling for it takes over. A standby server grants advisory
locks of its own, so a follower on a hot standby would "lead" nothing; it is refused (``OnStandby``).
"""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Literal

import asyncpg
import structlog

from events.coordination import in_recovery, try_lock_session
from events.store import Connection
from services.database import ON_STANDBY

FollowerMode = Literal["off", "standby", "active", "failed", "degraded"]
"""What a follower is doing, for /readyz and the logs: not started, waiting for the lock, leading, stopped
by an error it will not retry past on its own, or starting over after losing its footing."""


class OnStandby(Exception):
    """The database is a hot standby: no follower of the log may run there (the message says what to do)."""


@asynccontextmanager
async def leadership(url: str, lock: int, *, standby_seconds: float,
                     standing_by: Callable[[], None]) -> AsyncIterator[Connection]:
    """Connect to ``url``, wait as a hot standby until ``lock`` is free (calling ``standing_by`` each time
    round, every ``standby_seconds``), then yield the leader's connection; leaving the block closes it and
    so releases the lock. Raises OnStandby on a server in recovery; driver errors propagate."""
    leader = await asyncpg.connect(url)
    try:
        if await in_recovery(leader):
            raise OnStandby(ON_STANDBY)
        while not await try_lock_session(leader, lock):
            standing_by()
            await asyncio.sleep(standby_seconds)
        yield leader
    finally:
        if not leader.is_closed():
            leader.terminate()


@dataclass(frozen=True)
class Setback:
    """Errors a follower recovers from by giving up the lead, pausing and starting over.

    ``mode`` is what it reports meanwhile, ``event`` its log line (logged at ``level``), ``describe`` the
    error text it reports (from the exception)."""

    errors: tuple[type[BaseException], ...]
    mode: FollowerMode
    event: str
    describe: Callable[[BaseException], str]
    level: Literal["warning", "error"] = "warning"


async def follow_as_leader(url: str, lock: int, *, name: str, lead: Callable[[Connection], Awaitable[None]],
                           report: Callable[[FollowerMode, str | None], None], setbacks: Sequence[Setback],
                           standby_seconds: float, retry_seconds: float,
                           logger: structlog.typing.FilteringBoundLogger | None = None) -> None:
    """Until cancelled: take ``lock`` when possible (standing by meanwhile), then ``lead`` on the leader's
    connection; after a setback, release the lock (the connection closes), pause ``retry_seconds`` and start
    over. Returns, reporting "failed", on a hot standby (no follower may run there). Errors in no setback
    propagate. Every mode change goes to ``report``; the log says ``"<name> active"``, ``"<name> standing
    by: another process holds the lead"`` (once per wait) and ``"<name> refuses to run on a standby"``."""
    say = logger or structlog.get_logger(f"qmstats.{name}")
    mode: list[FollowerMode] = ["off"]

    def set_mode(new: FollowerMode, error: str | None) -> None:
        mode[0] = new
        report(new, error)

    def standing_by() -> None:
        if mode[0] != "standby":
            say.info(f"{name} standing by: another process holds the lead")
        set_mode("standby", None)

    while True:
        try:
            async with leadership(url, lock, standby_seconds=standby_seconds, standing_by=standing_by) as leader:
                say.info(f"{name} active")
                set_mode("active", None)
                await lead(leader)
        except OnStandby as exc:
            set_mode("failed", str(exc))
            say.error(f"{name} refuses to run on a standby", error=str(exc))
            return
        except Exception as exc:
            setback = next((s for s in setbacks if isinstance(exc, s.errors)), None)
            if setback is None:
                raise
            set_mode(setback.mode, setback.describe(exc))
            getattr(say, setback.level)(setback.event, error=str(exc))
            await asyncio.sleep(retry_seconds)
