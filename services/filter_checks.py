"""The filters a reader may give (campaign, event type, region), checked one way for HTTP and the CLI. Pure."""

import re
from typing import Final

from events.catalogue import CATALOGUE
from events.fields import CAMPAIGN_ID_PATTERN
from events.regions import is_structurally_valid
from services.errors import InvalidParameter

# The shape of a campaign id (events.fields.CampaignId). Anything else cannot name a campaign, and is
# refused here rather than sent to the database (a NUL byte, for one, is an error in a text parameter).
CAMPAIGN_ID: Final = re.compile(CAMPAIGN_ID_PATTERN)


def campaign_filter(raw: str, name: str = "campaign") -> str:
    """A campaign id, or InvalidParameter when it cannot be one."""
    if not CAMPAIGN_ID.fullmatch(raw):
        raise InvalidParameter(f"{name} must be a campaign id: 1–32 letters, digits, '-' or '_'")
    return raw


def event_type_filter(raw: str, name: str = "type") -> str:
    """An event type of the catalogue, or InvalidParameter naming the known ones."""
    if raw not in CATALOGUE:
        raise InvalidParameter(f"unknown event type {raw[:40]!r} for {name}: one of {', '.join(CATALOGUE)}")
    return raw


def region_filter(raw: str, name: str = "region") -> str:
    """A GB/T 2260 region code under a known province (000000 is the nation), or InvalidParameter."""
    if not is_structurally_valid(raw):
        raise InvalidParameter(f"{name} must be a 6-digit GB/T 2260 code under a known province")
    return raw
