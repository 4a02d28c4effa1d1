"""Official region code lists (MCA, 'code name' per line) imported per year."""


from events.regions import EXPECTED_PROVINCES, NATION, PROVINCES, is_structurally_valid, parent_of
from events.store import Connection

REGIONS_CHANNEL = "qmstats_regions"
"""NOTIFY channel: a region list was imported; the payload is the lists' new version."""
_VERSION_SQL = "SELECT coalesce((extract(epoch FROM max(imported_at)) * 1000000)::bigint, 0) FROM region_lists"


class RegionListError(ValueError):
    """The file is not a usable code list."""


def read_region_list(text: str) -> list[tuple[str, str]]:
    """Parse 'code name' lines; refuse malformed lines, unknown provinces and repeated codes."""
    codes: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        code, _, name = line.strip().partition(" ")
        if not is_structurally_valid(code) or not name.strip():
            raise RegionListError(f"line {number}: expected '<6-digit code> <name>', got {line.strip()!r}")
        if code in codes:
            raise RegionListError(f"line {number}: code {code} appears twice")
        codes[code] = name.strip()
    if not codes:
        raise RegionListError("the file holds no codes")
    return sorted(codes.items())


async def import_region_list(conn: Connection, year: int, codes: list[tuple[str, str]],
                             *, source: str) -> int:
    """Replace the list for ``year`` in one transaction; returns the number of codes."""
    async with conn.transaction():
        await conn.execute("DELETE FROM region_codes WHERE year = $1", year)
        await conn.execute(
            "INSERT INTO region_lists (year, codes, source) VALUES ($1, $2, $3) ON CONFLICT (year) "
            "DO UPDATE SET codes = excluded.codes, source = excluded.source, imported_at = now()",
            year, len(codes), source)
        await conn.copy_records_to_table("region_codes", records=[(year, c, n) for c, n in codes],
                                         columns=["year", "code", "name"])
        # Cached dashboards name and count regions from the lists: tell every service (at commit).
        await conn.execute(f"SELECT pg_notify($1, ({_VERSION_SQL})::text)", REGIONS_CHANNEL)
    return len(codes)


async def lists_version(conn: Connection) -> int:
    """The version of the imported lists: moves with every import (the services' cache keys carry it)."""
    return int(await conn.fetchval(_VERSION_SQL))


async def list_codes(conn: Connection, year: int) -> list[str]:
    """Every code of the list imported for ``year``."""
    return [r["code"] for r in await conn.fetch("SELECT code FROM region_codes WHERE year = $1", year)]


async def list_year(conn: Connection, year: int) -> int | None:
    """The imported list to use for a campaign year: that year's, else the latest before it, else None."""
    found = await conn.fetchval("SELECT max(year) FROM region_lists WHERE year <= $1", year)
    return int(found) if found is not None else None


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


async def expected_children(conn: Connection, year: int | None, parent: str) -> list[str] | None:
    """Children the registry expects to report under ``parent``; None when no list is loaded."""
    if parent == NATION:
        return sorted(EXPECTED_PROVINCES)
    if year is None:
        return None
    rows = await conn.fetch("SELECT code FROM region_codes WHERE year = $1 AND code LIKE $2", year, parent[:2] + "%")
    return sorted(r["code"] for r in rows if parent_of(r["code"]) == parent)
