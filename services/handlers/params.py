"""Reading query parameters with clear errors."""

from aiohttp import web

from events.regions import is_structurally_valid
from services.errors import InvalidParameter


def int_param(request: web.Request, name: str, default: int, *, low: int, high: int) -> int:
    """An integer query parameter within [low, high]."""
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidParameter(f"{name} must be an integer") from None
    if not low <= value <= high:
        raise InvalidParameter(f"{name} must be between {low} and {high}")
    return value


def region_param(request: web.Request, name: str = "region") -> str | None:
    """A GB/T 2260 region code query parameter, or None when absent."""
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    if not is_structurally_valid(raw):
        raise InvalidParameter(f"{name} must be a 6-digit GB/T 2260 code under a known province")
    return raw
