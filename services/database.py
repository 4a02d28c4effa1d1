"""Finding the database (external URL or embedded server) and opening pools on it."""

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import asyncpg

from events.coordination import in_recovery
from events.errors import DomainError
from events.store import Connection
from services.embedded import start_embedded
from services.settings import Settings

if TYPE_CHECKING:
    _Pool = asyncpg.Pool[asyncpg.Record]
else:  # asyncpg's classes are not subscriptable at run time
    _Pool = asyncpg.Pool


ON_STANDBY = ("the database is a hot standby (in recovery): migrations, appends and the projector need the "
              "primary (a standby cannot write, hold the projector's leader lock for the primary, or LISTEN); point "
              "QMSTATS_DATABASE_URL at the primary and list replicas in QMSTATS_REPLICA_URLS")


class StandbyDatabase(DomainError):
    """The primary's URL leads to a hot standby."""


async def refuse_standby(conn: Connection) -> None:
    """StandbyDatabase when ``conn`` is to a standby."""
    if await in_recovery(conn):
        raise StandbyDatabase(ON_STANDBY)


@dataclass(frozen=True, slots=True)
class DatabaseUrls:
    """The service's URL and the schema owner's URL (the same when only one is configured)."""

    service: str
    admin: str
    embedded: bool


async def resolve_database(settings: Settings, *, stop_embedded_on_exit: bool = True,
                           create: bool = True) -> DatabaseUrls:
    """Use QMSTATS_DATABASE_URL when set, else start or join the embedded server in data_dir.

    ``create=False``: refuse a data directory that holds no cluster yet (every command but serve and migrate).
    """
    if settings.database_url:
        return DatabaseUrls(settings.database_url, settings.migration_database_url or settings.database_url, False)
    urls = await start_embedded(settings.data_dir, stop_on_exit=stop_embedded_on_exit, create=create)
    return DatabaseUrls(urls.service, urls.admin, True)


class BoundedPool(_Pool):
    """A pool whose ``acquire()`` gives up after a default timeout instead of waiting forever.

    While the database is down or hung, every request would otherwise queue for a connection
    (or for a connect attempt) without bound; with the timeout it fails with TimeoutError,
    which the stores translate into StoreUnavailable (503, Retry-After) within seconds.
    """

    __slots__ = ("_acquire_timeout",)

    def __init__(self, *args: Any, acquire_timeout: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._acquire_timeout = acquire_timeout

    def acquire(self, *, timeout: float | None = None) -> "asyncpg.pool.PoolAcquireContext[asyncpg.Record]":
        """A pooled connection, waiting at most ``timeout`` (default: the pool's acquire timeout)."""
        return super().acquire(timeout=self._acquire_timeout if timeout is None else timeout)


async def create_pool(url: str, *, min_size: int = 2, max_size: int = 10, connect_timeout: float = 5.0,
                      command_timeout: float = 30.0) -> asyncpg.Pool:
    """A connection pool; connections that fail are replaced by asyncpg on next acquire.

    Connecting and waiting for a connection are bounded by ``connect_timeout``, every statement
    by ``command_timeout``, so an unreachable or hung server surfaces as an error, never a hang.
    """
    pool = BoundedPool(url, min_size=min_size, max_size=max_size, max_queries=50000,
                       max_inactive_connection_lifetime=60.0, loop=None, connection_class=asyncpg.Connection,
                       record_class=asyncpg.Record, acquire_timeout=connect_timeout, timeout=connect_timeout,
                       command_timeout=command_timeout)
    return await pool
