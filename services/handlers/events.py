"""POST /v1/events (append) and GET /v1/events (read the log)."""

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta

import orjson
from aiohttp import hdrs, web

from events.batch_intake import envelopes_from_json, fact_drafts
from events.decide import Accepted, AppendRequest, check_scope, prepare
from events.drafts import DraftEvent
from events.dryrun import decide_without_storing
from events.exchange import export_lines
from events.intake import parse_json, read_events_stepwise
from events.regions import code_prefix, is_within
from events.store import LogFilter, read_page
from schemas.api import DryRunResponse, DryRunResult, EventsPage, StoredEvent
from services.appkeys import SETTINGS, WRITER, api_key, request_id
from services.errors import BodyTimeout, InvalidParameter, UnsupportedMediaType
from services.flag_views import dry_run_flags
from services.handlers.params import campaign_param, event_type_param, int_param, region_param
from services.middleware import allow
from services.negotiation import negotiate
from services.reads import Basis, position_headers, primary, snapshot
from services.responses import json_response, stream_to_client

NDJSON = "application/x-ndjson"
VALIDATION_STEP = 250
"""Events validated between two turns of the event loop (~1-2 ms of CPU)."""


def require_json(request: web.Request) -> None:
    """415 unless the body is declared as JSON (UTF-8)."""
    if request.headers.get(hdrs.CONTENT_TYPE) == "application/json":  # what clients send: nothing to parse
        return
    # aiohttp reports a missing Content-Type as application/octet-stream; say that it is missing.
    ctype = request.content_type if hdrs.CONTENT_TYPE in request.headers else ""
    if ctype != "application/json" and not (ctype.startswith("application/") and ctype.endswith("+json")):
        raise UnsupportedMediaType(f"Content-Type must be application/json, not {ctype or 'missing'}")
    charset = request.charset
    if charset is not None and charset.lower() not in ("utf-8", "utf8"):
        raise UnsupportedMediaType("JSON bodies must be UTF-8")


async def read_body(request: web.Request) -> bytes:
    """The whole request body, or 408 when it has not arrived within the body-read timeout."""
    content = request.content
    if content.is_eof():  # the whole body has arrived already (a small POST, usually): no wait to bound
        if content.total_bytes <= request.app[SETTINGS].max_body_bytes:
            # What request.read() returns (the app's client_max_size is max_body_bytes), without its loop.
            return content.read_nowait()
        return await request.read()  # refuses it (413)
    # A client trickling its body must not hold a handler (and its memory) for ever.
    try:
        async with asyncio.timeout(request.app[SETTINGS].body_timeout_seconds):
            return await request.read()
    except TimeoutError:
        raise BodyTimeout(f"the body did not arrive within {request.app[SETTINGS].body_timeout_seconds:g} s") from None


def dry_run_param(request: web.Request) -> bool:
    """``dry_run`` of a write; any other query parameter on a write is refused (422), never ignored."""
    if not request.query_string:  # a plain POST: no query to parse
        return False
    unknown = sorted(set(request.query) - {"dry_run"})
    if unknown:
        raise InvalidParameter(f"unknown query parameter {unknown[0][:40]!r} on a write; only dry_run is accepted")
    raw = request.query.get("dry_run", "")
    if raw not in ("", "true", "false"):
        raise InvalidParameter("dry_run must be true or false")
    return raw == "true"


async def _dry_run(request: web.Request, append: AppendRequest) -> web.Response:
    settings = request.app[SETTINGS]
    async with primary(request) as conn:  # decided against the latest log, as the real post is
        accepted = await decide_without_storing(conn, append, datetime.now(UTC),
                                                timedelta(seconds=settings.clock_skew_seconds))
        flags = await dry_run_flags(conn, accepted.records, settings.flag_late_after_days)
    results = [DryRunResult(event_id=r.event_id, status="valid" if r.status == "created" else "duplicate")
               for r in accepted.results]
    return json_response(DryRunResponse(results=results, flags=flags))


@allow("reporter")
async def post_events(request: web.Request) -> web.Response:
    """Append one event or a batch, atomically; duplicates of earlier sends are answered, not stored."""
    dry_run = dry_run_param(request)
    require_json(request)
    body = await read_body(request)
    max_batch = request.app[SETTINGS].max_batch_events
    drafts = await _read_from_bytes(body, max_batch)
    if drafts is None:
        drafts = await _read_stepwise(body, max_batch)
    actor = api_key(request).actor
    check_scope(drafts, actor)
    append = prepare(drafts, actor, request_id(request))
    if dry_run:
        return await _dry_run(request, append)
    accepted = await request.app[WRITER].append(append)
    body, status = append_answer(accepted)
    return web.Response(body=body, status=status, content_type="application/json")


async def _read_from_bytes(body: bytes, max_batch: int) -> list[DraftEvent] | None:
    """A body of plain facts validated straight from its bytes (events.batch_intake), or None: then it is parsed
    exactly and validated the usual way. The one call into pydantic-core costs about what ``parse_json`` did
    (~2 ms for 1000 events); the drafts are then made a slice at a time, as below."""
    envelopes = envelopes_from_json(body, max_batch)
    if envelopes is None:
        return None
    drafts: list[DraftEvent] = []
    for start in range(0, len(envelopes), VALIDATION_STEP):
        if start:
            await asyncio.sleep(0)
        part = fact_drafts(envelopes[start:start + VALIDATION_STEP], start)
        if part is None:
            return None
        drafts.extend(part)
    return drafts


async def _read_stepwise(body: bytes, max_batch: int) -> list[DraftEvent]:
    drafts: list[DraftEvent] = []
    # A slice at a time: this process's writer may be waiting to run (to decide a group, or for its answer from
    # PostgreSQL), and it resumes between slices instead of after the whole batch.
    for part in read_events_stepwise(parse_json(body), max_batch, VALIDATION_STEP):
        drafts.extend(part)
        if len(part) == VALIDATION_STEP:  # more may follow
            await asyncio.sleep(0)
    return drafts


def append_answer(accepted: Accepted) -> tuple[bytes, int]:
    """The AppendResponse body of an accepted request and its status: 201 if anything was created, else 200.

    Serialised straight from the results: the same bytes as the model's JSON (a test holds them equal), without
    building a model per result on the path every single-event POST takes.
    """
    results = [{"event_id": r.event_id, "status": r.status, "position": r.position} for r in accepted.results]
    created = any(r.status == "created" for r in accepted.results)
    body = orjson.dumps({"results": results, "last_position": max(r.position for r in accepted.results)})
    return body, 201 if created else 200


def log_filter(request: web.Request) -> tuple[LogFilter, str | None]:
    """The log filter a GET /v1/events query asks for, and the exact region subtree to keep."""
    after = int_param(request, "after", 0, low=0, high=2**62)
    type_ = event_type_param(request)
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
        async with contextlib.aclosing(export_lines(snap.conn, flt, region=region)) as chunks:
            await stream_to_client(response, request, chunks)
    await response.write_eof()
    return response
