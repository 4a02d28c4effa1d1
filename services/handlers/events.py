"""POST /v1/events (append) and GET /v1/events (read the log)."""

import orjson
from aiohttp import web

from events.catalogue import CATALOGUE
from events.decide import AppendRequest, check_scope
from events.intake import parse_json, read_events
from events.records import RecordedEvent
from events.regions import NATION, is_within, level_of
from events.store import LogFilter, read_page, translated_errors
from schemas.api import AppendResponse, EventResult, EventsPage, StoredEvent
from services.appkeys import POOL, SETTINGS, WRITER, api_key, request_id
from services.errors import InvalidParameter, UnsupportedMediaType
from services.handlers.params import int_param, region_param
from services.middleware import allow
from services.responses import json_response

NDJSON = "application/x-ndjson"


def require_json(request: web.Request) -> None:
    """415 unless the body is declared as JSON (UTF-8)."""
    ctype = request.content_type
    if ctype != "application/json" and not (ctype.startswith("application/") and ctype.endswith("+json")):
        raise UnsupportedMediaType(f"Content-Type must be application/json, not {ctype or 'missing'}")
    charset = request.charset
    if charset is not None and charset.lower() not in ("utf-8", "utf8"):
        raise UnsupportedMediaType("JSON bodies must be UTF-8")


@allow("reporter")
async def post_events(request: web.Request) -> web.Response:
    """Append one event or a batch, atomically; duplicates of earlier sends are answered, not stored."""
    require_json(request)
    body = await request.read()
    drafts = read_events(parse_json(body), request.app[SETTINGS].max_batch_events)
    actor = api_key(request).actor
    check_scope(drafts, actor)
    accepted = await request.app[WRITER].append(AppendRequest(drafts, actor, request_id(request)))
    results = [EventResult(event_id=r.event_id, status=r.status, position=r.position) for r in accepted.results]
    status = 201 if any(r.status == "created" for r in results) else 200
    return json_response(AppendResponse(results=results, last_position=max(r.position for r in results)),
                         status=status)


def stored_event(record: RecordedEvent) -> dict[str, object]:
    """The API form of a recorded event."""
    return record.exported()


def log_filter(request: web.Request) -> tuple[LogFilter, str | None]:
    """The log filter a GET /v1/events query asks for, and the exact region subtree to keep."""
    after = int_param(request, "after", 0, low=0, high=2**62)
    type_ = request.query.get("type") or None
    if type_ is not None and type_ not in CATALOGUE:
        raise InvalidParameter(f"unknown event type {type_!r}")
    region = region_param(request)
    prefix = None
    if region is not None and region != NATION:
        prefix = {"province": region[:2], "prefecture": region[:4], "county": region}[level_of(region)]
    return LogFilter(after, request.query.get("campaign") or None, type_, prefix), region


@allow("auditor")
async def get_events(request: web.Request) -> web.StreamResponse:
    """A page of the log in position order, or the whole filtered log as NDJSON."""
    flt, region = log_filter(request)
    limit = int_param(request, "limit", 1000, low=1, high=10000)

    def keep(record: RecordedEvent) -> bool:
        return region is None or is_within(record.region, region)

    if NDJSON in request.headers.get("Accept", ""):
        return await _stream_ndjson(request, flt, keep)
    async with translated_errors(), request.app[POOL].acquire() as conn:
        records = await read_page(conn, flt, limit)
    next_after = records[-1].position if records else flt.after
    page = EventsPage(events=[StoredEvent.model_validate(r.exported()) for r in records if keep(r)],
                      next_after=next_after)
    return json_response(page)


async def _stream_ndjson(request: web.Request, flt: LogFilter, keep: object) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": NDJSON})
    await response.prepare(request)
    after = flt.after
    while True:
        async with translated_errors(), request.app[POOL].acquire() as conn:
            records = await read_page(conn, LogFilter(after, flt.campaign, flt.type, flt.region_prefix), 2000)
        if not records:
            break
        lines = [orjson.dumps(r.exported()) for r in records if keep(r)]  # type: ignore[operator]
        if lines:
            await response.write(b"\n".join(lines) + b"\n")
        after = records[-1].position
    await response.write_eof()
    return response
