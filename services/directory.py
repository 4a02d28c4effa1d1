"""What a read must know before it may answer from memory: does the campaign exist, is the region in
its year's list, and which version of the region lists a cached body was built with.

A 304 or a cached 200 is only right for a resource that exists (RFC 9110 §13.2.1: a precondition
is not evaluated when the answer would not be 2xx), and only while everything the body depends on
is unchanged. Campaigns never disappear, so a campaign seen once is known for good; region lists
change only by `qmstats regions import`, which sends NOTIFY qmstats_regions with the new version
(the projection poll reads it too, in case a notification is lost).
"""

import asyncio

import asyncpg

from events.errors import NotFound
from events.region_store import list_codes, list_year
from events.regions import NATION, PROVINCES, level_of
from events.store import read_campaigns, translated_errors


class Directory:
    """Campaign years and region lists, in memory, checked before any cached answer."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._years: dict[str, int] = {}
        self._lists: dict[int, frozenset[str] | None] = {}
        self.version = 0
        """The region lists' version (microseconds of the last import): part of every cached key and ETag."""
        self._lock = asyncio.Lock()

    def lists_changed(self, version: int) -> None:
        """A region list was imported (NOTIFY or poll): forget what was loaded if the version moved."""
        if version != self.version:
            self.version = version
            self._lists.clear()

    async def campaign_year(self, campaign: str) -> int:
        """The campaign's year (that of its first day); NotFound when no such campaign was opened."""
        year = self._years.get(campaign)
        if year is None:
            async with translated_errors(), self._pool.acquire() as conn:
                history = (await read_campaigns(conn, [campaign])).get(campaign)
            if history is None:
                raise NotFound(f"no campaign {campaign}")
            year = self._years[campaign] = history.starts_on.year
        return year

    async def _codes(self, year: int) -> frozenset[str] | None:
        if year not in self._lists:
            async with self._lock:
                if year not in self._lists:
                    version = self.version
                    async with translated_errors(), self._pool.acquire() as conn:
                        listed = await list_year(conn, year)
                        codes = frozenset(await list_codes(conn, listed)) if listed is not None else None
                    if version == self.version:  # an import raced this load: load again next time
                        self._lists[year] = codes
                    return codes
        return self._lists[year]

    async def check_region(self, campaign: str, region: str) -> None:
        """NotFound unless ``region`` can be asked about in this campaign (in its year's list, when one is loaded)."""
        year = await self.campaign_year(campaign)
        if region == NATION or region in PROVINCES or level_of(region) == "province":
            return
        codes = await self._codes(year)
        if codes is not None and region not in codes:
            raise NotFound(f"region {region} is not in the region list for {year} (campaign {campaign}); "
                           "GET /v1/regions lists the codes")
