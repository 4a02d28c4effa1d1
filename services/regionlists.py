"""Official region code lists (MCA, 'code name' per line) imported per year."""


from events.regions import is_structurally_valid
from events.store import Connection


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
    return len(codes)
