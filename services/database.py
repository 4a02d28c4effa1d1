"""Finding the database (external URL or embedded server) and opening pools on it."""

from dataclasses import dataclass

import asyncpg

from services.embedded import start_embedded
from services.settings import Settings


@dataclass(frozen=True, slots=True)
class DatabaseUrls:
    """The service's URL and the schema owner's URL (the same when only one is configured)."""

    service: str
    admin: str
    embedded: bool


async def resolve_database(settings: Settings, *, stop_embedded_on_exit: bool = True) -> DatabaseUrls:
    """Use QMSTATS_DATABASE_URL when set, else start or join the embedded server in data_dir."""
    if settings.database_url:
        return DatabaseUrls(settings.database_url, settings.migration_database_url or settings.database_url, False)
    urls = await start_embedded(settings.data_dir, stop_on_exit=stop_embedded_on_exit)
    return DatabaseUrls(urls.service, urls.admin, True)


async def create_pool(url: str, *, min_size: int = 2, max_size: int = 10) -> asyncpg.Pool:
    """A connection pool; connections that fail are replaced by asyncpg on next acquire."""
    pool = await asyncpg.create_pool(url, min_size=min_size, max_size=max_size,
                                     max_inactive_connection_lifetime=60.0, command_timeout=60)
    assert pool is not None
    return pool
