"""Audit: one event and its fate, chain verification, the head to pin, provenance of a figure."""

import uuid
from decimal import Decimal

from aiohttp import web

from events.catalogue import CATALOGUE, METRICS
from events.errors import NotFound
from events.regions import NATION
from events.store import head, read_campaigns, with_changes
from events.stored_chain import verify_campaign, verify_log
from projections.fold import effective_fact
from projections.history import BeyondLog, figures_at, region_view
from projections.number_format import display
from projections.provenance import contributions
from projections.tables import figure_now
from schemas.api import ChainCheck, ContributionItem, EventHistory, Head, Provenance, StoredEvent
from services.appkeys import DIRECTORY, READ_POSITION
from services.errors import InvalidParameter
from services.handlers.params import campaign_param, campaign_path, int_param, region_param
from services.middleware import allow
from services.reads import Basis, snapshot
from services.responses import json_response


@allow("auditor")
async def get_event(request: web.Request) -> web.Response:
    """One event, every correction or retraction that applies to it, and its effective payload."""
    try:
        event_id = str(uuid.UUID(request.match_info["event_id"]))
    except ValueError:
        raise NotFound(f"no event {request.match_info['event_id']!r}: event ids are UUIDs") from None
    async with snapshot(request, Basis.LOG) as snap:
        found = (await with_changes(snap.conn, [event_id])).get(event_id)
    if found is None:
        raise NotFound(f"no event {event_id}")
    original, later = found.original, found.changes
    fact = effective_fact(original, later) if CATALOGUE[original.type].kind == "fact" else None
    effective = ({"region": fact.region, "day": fact.day.isoformat(), "data": dict(fact.data),
                  "effective_since": fact.changed_at} if fact is not None else None)
    retraction = next((r for r in later if r.type == "event_retracted"), None)
    return json_response(EventHistory(
        event=StoredEvent.model_validate(original.exported()),
        corrections=[StoredEvent.model_validate(r.exported()) for r in later if r.type == "event_corrected"],
        retraction=StoredEvent.model_validate(retraction.exported()) if retraction else None,
        effective=effective))


@allow("auditor")
async def verify(request: web.Request) -> web.Response:
    """Recompute the hash chain (the whole log, or one campaign's events and their links)."""
    campaign = campaign_param(request)
    async with snapshot(request, Basis.LOG) as snap:
        conn = snap.conn
        if campaign and campaign not in await read_campaigns(conn, [campaign]):
            raise NotFound(f"no campaign {campaign}")  # a typo must not read as "verified, all fine"
        report = await (verify_campaign(conn, campaign) if campaign else verify_log(conn))
        position, digest = await head(conn)
    return json_response(ChainCheck(ok=report.ok, checked=report.checked, first_bad_position=report.first_bad_position,
                                    campaign=campaign, head=Head(position=position, hash=digest.hex())))


@allow("auditor")
async def audit_head(request: web.Request) -> web.Response:
    """The last position and its hash."""
    async with snapshot(request, Basis.LOG) as snap:
        position, digest = await head(snap.conn)
    return json_response(Head(position=position, hash=digest.hex()))


@allow("auditor")
async def provenance(request: web.Request) -> web.Response:
    """Every event contributing to a figure (paged by position), with its effective contribution."""
    campaign, metric = campaign_path(request), request.match_info["metric"]
    if metric not in METRICS:
        raise InvalidParameter(f"unknown metric {metric!r}")
    region = region_param(request) or NATION
    after = int_param(request, "after", 0, low=0, high=2**62)
    limit = int_param(request, "limit", 1000, low=1, high=10000)
    await request.app[DIRECTORY].check_region(campaign, region)  # 404: no such campaign, or region not in its list
    async with snapshot(request, Basis.PROJECTION) as snap:
        conn = snap.conn
        if campaign not in await read_campaigns(conn, [campaign]):
            raise NotFound(f"no campaign {campaign}")
        live = snap.position
        until = int_param(request, "at_position", live, low=0, high=2**62)
        if until == live:
            figure = await figure_now(conn, campaign, region, metric)
        else:
            try:
                totals, _ = region_view(await figures_at(conn, campaign, until), campaign, region)
            except BeyondLog as exc:
                raise InvalidParameter(str(exc)) from None
            figure = totals.get(metric, Decimal(0))
        if until != live:
            request[READ_POSITION] = until
        items, next_after, done = await contributions(conn, campaign, metric, region, after=after, until=until,
                                                limit=limit)
    return json_response(Provenance(
        campaign=campaign, metric=metric, region=region, position=until, figure=display(metric, figure),
        events=[ContributionItem(event_id=c.event_id, position=c.position, type=c.type, region=c.region, day=c.day,
                                 contribution=display(metric, c.value), corrected_by=c.corrected_by,
                                 effective_since=c.effective_since) for c in items],
        next_after=next_after, complete=done))
