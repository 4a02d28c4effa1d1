"""Leader election for the log's followers (the projectors and the integrator): one session-level
advisory lock each, held for as long as the leader's connection lives.

The lock is taken on a connection of its own, not a pooled one: the connection dying (process killed,
network gone) releases it, and a hot standby polling for it takes over. A standby server grants advisory
locks of its own, so a follower on a hot standby would "lead" nothing; it is refused (``OnStandby``).
"""

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import asyncpg

from events.coordination import in_recovery, try_lock_session
from events.store import Connection
from services.database import ON_STANDBY


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
