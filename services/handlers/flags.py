"""Data-quality flags: list them (json/csv) and review one (a flag_reviewed event in the log)."""

import csv
import io
import uuid

from aiohttp import web
from pydantic import ValidationError

from events.canonical import format_timestamp
from events.catalogue import FLAG_RULES
from events.decide import Accepted, AppendRequest, check_scope
from events.errors import ItemError, NotFound, OutOfScope, ValidationFailed
from events.intake import parse_json, read_events
from events.regions import is_within
from events.store import find_event, read_campaigns
from events.validation_messages import explain
from projections.flag_tables import FlagQuery, Status, find_flag, read_flags
from schemas.api import EventResult, FlagList, FlagOut, ReviewFlag, ReviewRecorded
from services.appkeys import DIRECTORY, WRITER, api_key, request_id
from services.errors import InvalidParameter
from services.flag_views import flag_out
from services.handlers.events import read_body, require_json
from services.handlers.params import campaign_path, int_param, region_param
from services.middleware import allow
from services.reads import Basis, primary, snapshot
from services.responses import json_response

CSV_COLUMNS = ("id", "code", "severity", "status", "score", "region", "event_id", "type", "metric", "observed",
               "expected", "basis", "message_zh", "message_en", "raised_at", "resolved_at", "review_verdict",
               "review_note")
STATUSES: tuple[Status, ...] = ("open", "reviewed", "resolved", "all")


def _reader_region(request: web.Request) -> str | None:
    """The subtree asked for; a reporter sees only its own subtree (403 outside it)."""
    region = region_param(request)
    key = api_key(request)
    if key.role == "reporter" and key.region is not None:
        if region is None:
            return key.region
        if not is_within(region, key.region):
            raise OutOfScope(f"region {region} is outside this key's scope {key.region}")
    return region


@allow("viewer", "auditor", "reporter")
async def list_flags(request: web.Request) -> web.Response:
    """A campaign's flags, highest score first; ``format=csv`` for a spreadsheet."""
    campaign = campaign_path(request)
    status = request.query.get("status") or "open"
    if status not in STATUSES:
        raise InvalidParameter("status must be open, reviewed, resolved or all")
    code = request.query.get("code") or None
    if code is not None and code not in FLAG_RULES:
        raise InvalidParameter(f"code must be one of {', '.join(FLAG_RULES)}")
    fmt = request.query.get("format") or "json"
    if fmt not in ("json", "csv"):
        raise InvalidParameter("format must be json or csv")
    limit = int_param(request, "limit", 1000, low=1, high=10000)
    region = _reader_region(request)
    if region is not None:  # 404 for a code not in the campaign year's list, as on every route taking a region
        await request.app[DIRECTORY].check_region(campaign, region)
    # One snapshot (a replica in use, or the primary): the position said is exactly the one the flags reflect.
    async with snapshot(request, Basis.FLAGS) as snap:
        if campaign not in await read_campaigns(snap.conn, [campaign]):
            raise NotFound(f"no campaign {campaign}")
        position = snap.position
        rows = await read_flags(snap.conn, FlagQuery(campaign, region, status, code, limit))
    flags = [flag_out(r) for r in rows]
    if fmt == "csv":
        return web.Response(body=_csv(flags).encode("utf-8"), content_type="text/csv", charset="utf-8")
    return json_response(FlagList(campaign=campaign, position=position, flags=flags))


def _csv(flags: list[FlagOut]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for f in flags:
        row = f.model_dump()
        row["review_verdict"] = f.review.verdict if f.review else ""
        row["review_note"] = f.review.note if f.review else ""
        writer.writerow(["" if row.get(c) is None else row.get(c) for c in CSV_COLUMNS])
    return out.getvalue()


@allow("reporter")
async def review_flag(request: web.Request) -> web.Response:
    """Record a verdict on a flag as a flag_reviewed event (reporter whose scope covers the flag, or admin)."""
    campaign = campaign_path(request)
    raw = await read_body(request)
    require_json(request)
    try:
        body = ReviewFlag.model_validate(parse_json(raw))
    except ValidationError as exc:
        raise ValidationFailed([ItemError(None, None, tuple(e["loc"]), explain(e, of_event=False), e["type"])
                                for e in exc.errors()]) from None
    flag_id = request.match_info["flag_id"]
    async with primary(request) as conn:  # the verdict is decided on the latest flags
        flag = await find_flag(conn, flag_id) if len(flag_id) == 16 else None
        flagged = await find_event(conn, flag["event_id"]) if flag is not None else None
    if flag is None or flag["campaign"] != campaign or flagged is None:
        raise NotFound(f"no flag {flag_id[:40]!r} in campaign {campaign}")
    actor = api_key(request).actor
    if actor.scope is not None and not is_within(flag["region"], actor.scope):
        raise OutOfScope(f"flag {flag_id} is in region {flag['region']}, outside this key's scope {actor.scope}")
    # A review's region is the flag's and its occurred_at the flagged fact's (as a correction's would be):
    # the verdict is about that fact; recorded_at says when it was given.
    envelope = {"event_id": body.event_id or str(uuid.uuid4()), "type": "flag_reviewed", "schema_version": 1,
                "campaign": campaign, "region": flag["region"],
                "occurred_at": format_timestamp(flagged.occurred_at),
                "data": {"flag_id": flag_id, "verdict": body.verdict, "note": body.note}}
    drafts = read_events(envelope)
    check_scope(drafts, actor)
    accepted: Accepted = await request.app[WRITER].append(AppendRequest(drafts, actor, request_id(request)))
    item = accepted.results[0]
    result = EventResult(event_id=item.event_id, status=item.status, position=item.position)
    return json_response(ReviewRecorded(flag_id=flag_id, event=result), status=201 if item.status == "created"
                         else 200)

