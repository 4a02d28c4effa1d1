"""The imported official region code lists (one per year) in PostgreSQL: replace, choose, name, enumerate."""

from events.coordination import REGIONS_CHANNEL, notify
from events.regions import EXPECTED_PROVINCES, NATION, PROVINCES, parent_of
from events.store import Connection, translating

_VERSION_SQL = "SELECT coalesce((extract(epoch FROM max(imported_at)) * 1000000)::bigint, 0) FROM region_lists"


@translating
async def import_region_list(conn: Connection, year: int, codes: list[tuple[str, str]],
                             *, source: str) -> int:
    """Replace the list for ``year`` (code, name pairs) in one transaction; returns the number of codes."""
    async with conn.transaction():
        await conn.execute("DELETE FROM region_codes WHERE year = $1", year)
        await conn.execute(
            "INSERT INTO region_lists (year, codes, source) VALUES ($1, $2, $3) ON CONFLICT (year) "
            "DO UPDATE SET codes = excluded.codes, source = excluded.source, imported_at = now()",
            year, len(codes), source)
        await conn.copy_records_to_table("region_codes", records=[(year, c, n) for c, n in codes],
                                         columns=["year", "code", "name"])
        # Cached dashboards name and count regions from the lists: tell every service (at commit).
        await notify(conn, REGIONS_CHANNEL, str(await conn.fetchval(_VERSION_SQL)))
    return len(codes)


@translating
async def lists_version(conn: Connection) -> int:
    """The version of the imported lists: moves with every import (the services' cache keys carry it)."""
    return int(await conn.fetchval(_VERSION_SQL))


@translating
async def list_codes(conn: Connection, year: int) -> list[str]:
    """Every code of the list imported for ``year``."""
    return [r["code"] for r in await conn.fetch("SELECT code FROM region_codes WHERE year = $1", year)]


@translating
async def listed_anywhere(conn: Connection, code: str) -> tuple[list[int], bool]:
    """The years of every imported list, and whether any of them holds ``code``."""
    row = await conn.fetchrow(
        "SELECT coalesce((SELECT array_agg(year ORDER BY year) FROM region_lists), '{}') AS years, "
        "EXISTS (SELECT FROM region_codes WHERE code = $1) AS known", code)
    assert row is not None
    return list(row["years"]), bool(row["known"])


@translating
async def latest_list_year(conn: Connection) -> int | None:
    """The year of the newest imported list, or None when none was imported."""
    found = await conn.fetchval("SELECT max(year) FROM region_lists")
    return int(found) if found is not None else None


@translating
async def list_year(conn: Connection, year: int) -> int | None:
    """The imported list to use for a campaign year: that year's, else the latest before it, else None."""
    found = await conn.fetchval("SELECT max(year) FROM region_lists WHERE year <= $1", year)
    return int(found) if found is not None else None


@translating
async def region_names(conn: Connection, year: int | None, codes: list[str]) -> dict[str, str]:
    """Names of codes: provinces from the built-in list, others from the imported list of ``year``."""
    names = {code: PROVINCES[code] for code in codes if code in PROVINCES}
    if NATION in codes:
        names[NATION] = "全国"
    others = [c for c in codes if c not in names]
    if year is not None and others:
        rows = await conn.fetch("SELECT code, name FROM region_codes WHERE year = $1 AND code = ANY($2::text[])",
                                year, others)
        names.update({r["code"]: r["name"] for r in rows})
    return names


@translating
async def province_codes(conn: Connection, year: int, code: str) -> dict[str, str]:
    """code → name of every code in the list of ``year`` within the province of ``code``."""
    rows = await conn.fetch("SELECT code, name FROM region_codes WHERE year = $1 AND code LIKE $2",
                            year, code[:2] + "%")
    return {r["code"]: r["name"] for r in rows}


@translating
async def expected_children(conn: Connection, year: int | None, parent: str) -> list[str] | None:
    """Children the registry expects to report under ``parent``; None when no list is loaded."""
    if parent == NATION:
        return sorted(EXPECTED_PROVINCES)
    if year is None:
        return None
    return sorted(c for c in await province_codes(conn, year, parent) if parent_of(c) == parent)
