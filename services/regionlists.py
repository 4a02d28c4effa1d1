"""Reading an official region code list file (MCA, 'code name' per line); events/region_store stores it."""


from events.regions import is_structurally_valid


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
