"""Dashboards, daily series and reporting completeness, cheap to poll; the SSE stream of advances."""

import asyncio
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson
from aiohttp import ETag, web
from aiohttp_sse import sse_response

from events.campaigns import CampaignHistory
from events.catalogue import METRICS
from events.decide import CHINA_STANDARD_TIME
from events.errors import NotFound, OutOfScope
from events.region_store import expected_children, list_year, region_names
from events.regions import NATION, is_within, level_of
from events.store import Connection, read_campaigns, recorded_at
from projections import tables
from projections.at_position import BeyondLog, figures_at, scope_of
from projections.fold import children_view, region_view
from projections.number_format import display, ratio
from schemas.api import (
    Completeness,
    ReportingSet,
    Series,
    SeriesPoint,
)
from services.appkeys import (
    DASHBOARD_CACHE,
    DIRECTORY,
    KEYRING,
    POLL_ANSWERS,
    PROJECTION,
    READ_POSITION,
    REPLICAS,
    REQUEST_KEY,
    STREAMS,
    api_key,
)
from services.dashboard_render import region_ref, render_dashboard
from services.errors import InvalidParameter
from services.handlers.params import campaign_path, int_param, region_param
from services.logbinding import covering, with_checkpoint
from services.middleware import allow
from services.projection_state import ProjectionState
from services.reads import Basis, Snapshot, min_position, position_headers, refuse_beyond_head, snapshot

ORDER = ("nation", "province", "prefecture", "county")
LEVELS = ORDER[1:]


def _etag(kind: str, position: int, *parts: str) -> str:
    return f"{kind}-{position}-" + "-".join(parts)


def _not_modified(request: web.Request, etag: str) -> bool:
    tags = request.if_none_match
    return bool(tags) and any(t.value in (etag, "*") for t in tags or ())


def _cached_response(body: bytes, etag: str) -> web.Response:
    response = web.Response(body=body, content_type="application/json")
    response.etag = ETag(value=etag, is_weak=True)
    response.headers["Cache-Control"] = "no-cache"
    return response


async def _known(request: web.Request, campaign: str, region: str) -> str:
    """404 before any precondition or cache: the campaign must exist and the region be in its year's list.

    Returns the region lists' version, which every cached body and ETag of these routes depends on.
    """
    directory = request.app[DIRECTORY]
    await directory.check_region(campaign, region)
    return str(directory.version)


async def _cheap_poll(request: web.Request, kind: str, *parts: str) -> tuple[str, web.Response | None]:
    """Answer 304 or a cached 200 from memory when the projection has not moved; else say which etag to build.

    Call only after ``_known``: a precondition applies to a resource that exists (RFC 9110 §13.2.1). Only when
    the position known here is at least the request's ``min_position``: else a snapshot must wait for it.
    """
    position = request.app[PROJECTION].position
    etag = _etag(kind, position, *parts)
    if position < min_position(request):
        return etag, None
    request[READ_POSITION] = position
    if _not_modified(request, etag):
        response = web.Response(status=304)
        response.etag = ETag(value=etag, is_weak=True)
        response.headers["Cache-Control"] = "no-cache"
        return etag, response
    cached = request.app[DASHBOARD_CACHE].get((kind, position, *parts))
    return etag, (_cached_response(cached, etag) if cached is not None else None)


async def _campaign(conn: Connection, campaign: str) -> CampaignHistory:
    history = (await read_campaigns(conn, [campaign])).get(campaign)
    if history is None:
        raise NotFound(f"no campaign {campaign}")
    return history


async def _snapshot_header(snap: Snapshot, campaign: str) -> tuple[int, datetime | None, CampaignHistory]:
    return snap.position, snap.updated_at, await _campaign(snap.conn, campaign)


def _store(request: web.Request, key: tuple[Any, ...], body: bytes, etag: str, head: int,
           tables_oid: int, lists: int) -> web.Response:
    """Remember a rendered answer: by its key for the handler, by its URL for polls answered before the middleware."""
    request.app[DASHBOARD_CACHE].put(key, body)
    request.app[POLL_ANSWERS].put(request.path_qs, (key[1], head, tables_oid, lists), body, etag)
    return _cached_response(body, etag)


@allow("viewer", "auditor")
async def dashboard(request: web.Request) -> web.Response:
    """Totals of a region (default the nation) and of each child; pass rates; the projection's position."""
    campaign = campaign_path(request)
    region = region_param(request) or NATION
    level = request.query.get("level") or ""
    if level and (level not in ORDER or ORDER.index(level) <= ORDER.index(level_of(region))):
        raise InvalidParameter(f"level must be one of {', '.join(LEVELS)} and below the region's own level")
    lists = await _known(request, campaign, region)
    if request.query.get("at_position"):  # empty, like absent, means the live figures
        return await _dashboard_at(request, campaign, region, level, lists)
    state = request.app[PROJECTION]
    # The body shows the lag, so a cached body is only good while the log head is where it was too.
    head, tables_oid = state.head, state.tables
    tables_id = str(tables_oid) + "." + lists
    _, ready = await _cheap_poll(request, "dashboard", campaign, region, level, str(head), tables_id)
    if ready is not None:
        return ready
    async with snapshot(request, Basis.PROJECTION) as snap:
        conn = snap.conn
        position, updated_at, history = await _snapshot_header(snap, campaign)
        year = await list_year(conn, history.starts_on.year)
        figures = await tables.region_totals(conn, campaign, region)
        if level:
            prefix = {"nation": "", "province": region[:2], "prefecture": region[:4]}[level_of(region)]
            children = {c: v for c, v in (await tables.level_totals(conn, campaign, level, prefix)).items()
                        if is_within(c, region)}
            expected: list[str] = []
        else:
            children = await tables.children_totals(conn, campaign, region)
            expected = await expected_children(conn, year, region) or []
        names = await region_names(conn, year, sorted({region, *children, *expected}))
    body = render_dashboard(
        campaign=campaign, region=region, position=position, updated_at=updated_at,
        lag_events=max(0, head - position), lag_seconds=state.lag_seconds, totals=figures.totals,
        categories=figures.categories, children=children, expected=expected, names=names,
    ).model_dump_json().encode()
    return _store(request, ("dashboard", position, campaign, region, level, str(head), tables_id), body,
                  _etag("dashboard", position, campaign, region, level, str(head), tables_id),
                  head, tables_oid, int(lists))


async def _dashboard_at(request: web.Request, campaign: str, region: str, level: str, lists: str) -> web.Response:
    """The dashboard as it stood when the projection was at ``at_position`` (auditors). Cached per region lists."""
    if api_key(request).role not in ("auditor", "admin"):
        raise OutOfScope("only auditor and admin keys may ask for figures at a past position")
    position = int_param(request, "at_position", 0, low=0, high=2**62)
    # Computed partly from the live tables (backward from them when that is shorter): their identity is in the key.
    tables_id = f"{request.app[PROJECTION].tables}.{lists}"
    key = ("at", position, campaign, region, level, tables_id)
    etag = _etag("at", position, campaign, region, level, tables_id)
    # Beyond the log head this process has seen, the answer may be 422: no precondition before finding out.
    if position <= request.app[PROJECTION].head and _not_modified(request, etag):
        request[READ_POSITION] = position
        return web.Response(status=304, headers={"ETag": f'"{etag}"'})
    cached = request.app[DASHBOARD_CACHE].get(key)
    if cached is None:
        async with snapshot(request, Basis.LOG) as snap:
            conn = snap.conn
            history = await _campaign(conn, campaign)
            try:
                deltas = await figures_at(conn, campaign, position, scope_of(region, level or None))
            except BeyondLog as exc:
                raise InvalidParameter(str(exc)) from None
            updated_at = await recorded_at(conn, position)
            year = await list_year(conn, history.starts_on.year)
            expected = [] if level else (await expected_children(conn, year, region) or [])
            children = children_view(deltas, campaign, region, level or None)
            names = await region_names(conn, year, sorted({region, *children, *expected}))
        totals, categories = region_view(deltas, campaign, region)
        cached = render_dashboard(
            campaign=campaign, region=region, position=position, updated_at=updated_at, lag_events=0,
            lag_seconds=0.0, totals=totals, categories=categories, children=children, expected=expected,
            names=names).model_dump_json().encode()
        request.app[DASHBOARD_CACHE].put(key, cached)
    async with snapshot(request, Basis.LOG) as snap:
        signed = await covering(snap.conn, position)
    request[READ_POSITION] = position  # the figures are those at N, whichever snapshot computed them
    response = web.Response(body=with_checkpoint(cached, signed), content_type="application/json")
    if signed is not None:  # immutable from then on; before, the checkpoint is still to come
        response.headers["ETag"] = f'"{etag}"'
    return response


def _days(history: CampaignHistory) -> list[date]:
    count = (history.ends_on - history.starts_on).days + 1
    return [history.starts_on + timedelta(days=i) for i in range(count)]


@allow("viewer", "auditor")
async def series(request: web.Request) -> web.Response:
    """Daily values of one metric for a region across the campaign window (zeros on quiet days)."""
    campaign = campaign_path(request)
    metric = request.query.get("metric", "")
    if metric not in METRICS:
        raise InvalidParameter(f"metric must be one of the catalogue's metrics (GET /v1/catalogue), not {metric!r}")
    region = region_param(request) or NATION
    lists = await _known(request, campaign, region)
    head, tables_oid = request.app[PROJECTION].head, request.app[PROJECTION].tables
    tables_id = str(tables_oid) + "." + lists
    _, ready = await _cheap_poll(request, "series", campaign, region, metric, tables_id)
    if ready is not None:
        return ready
    async with snapshot(request, Basis.PROJECTION) as snap:
        conn = snap.conn
        position, _, history = await _snapshot_header(snap, campaign)
        values = await tables.daily_series(conn, campaign, region, metric)
        names = await region_names(conn, await list_year(conn, history.starts_on.year), [region])
    spec = METRICS[metric]
    body = Series(campaign=campaign, region=region_ref(region, names), metric=metric, unit=spec.unit,
                  label_zh=spec.label_zh, label_en=spec.label_en, position=position,
                  days=[SeriesPoint(date=d, value=display(metric, values.get(d, Decimal(0))))
                        for d in _days(history)]).model_dump_json().encode()
    return _store(request, ("series", position, campaign, region, metric, tables_id), body,
                  _etag("series", position, campaign, region, metric, tables_id),
                  head, tables_oid, int(lists))


def _reporting(expected: list[str] | None, reported: set[str], names: dict[str, str]) -> ReportingSet:
    pool = expected if expected is not None else sorted(reported)
    did = [c for c in pool if c in reported]
    return ReportingSet(reported=[region_ref(c, names) for c in did],
                        not_reported=[region_ref(c, names) for c in pool if c not in reported],
                        rate=ratio(Decimal(len(did)), Decimal(len(expected))) if expected is not None else None)


@allow("viewer", "auditor")
async def completeness(request: web.Request) -> web.Response:
    """Which child regions reported on a day and over the campaign so far, against those expected."""
    campaign = campaign_path(request)
    region = region_param(request) or NATION
    raw_date = request.query.get("date")
    try:
        day = date.fromisoformat(raw_date) if raw_date else None
    except ValueError:
        raise InvalidParameter("date must be YYYY-MM-DD") from None
    lists = await _known(request, campaign, region)
    head, tables_oid = request.app[PROJECTION].head, request.app[PROJECTION].tables
    tables_id = str(tables_oid) + "." + lists
    _, ready = await _cheap_poll(request, "completeness", campaign, region, str(day), tables_id)
    if ready is not None:
        return ready
    async with snapshot(request, Basis.PROJECTION) as snap:
        conn = snap.conn
        position, _, history = await _snapshot_header(snap, campaign)
        year = await list_year(conn, history.starts_on.year)
        expected = await expected_children(conn, year, region)
        overall = await tables.reporting_children(conn, campaign, region, None)
        on_day = await tables.reporting_children(conn, campaign, region, day) if day else set()
        latest = await tables.latest_report_day(conn, campaign, region)
        names = await region_names(conn, year, sorted({region, *(expected or []), *overall}))
    body = Completeness(
        campaign=campaign, region=region_ref(region, names), date=day,
        expected=len(expected) if expected is not None else None, registry_year=year,
        on_date=_reporting(expected, on_day, names) if day else None, to_date=_reporting(expected, overall, names),
        latest_day=latest, position=position).model_dump_json().encode()
    return _store(request, ("completeness", position, campaign, region, str(day), tables_id), body,
                  _etag("completeness", position, campaign, region, str(day), tables_id),
                  head, tables_oid, int(lists))


@allow("viewer", "auditor")
async def stream(request: web.Request) -> web.StreamResponse:
    """Server-Sent Events: one message each time the projection advances, ``id`` = its position.

    The stream ends when the service shuts down and when its key is revoked (the page then reconnects,
    to another instance or to a 401 that asks for a new key). While replicas serve reads, it follows the
    checkpoint replicated to them (polled, since a standby cannot LISTEN), so a client that reads after a
    message finds that position wherever its read lands.
    """
    replicas, ring = request.app[REPLICAS], request.app[KEYRING]
    state = replicas.followed if replicas else request.app[PROJECTION]
    wanted = min_position(request)
    if wanted > request.app[PROJECTION].head:  # the primary decides (this process may not have heard of N yet)
        await refuse_beyond_head(request, wanted)
    floor = wanted - 1
    request[READ_POSITION] = state.position
    key = request.get(REQUEST_KEY)
    key_id = key.id if key is not None else None
    with request.app[STREAMS].opened(key_id) as closing:
        async with sse_response(request, headers={"Cache-Control": "no-cache", **position_headers(request)}) as sse:
            last = sse.last_event_id
            seen = int(last) if last and last.isascii() and last.isdigit() else -1  # "²" is a digit to isdigit()
            seen = max(seen, floor)
            while sse.is_connected() and not closing.is_set():
                if state.position > seen:
                    seen = state.position
                    payload = {"position": seen, "head": state.head, "lag_events": state.lag_events,
                               "at": datetime.now(CHINA_STANDARD_TIME).isoformat()}
                    await sse.send(json_dumps(payload), id=str(seen), event="projection")
                quiet = not await _advanced_or_closed(state, seen, closing, seconds=15)
                # Quiet for a while: a revocation whose NOTIFY was lost still ends the stream here.
                if quiet and key_id is not None and not await ring.is_active(key_id):
                    break
    return sse


async def _advanced_or_closed(state: ProjectionState, seen: int, closing: asyncio.Event, *, seconds: float) -> bool:
    """Wait until the projection moves past ``seen`` or the stream must close; False after ``seconds`` of neither."""
    waits = [asyncio.ensure_future(state.wait_beyond(seen)), asyncio.ensure_future(closing.wait())]
    try:
        done, _ = await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiting in waits:
            waiting.cancel()
    return bool(done)


def json_dumps(value: dict[str, Any]) -> str:
    """Compact JSON text for an SSE data line."""
    return orjson.dumps(value).decode()
