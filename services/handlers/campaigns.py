"""Campaign lifecycle: open, close, reopen (each an event in the log) and read campaigns."""

import uuid
from datetime import UTC, datetime
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from events.campaigns import CampaignHistory, lifecycle_draft
from events.decide import Accepted, AppendRequest
from events.errors import CampaignConflict, ItemError, NotFound, ValidationFailed
from events.intake import parse_json
from events.store import find_event, read_campaigns, translated_errors
from events.validation_messages import explain
from schemas.api import CampaignChange, CampaignView, EventResult, OpenCampaign
from services.appkeys import POOL, WRITER, api_key, request_id
from services.handlers.events import read_body, require_json
from services.handlers.params import campaign_path
from services.middleware import allow
from services.responses import json_response

M = TypeVar("M", bound=BaseModel)


async def _body(request: web.Request, model: type[M], *, optional: bool = False) -> M:
    raw = await read_body(request)
    if optional and not raw.strip():
        return model()
    require_json(request)
    try:
        return model.model_validate(parse_json(raw))
    except ValidationError as exc:
        raise ValidationFailed([ItemError(None, None, tuple(e["loc"]), explain(e)) for e in exc.errors()]) from None


def _view(history: CampaignHistory, result: EventResult) -> CampaignView:
    return CampaignView(id=history.id, theme=history.theme, starts_on=history.starts_on, ends_on=history.ends_on,
                        status=history.status, event=result)


async def _history(request: web.Request, campaign_id: str) -> CampaignHistory | None:
    async with translated_errors(), request.app[POOL].acquire() as conn:
        return (await read_campaigns(conn, [campaign_id])).get(campaign_id)


async def _append_lifecycle(request: web.Request, type_: str, campaign_id: str, data: dict[str, Any],
                            event_id: str | None = None) -> EventResult:
    try:
        drafts = [lifecycle_draft(type_, campaign_id, data, event_id=event_id or str(uuid.uuid4()),
                                  now=datetime.now(UTC))]
    except ValidationFailed as exc:
        # The client sent a body, not a batch item: no index, no server-made event_id, fields as in the body.
        raise ValidationFailed([ItemError(None, None, e.loc[1:] if e.loc[:1] == ("data",) else e.loc, e.msg)
                                for e in exc.errors]) from None
    accepted: Accepted = await request.app[WRITER].append(AppendRequest(drafts, api_key(request).actor,
                                                                        request_id(request)))
    item = accepted.results[0]
    return EventResult(event_id=item.event_id, status=item.status, position=item.position)


@allow()
async def open_campaign(request: web.Request) -> web.Response:
    """Open a campaign. Opening the same campaign again with the same content answers 200."""
    body = await _body(request, OpenCampaign)
    existing = await _history(request, body.id)
    if existing is not None:
        same = (existing.theme, existing.starts_on, existing.ends_on) == (body.theme.strip(), body.starts_on,
                                                                         body.ends_on)
        if not same:
            raise CampaignConflict(f"campaign {body.id} has already been opened with a different theme or window")
        return json_response(_view(existing, EventResult(event_id=existing.opened_event_id, status="duplicate",
                                                         position=existing.opened_position)))
    result = await _append_lifecycle(request, "campaign_opened", body.id, body.model_dump(mode="json"))
    history = await _history(request, body.id)
    assert history is not None
    return json_response(_view(history, result), status=201)


async def _change(request: web.Request, type_: str) -> web.Response:
    campaign_id = campaign_path(request)
    body = await _body(request, CampaignChange, optional=True)
    if body.event_id is not None:
        async with translated_errors(), request.app[POOL].acquire() as conn:
            earlier = await find_event(conn, body.event_id)
        if earlier is not None and earlier.type == type_ and earlier.campaign == campaign_id:
            history = await _history(request, campaign_id)
            assert history is not None
            return json_response(_view(history, EventResult(event_id=earlier.event_id, status="duplicate",
                                                            position=earlier.position)))
    if await _history(request, campaign_id) is None:
        raise NotFound(f"no campaign {campaign_id}")
    data: dict[str, Any] = {"id": campaign_id}
    if type_ == "campaign_reopened":
        if not body.note:
            raise ValidationFailed([ItemError(None, None, ("note",), "say why the campaign is reopened")])
        data["reason"] = body.note
    elif body.note:
        data["note"] = body.note
    result = await _append_lifecycle(request, type_, campaign_id, data, body.event_id)
    history = await _history(request, campaign_id)
    assert history is not None
    return json_response(_view(history, result), status=201)


@allow()
async def close_campaign(request: web.Request) -> web.Response:
    """Close a campaign: its figures freeze at this position; later events are refused (409)."""
    return await _change(request, "campaign_closed")


@allow()
async def reopen_campaign(request: web.Request) -> web.Response:
    """Reopen a closed campaign (with a reason in ``note``)."""
    return await _change(request, "campaign_reopened")


def _summary(history: CampaignHistory) -> dict[str, Any]:
    return {"id": history.id, "theme": history.theme, "starts_on": history.starts_on.isoformat(),
            "ends_on": history.ends_on.isoformat(), "status": history.status,
            "closed_at_positions": list(history.closed_at)}


@allow("viewer", "auditor", "reporter")
async def list_campaigns(request: web.Request) -> web.Response:
    """Every campaign and its status."""
    async with translated_errors(), request.app[POOL].acquire() as conn:
        histories = await read_campaigns(conn)
    return json_response({"campaigns": [_summary(h) for h in sorted(histories.values(), key=lambda h: h.id)]})


@allow("viewer", "auditor", "reporter")
async def get_campaign(request: web.Request) -> web.Response:
    """One campaign and its status."""
    campaign_id = campaign_path(request)
    history = await _history(request, campaign_id)
    if history is None:
        raise NotFound(f"no campaign {campaign_id}")
    return json_response(_summary(history))
