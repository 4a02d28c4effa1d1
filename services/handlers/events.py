"""POST /v1/events (append) and GET /v1/events (read the log)."""

import asyncio

from aiohttp import hdrs, web

from events.catalogue import CATALOGUE
from events.decide import AppendRequest, check_scope
from events.exchange import export_lines
from events.intake import parse_json, read_events
from events.regions import code_prefix, is_within
from events.store import LogFilter, read_page
from schemas.api import AppendResponse, EventResult, EventsPage, StoredEvent
from services.appkeys import SETTINGS, WRITER, api_key, request_id
from services.errors import BodyTimeout, InvalidParameter, UnsupportedMediaType
from services.handlers.params import campaign_param, int_param, region_param
from services.middleware import allow
from services.negotiation import negotiate
from services.reads import Basis, position_headers, snapshot
from services.responses import json_response

NDJSON = "application/x-ndjson"


def require_json(request: web.Request) -> None:
    """415 unless the body is declared as JSON (UTF-8)."""
    # aiohttp reports a missing Content-Type as application/octet-stream; say that it is missing.
    ctype = request.content_type if hdrs.CONTENT_TYPE in request.headers else ""
    if ctype != "application/json" and not (ctype.startswith("application/") and ctype.endswith("+json")):
        raise UnsupportedMediaType(f"Content-Type must be application/json, not {ctype or 'missing'}")
    charset = request.charset
    if charset is not None and charset.lower() not in ("utf-8", "utf8"):
        raise UnsupportedMediaType("JSON bodies must be UTF-8")


async def read_body(request: web.Request) -> bytes:
    """The whole request body, or 408 when it has not arrived within the body-read timeout."""
    # A client trickling its body must not hold a handler (and its memory) for ever.
    try:
        async with asyncio.timeout(request.app[SETTINGS].body_timeout_seconds):
            return await request.read()
    except TimeoutError:
        raise BodyTimeout(f"the body did not arrive within {request.app[SETTINGS].body_timeout_seconds:g} s") from None


@allow("reporter")
async def post_events(request: web.Request) -> web.Response:
    """Append one event or a batch, atomically; duplicates of earlier sends are answered, not stored."""
    require_json(request)
    body = await read_body(request)
    drafts = read_events(parse_json(body), request.app[SETTINGS].max_batch_events)
    actor = api_key(request).actor
    check_scope(drafts, actor)
    accepted = await request.app[WRITER].append(AppendRequest(drafts, actor, request_id(request)))
    results = [EventResult(event_id=r.event_id, status=r.status, position=r.position) for r in accepted.results]
    status = 201 if any(r.status == "created" for r in results) else 200
    return json_response(AppendResponse(results=results, last_position=max(r.position for r in results)),
                         status=status)


def log_filter(request: web.Request) -> tuple[LogFilter, str | None]:
    """The log filter a GET /v1/events query asks for, and the exact region subtree to keep."""
    after = int_param(request, "after", 0, low=0, high=2**62)
    type_ = request.query.get("type") or None
    if type_ is not None and type_ not in CATALOGUE:
        raise InvalidParameter(f"unknown event type {type_!r}")
    region = region_param(request)
    prefix = code_prefix(region) if region is not None else None
    return LogFilter(after, campaign_param(request), type_, prefix), region


@allow("auditor")
async def get_events(request: web.Request) -> web.StreamResponse:
    """A page of the log in position order, or (Accept: application/x-ndjson) everything after ``after``."""
    flt, region = log_filter(request)
    limit = int_param(request, "limit", 1000, low=1, high=10000)
    if negotiate(request, ("application/json", NDJSON)) == NDJSON:
        return await _stream_ndjson(request, flt, region)
    async with snapshot(request, Basis.LOG) as snap:
        records = await read_page(snap.conn, flt, limit)
    next_after = records[-1].position if records else flt.after
    page = EventsPage(events=[StoredEvent.model_validate(r.exported()) for r in records
                              if region is None or is_within(r.region, region)], next_after=next_after)
    return json_response(page)


async def _stream_ndjson(request: web.Request, flt: LogFilter, region: str | None) -> web.StreamResponse:
    async with snapshot(request, Basis.LOG) as snap:
        response = web.StreamResponse(headers={"Content-Type": NDJSON, **position_headers(request)})
        await response.prepare(request)
        async for chunk in export_lines(snap.conn, flt, region=region):
            await response.write(chunk)
    await response.write_eof()
    return response
