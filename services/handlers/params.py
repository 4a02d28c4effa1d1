"""Reading query and path parameters with clear errors."""

import re

from aiohttp import web

from events.errors import NotFound
from events.fields import CAMPAIGN_ID_PATTERN
from events.regions import is_structurally_valid
from services.errors import InvalidParameter

# The shape of a campaign id (events.fields.CampaignId). Anything else cannot name a campaign, and is
# refused here rather than sent to the database (a NUL byte, for one, is an error in a text parameter).
_CAMPAIGN_ID = re.compile(CAMPAIGN_ID_PATTERN)


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


def campaign_path(request: web.Request) -> str:
    """The ``{campaign}`` path parameter; 404 when it cannot be a campaign id."""
    raw = request.match_info["campaign"]
    if not _CAMPAIGN_ID.fullmatch(raw):
        raise NotFound(f"no campaign {raw[:40]!r}: campaign ids are 1–32 letters, digits, '-' or '_'")
    return raw


def campaign_param(request: web.Request) -> str | None:
    """An optional ``campaign`` query parameter (a campaign id), or None when absent."""
    raw = request.query.get("campaign")
    if raw is None or raw == "":
        return None
    if not _CAMPAIGN_ID.fullmatch(raw):
        raise InvalidParameter("campaign must be a campaign id: 1–32 letters, digits, '-' or '_'")
    return raw
