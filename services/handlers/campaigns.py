"""Campaign lifecycle: open, close, reopen (each an event in the log) and read campaigns."""

from datetime import UTC, datetime
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel

from events.campaigns import CampaignHistory
from events.decide import Accepted, AppendRequest
from events.errors import NotFound
from events.intake import parse_json
from events.records import RecordedEvent
from events.store import find_event, read_campaigns
from projections.flag_tables import open_blocking_flags
from schemas.api import CampaignChange, CampaignView, EventResult, OpenCampaign
from services import lifecycle
from services.appkeys import WRITER, api_key, request_id
from services.handlers.events import read_body, require_json
from services.handlers.params import campaign_path
from services.middleware import allow
from services.reads import Basis, primary, snapshot
from services.responses import json_response

M = TypeVar("M", bound=BaseModel)


class PooledLog:
    """The API's CampaignLog: reads from the primary (changes decide on, and answer with, the latest state),
    appends through the group-commit writer."""

    def __init__(self, request: web.Request) -> None:
        self._request = request
        self._writer = request.app[WRITER]

    async def history(self, campaign_id: str) -> CampaignHistory | None:
        """The campaign's history, or None."""
        async with primary(self._request) as conn:
            return (await read_campaigns(conn, [campaign_id])).get(campaign_id)

    async def find(self, event_id: str) -> RecordedEvent | None:
        """An event by id."""
        async with primary(self._request) as conn:
            return await find_event(conn, event_id)

    async def append(self, request: AppendRequest) -> Accepted:
        """Queue for the writer; decided under the append lock."""
        return await self._writer.append(request)

    async def blocking_flags(self, campaign_id: str) -> list[dict[str, str]]:
        """The campaign's open flags that block closing it, from the primary."""
        async with primary(self._request) as conn:
            return await open_blocking_flags(conn, campaign_id)


async def _body(request: web.Request, model: type[M], *, optional: bool = False) -> M:
    raw = await read_body(request)
    if optional and not raw.strip():
        return model()
    require_json(request)
    return lifecycle.read_body(model, parse_json(raw))


def _answer(result: lifecycle.LifecycleResult) -> web.Response:
    history = result.history
    view = CampaignView(id=history.id, theme=history.theme, starts_on=history.starts_on, ends_on=history.ends_on,
                        status=history.status, event=EventResult(
                            event_id=result.event_id, status="created" if result.created else "duplicate",
                            position=result.position))
    return json_response(view, status=201 if result.created else 200)


@allow()
async def open_campaign(request: web.Request) -> web.Response:
    """Open a campaign. Opening the same campaign again with the same content answers 200."""
    body = await _body(request, OpenCampaign)
    return _answer(await lifecycle.open_campaign(PooledLog(request), api_key(request).actor, request_id(request),
                                                 body, now=datetime.now(UTC)))


async def _change(request: web.Request, type_: lifecycle.Change) -> web.Response:
    campaign_id = campaign_path(request)
    body = await _body(request, CampaignChange, optional=True)
    return _answer(await lifecycle.change_campaign(PooledLog(request), api_key(request).actor, request_id(request),
                                                   type_, campaign_id, body, now=datetime.now(UTC)))


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
    async with snapshot(request, Basis.LOG) as snap:
        histories = await read_campaigns(snap.conn)
    return json_response({"campaigns": [_summary(h) for h in sorted(histories.values(), key=lambda h: h.id)]})


@allow("viewer", "auditor", "reporter")
async def get_campaign(request: web.Request) -> web.Response:
    """One campaign and its status."""
    campaign_id = campaign_path(request)
    async with snapshot(request, Basis.LOG) as snap:
        history = (await read_campaigns(snap.conn, [campaign_id])).get(campaign_id)
    if history is None:
        raise NotFound(f"no campaign {campaign_id}")
    return json_response(_summary(history))
