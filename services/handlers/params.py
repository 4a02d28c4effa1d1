"""Reading query and path parameters with clear errors."""

from aiohttp import web

from events.errors import NotFound
from services.errors import InvalidParameter
from services.filter_checks import CAMPAIGN_ID, campaign_filter, event_type_filter, region_filter


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
    return region_filter(raw, name)


def campaign_path(request: web.Request) -> str:
    """The ``{campaign}`` path parameter; 404 when it cannot be a campaign id."""
    raw = request.match_info["campaign"]
    if not CAMPAIGN_ID.fullmatch(raw):
        raise NotFound(f"no campaign {raw[:40]!r}: campaign ids are 1–32 letters, digits, '-' or '_'")
    return raw


def campaign_param(request: web.Request) -> str | None:
    """An optional ``campaign`` query parameter (a campaign id), or None when absent."""
    raw = request.query.get("campaign")
    if raw is None or raw == "":
        return None
    return campaign_filter(raw)


def event_type_param(request: web.Request, name: str = "type") -> str | None:
    """An optional event type query parameter (one of the catalogue's), or None when absent."""
    raw = request.query.get(name)
    return event_type_filter(raw, name) if raw else None
