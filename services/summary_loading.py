"""Loading a campaign's summary at its frozen (or current) position."""

import asyncio
import time
from dataclasses import replace
from decimal import Decimal

from events.errors import NotFound
from events.regions import EXPECTED_PROVINCES, NATION, parent_of
from events.store import Connection, read_campaigns
from projections.at_position import figures_at, scope_of
from projections.flag_tables import flags_checkpoint, open_flag_counts
from projections.fold import children_view, region_view
from projections.summary import CampaignSummary, QualityNote, summarise
from projections.tables import checkpoint


async def quality_at(conn: Connection, campaign: str, position: int, *, wait_seconds: float = 2.0) -> QualityNote:
    """Flags open at ``position``; waits (bounded) for the flags projection to score up to it first.

    The flags projector runs beside the dashboard's and may be a moment behind: waiting keeps a final summary
    the same byte for byte whenever it is asked (``scored_to`` < position says when it could not).
    """
    deadline = time.monotonic() + wait_seconds
    # Polling a row another process writes (no event to wait on across processes).
    while (scored := await flags_checkpoint(conn)) < position and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.02)
    return QualityNote(await open_flag_counts(conn, campaign, at_position=position), min(position, scored))


async def load_summary(conn: Connection, campaign: str, *, flags_wait_seconds: float = 2.0) -> CampaignSummary:
    """The summary: final at the last close while closed, provisional at the projection's position otherwise.

    ``flags_wait_seconds``: how long to wait for the flags projection to reach the position; 0 on a connection
    inside a snapshot, which would never see it move (the caller takes a new snapshot instead).
    """
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        history = (await read_campaigns(conn, [campaign])).get(campaign)
        if history is None:
            raise NotFound(f"no campaign {campaign}")
        final = history.status == "closed"
        position = history.closed_at[-1] if final else await checkpoint(conn)
        deltas = await figures_at(conn, campaign, position, scope_of(NATION))
    quality = await quality_at(conn, campaign, position, wait_seconds=flags_wait_seconds)
    national, categories = region_view(deltas, campaign, NATION)
    provinces = children_view(deltas, campaign, NATION, None)
    reporting: dict[str, int] = {}
    for (c, region, _day), count in deltas.reports.items():
        if c == campaign and parent_of(region) == NATION:
            reporting[region] = reporting.get(region, 0) + count
    reported = sorted(r for r, n in reporting.items() if n > 0)
    summary = summarise(campaign=campaign, theme=history.theme, starts_on=history.starts_on, ends_on=history.ends_on,
                     final=final, position=position, close_number=len(history.closed_at) if final else None,
                     national={m: Decimal(v) for m, v in national.items()}, provinces=provinces, reported=reported,
                     expected=sorted(EXPECTED_PROVINCES), closes=len(history.closed_at), categories=categories)
    return replace(summary, quality=quality)
