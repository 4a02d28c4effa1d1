"""Loading a campaign's summary at its frozen (or current) position."""

from decimal import Decimal

from events.errors import NotFound
from events.regions import EXPECTED_PROVINCES, NATION, parent_of
from events.store import Connection, read_campaigns
from projections.history import children_view, figures_at, region_view
from projections.summary import CampaignSummary, summarise
from projections.tables import checkpoint


async def load_summary(conn: Connection, campaign: str) -> CampaignSummary:
    """The summary: final at the last close while closed, provisional at the projection's position otherwise."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        history = (await read_campaigns(conn, [campaign])).get(campaign)
        if history is None:
            raise NotFound(f"no campaign {campaign}")
        final = history.status == "closed"
        position = history.closed_at[-1] if final else await checkpoint(conn)
        deltas = await figures_at(conn, campaign, position)
    national, categories = region_view(deltas, campaign, NATION)
    provinces = children_view(deltas, campaign, NATION, None)
    reporting: dict[str, int] = {}
    for (c, region, _day), count in deltas.reports.items():
        if c == campaign and parent_of(region) == NATION:
            reporting[region] = reporting.get(region, 0) + count
    reported = sorted(r for r, n in reporting.items() if n > 0)
    return summarise(campaign=campaign, theme=history.theme, starts_on=history.starts_on, ends_on=history.ends_on,
                     final=final, position=position, close_number=len(history.closed_at) if final else None,
                     national={m: Decimal(v) for m, v in national.items()}, provinces=provinces, reported=reported,
                     expected=sorted(EXPECTED_PROVINCES), closes=len(history.closed_at), categories=categories)
