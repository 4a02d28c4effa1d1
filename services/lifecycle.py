"""Campaign lifecycle (open, close, reopen) for the HTTP API and the CLI: one decision path, the same answers.

Every retry is decided under the append lock. Opening gets an event_id derived from what is
opened, and lifecycle appends are marked server-stamped, so an identical request that
arrives while the first is still in flight is a duplicate (200), not a conflict (409).
"""

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol, TypeVar

from pydantic import BaseModel, ValidationError

from events.campaigns import CampaignHistory, lifecycle_draft
from events.decide import Accepted, Actor, AppendRequest
from events.errors import CampaignConflict, ItemError, NotFound, OpenFlagsBlockClose, ValidationFailed
from events.records import RecordedEvent
from events.store import Connection, find_event, read_campaigns
from events.validation_messages import explain
from events.writer import append_in_transaction
from projections.flag_tables import open_blocking_flags
from schemas.api import CampaignChange, OpenCampaign

CLI_ACTOR = Actor("cli", "admin")
# Namespace of the event_ids of campaign_opened events made by the server (uuid5 of what is opened).
OPENING_NAMESPACE = uuid.UUID("6a0f6a55-1b57-4c35-9a54-2f2f0d1b3c1e")
M = TypeVar("M", bound=BaseModel)
Change = Literal["campaign_closed", "campaign_reopened"]


class CampaignLog(Protocol):
    """What the lifecycle needs from the log: read a campaign, find an event, append under the lock."""

    async def history(self, campaign_id: str) -> CampaignHistory | None: ...

    async def find(self, event_id: str) -> RecordedEvent | None: ...

    async def append(self, request: AppendRequest) -> Accepted: ...

    async def blocking_flags(self, campaign_id: str) -> list[dict[str, str]]: ...


@dataclass(frozen=True, slots=True)
class LifecycleResult:
    """The campaign after the call, and the lifecycle event that answers it (new or the original)."""

    history: CampaignHistory
    event_id: str
    position: int
    created: bool


class ConnectionLog:
    """The CLI's CampaignLog: one connection, each append its own transaction under the append lock."""

    def __init__(self, conn: Connection, now: datetime) -> None:
        self._conn = conn
        self._now = now

    async def history(self, campaign_id: str) -> CampaignHistory | None:
        """The campaign's history, or None."""
        return (await read_campaigns(self._conn, [campaign_id])).get(campaign_id)

    async def find(self, event_id: str) -> RecordedEvent | None:
        """An event by id."""
        return await find_event(self._conn, event_id)

    async def append(self, request: AppendRequest) -> Accepted:
        """Decide and append in one transaction; raise why it was refused."""
        (outcome,), _ = await append_in_transaction(self._conn, [request], self._now)
        if not isinstance(outcome, Accepted):
            raise outcome
        return outcome

    async def blocking_flags(self, campaign_id: str) -> list[dict[str, str]]:
        """The campaign's open flags that block closing it."""
        return await open_blocking_flags(self._conn, campaign_id)


def read_body(model: type[M], raw: Any) -> M:
    """A lifecycle request body, refused (422) with the same reasons over HTTP and on the command line."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise ValidationFailed([ItemError(None, None, tuple(e["loc"]), explain(e, of_event=False), e["type"])
                                for e in exc.errors()]) from None


def opening_event_id(body: OpenCampaign) -> str:
    """The event_id of opening this campaign with this theme and window: the same for every retry."""
    what = "\x1f".join((body.id, body.theme.strip(), body.starts_on.isoformat(), body.ends_on.isoformat()))
    return str(uuid.uuid5(OPENING_NAMESPACE, what))


async def _append(log: CampaignLog, actor: Actor, request_id: str, type_: str, campaign_id: str,
                  data: dict[str, Any], event_id: str, now: datetime) -> tuple[str, int, bool]:
    try:
        draft = lifecycle_draft(type_, campaign_id, data, event_id=event_id, now=now)
    except ValidationFailed as exc:
        # The caller sent a body, not a batch item: no index, no server-made event_id, fields as in the body.
        raise ValidationFailed([ItemError(None, None, e.loc[1:] if e.loc[:1] == ("data",) else e.loc, e.msg, e.code)
                                for e in exc.errors]) from None
    accepted = await log.append(AppendRequest([draft], actor, request_id, server_stamped=True))
    item = accepted.results[0]
    return item.event_id, item.position, item.status == "created"


async def _current(log: CampaignLog, campaign_id: str) -> CampaignHistory:
    history = await log.history(campaign_id)
    if history is None:
        raise NotFound(f"no campaign {campaign_id}")
    return history


async def open_campaign(log: CampaignLog, actor: Actor, request_id: str, body: OpenCampaign, *,
                        now: datetime) -> LifecycleResult:
    """Open a campaign; the same campaign, theme and window again is answered with the original opening."""
    existing = await log.history(body.id)
    if existing is not None:
        if (existing.theme, existing.starts_on, existing.ends_on) != (body.theme.strip(), body.starts_on,
                                                                     body.ends_on):
            raise CampaignConflict(f"campaign {body.id} has already been opened with a different theme or window")
        return LifecycleResult(existing, existing.opened_event_id, existing.opened_position, created=False)
    event_id, position, created = await _append(log, actor, request_id, "campaign_opened", body.id,
                                                body.model_dump(mode="json"), opening_event_id(body), now)
    return LifecycleResult(await _current(log, body.id), event_id, position, created)


async def change_campaign(log: CampaignLog, actor: Actor, request_id: str, type_: Change, campaign_id: str,
                          body: CampaignChange, *, now: datetime) -> LifecycleResult:
    """Close or reopen (with a reason); a repeated ``event_id`` is answered with the original event."""
    if body.event_id is not None:
        earlier = await log.find(body.event_id)
        if earlier is not None and earlier.type == type_ and earlier.campaign == campaign_id:
            return LifecycleResult(await _current(log, campaign_id), earlier.event_id, earlier.position,
                                   created=False)
    await _current(log, campaign_id)
    if type_ == "campaign_closed":
        await _check_open_flags(log, campaign_id, body)
    data: dict[str, Any] = {"id": campaign_id}
    if type_ == "campaign_reopened":
        if not body.note:
            raise ValidationFailed([ItemError(None, None, ("note",), "say why the campaign is reopened")])
        data["reason"] = body.note
    elif body.note:
        data["note"] = body.note
    if type_ == "campaign_closed" and body.force:
        data["force"] = True  # closed over open data-quality flags (issue 15)
    event_id, position, created = await _append(log, actor, request_id, type_, campaign_id, data,
                                                body.event_id or str(uuid.uuid4()), now)
    return LifecycleResult(await _current(log, campaign_id), event_id, position, created)


async def _check_open_flags(log: CampaignLog, campaign_id: str, body: CampaignChange) -> None:
    """Refuse (409, naming them) to close while unit_scale or possible_duplicate flags are open, unless forced
    with a note (422 without one). Issue 15; the flags are the flags projection's, as far as it has scored."""
    if body.force:
        if not body.note:
            raise ValidationFailed([ItemError(None, None, ("note",), "say why the campaign is closed over open "
                                              "data-quality flags", "note_required")])
        return
    if blocking := await log.blocking_flags(campaign_id):
        raise OpenFlagsBlockClose(campaign_id, blocking)


async def append_lifecycle(conn: Connection, type_: str, campaign_id: str, data: dict[str, Any], *,
                           now: datetime) -> int:
    """Append one lifecycle event as the CLI, as given (no retry rule); returns its position or raises why not."""
    draft = lifecycle_draft(type_, campaign_id, data, event_id=str(uuid.uuid4()), now=now)
    accepted = await ConnectionLog(conn, now).append(AppendRequest([draft], CLI_ACTOR, f"cli-{uuid.uuid4().hex[:12]}"))
    return accepted.results[0].position
