"""Deciding a group of append requests against the log's current state. Pure: no I/O.

The writer loads a ``LogState`` (a snapshot of the log, or under the append lock: see
events/writer), then asks a ``GroupDecider`` about each queued request in turn. Each request
is accepted whole or refused whole; an accepted request's events get the next positions and
their chain hashes, and later requests in the same group see its effects (a campaign it
opened, an event it retracted).

The refusal policy, written down once. Two kinds of refusal, both refuse the whole request:

- *Request refusals* stop the decision at the first one found and answer alone, with their
  own status: a revoked key (401), an event or region outside the key's scope (403), an
  event_id already recorded with other content (409), a closed campaign (409), a lifecycle
  change that does not fit the campaign (409). Raised as their DomainError.
- *Item refusals* are collected over every item and answered together as one 422
  (ValidationFailed, one ItemError per problem, with its item index and field): a correction
  of nothing or of a non-fact, an invalid replacement, an unopened campaign, occurred_at
  outside the window or in the future, a code missing from the year's region list, a target
  that is missing, retracted, or in another campaign.

The item checks are the named methods ``_normalised`` (corrections' payloads), then per new
item ``_campaign_takes_events``, ``_within_window``, ``_in_region_list``, ``_target_applies``.
"""

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta, timezone
from functools import lru_cache
from typing import Any, Literal

from pydantic import ValidationError

from events.canonical import (
    RecordBuilder,
    RecordParts,
    chain_hash_of_parts,
    format_timestamp,
    recorded_at_bytes,
    utc_text,
)
from events.catalogue import CATALOGUE
from events.drafts import DraftEvent
from events.errors import (
    CampaignClosedError,
    CampaignConflict,
    DomainError,
    EventIdConflict,
    ItemError,
    KeyRevoked,
    OutOfScope,
    ValidationFailed,
)
from events.intake import item_message, validate_payload
from events.records import EventRow, RecordedEvent
from events.regions import NATION, is_within, level_of

Role = Literal["reporter", "viewer", "auditor", "admin"]


def a_role(role: str) -> str:
    """A role with its article, for sentences: "a viewer", "an auditor", "an admin"."""
    return ("an " if role[:1] in ("a", "e", "i", "o", "u") else "a ") + role
ItemStatus = Literal["created", "duplicate"]
CHINA_STANDARD_TIME = timezone(timedelta(hours=8), "CST")


@dataclass(frozen=True, slots=True)
class Actor:
    """Who is appending: the key id (recorded_by), its role and, for a reporter, its region."""

    key_id: str
    role: Role
    scope: str | None = None


@dataclass(slots=True)  # not frozen (nothing changes one): a frozen __init__ costs ~3× more, one is built per request
class AppendRequest:
    """One HTTP request's events, appended all or nothing.

    ``prepared`` holds, per draft, the parts of its canonical record that do not depend on the log
    (``prepare`` builds them before the request is queued, so the append lock is not held for them);
    None where the log must be read first (a correction's replacement), or empty when not prepared.
    """

    drafts: list[DraftEvent]
    actor: Actor
    request_id: str
    prepared: tuple[RecordParts | None, ...] = ()
    server_stamped: bool = False
    """The server set ``occurred_at`` (a lifecycle call): a retry is the same event_id, type and campaign,
    since a retry's own timestamp must not make it look like different content."""
    outline: "FactsOutline | None" = None
    """Set when every event is a new-looking fact with its parts prepared: the request can be decided whole."""


@dataclass(slots=True)  # not frozen, as AppendRequest
class CampaignSpan:
    """A request's facts in one campaign: the earliest and latest occurred_at, and the listed-level regions
    (prefectures and counties, which a region list can refuse)."""

    earliest: datetime
    latest: datetime
    listed_regions: frozenset[str]


@dataclass(slots=True)  # not frozen, as AppendRequest
class FactsOutline:
    """What deciding a request of plain facts needs, computed before the lock: its distinct event_ids and,
    per campaign, the span of its events. Under the lock the request is then checked a campaign at a time,
    not an event at a time; only when a check fails is it decided event by event, for the exact errors."""

    event_ids: frozenset[str]
    spans: dict[str, CampaignSpan]


def prepare(drafts: list[DraftEvent], actor: Actor, request_id: str) -> AppendRequest:
    """An append request with each event's canonical parts built now, outside the append lock."""
    builder = RecordBuilder(actor.key_id, request_id)
    prepared = tuple(
        None if d.type.kind == "correction" else builder.parts(
            d.campaign, d.data, d.event_id, utc_text(d.occurred_at), d.region, d.schema_version, d.type.name)
        for d in drafts)
    return AppendRequest(drafts, actor, request_id, prepared, outline=_outline(drafts))


_NO_REGIONS: frozenset[str] = frozenset()


def _listed(region: str) -> bool:
    return level_of(region) in ("prefecture", "county")


def _outline(drafts: list[DraftEvent]) -> FactsOutline | None:
    if len(drafts) == 1:  # most requests: the same outline without the grouping
        draft = drafts[0]
        if draft.type.kind != "fact":
            return None
        listed = frozenset((draft.region,)) if _listed(draft.region) else _NO_REGIONS
        return FactsOutline(frozenset((draft.event_id,)),
                            {draft.campaign: CampaignSpan(draft.occurred_at, draft.occurred_at, listed)})
    if not all(d.type.kind == "fact" for d in drafts):
        return None
    event_ids = frozenset(d.event_id for d in drafts)
    if len(event_ids) != len(drafts):  # a request repeating an event_id is decided event by event
        return None
    by_campaign: dict[str, list[DraftEvent]] = {}
    for draft in drafts:
        by_campaign.setdefault(draft.campaign, []).append(draft)
    spans = {campaign: CampaignSpan(
        min(d.occurred_at for d in group), max(d.occurred_at for d in group),
        frozenset(region for region in {d.region for d in group} if _listed(region)))
        for campaign, group in by_campaign.items()}
    return FactsOutline(event_ids, spans)


@dataclass(slots=True)  # not frozen: a frozen __init__ costs ~3× more, and one is built per event under the lock
class ItemResult:
    """The answer for one event of a request."""

    event_id: str
    status: ItemStatus
    position: int


@dataclass(frozen=True, slots=True)
class Accepted:
    """A request the log takes: its per-item results and the rows to insert, with each row's canonical parts
    (so that the store can chain it again at a later position)."""

    results: list[ItemResult]
    rows: list[EventRow]
    parts: list[RecordParts] = field(default_factory=list)

    def moved(self, after: int, shift: int) -> "Accepted":
        """The answer once the events decided after position ``after`` were stored ``shift`` positions later
        (events/writer): their results move, a duplicate's stored position does not. ``rows`` stay as decided;
        the log holds them as stored."""
        results = [ItemResult(r.event_id, r.status, r.position + shift if r.position > after else r.position)
                   for r in self.results]
        return Accepted(results, self.rows, self.parts)

    @property
    def records(self) -> list[RecordedEvent]:
        """The rows as recorded events (a dry run's flags, tests)."""
        return [row.record() for row in self.rows]


Outcome = Accepted | DomainError


@dataclass(slots=True)  # not frozen: a frozen __init__ costs ~4× more, and two are built per accepted event
class KnownEvent:
    """What the decider needs to know about an event already in the log."""

    event_id: str
    position: int
    type: str
    schema_version: int
    campaign: str
    region: str
    content_hash: bytes
    retracted: bool = False


@dataclass(frozen=True, slots=True)
class Campaign:
    """A campaign's window and whether it currently takes events."""

    id: str
    starts_on: date
    ends_on: date
    status: Literal["open", "closed"]

    @property
    def window(self) -> tuple[datetime, datetime]:
        """[start, end) of the window as instants: whole days in China Standard Time."""
        return _window(self.starts_on, self.ends_on)


@lru_cache(maxsize=256)
def _window(starts_on: date, ends_on: date) -> tuple[datetime, datetime]:
    return (datetime.combine(starts_on, time(), CHINA_STANDARD_TIME),
            datetime.combine(ends_on + timedelta(days=1), time(), CHINA_STANDARD_TIME))


@dataclass(slots=True)
class LogState:
    """The slice of the log a group needs: events it names, campaigns, loaded region lists."""

    head_position: int
    head_hash: bytes
    events: dict[str, KnownEvent] = field(default_factory=dict)
    campaigns: dict[str, Campaign] = field(default_factory=dict)
    region_lists: dict[int, frozenset[str]] = field(default_factory=dict)
    revoked_keys: frozenset[str] = frozenset()
    appended: dict[str, tuple[DraftEvent, int, bytes]] = field(default_factory=dict)
    """Events accepted since the state was loaded (draft, position, content hash); a ``KnownEvent`` is made
    of one only when a later request names it (``known``), not for every event appended."""

    def known(self, event_id: str) -> KnownEvent | None:
        """What the log (with what this group appended so far) knows of an event, or None."""
        found = self.events.get(event_id)
        if found is None and (appended := self.appended.get(event_id)) is not None:
            draft, position, digest = appended
            found = self.events[event_id] = KnownEvent(event_id, position, draft.type.name, draft.schema_version,
                                                       draft.campaign, draft.region, digest)
        return found


def check_scope(drafts: list[DraftEvent], actor: Actor) -> None:
    """Refuse (403) what the key may not send, before anything is queued."""
    if actor.role not in ("reporter", "admin"):
        raise OutOfScope(f"{a_role(actor.role)} key cannot append events")
    for draft in drafts:
        if draft.type.admin_only and actor.role != "admin":
            raise OutOfScope(f"only an admin may send {draft.type.name} (item {draft.index})")
        if actor.scope is not None and not is_within(draft.region, actor.scope):
            raise OutOfScope(f"region {draft.region} (item {draft.index}) is outside this key's "
                             f"scope {actor.scope}")


def _problem(draft: DraftEvent, loc: tuple[str | int, ...], msg: str) -> ItemError:
    return ItemError(draft.index, draft.event_id, loc, msg)


@dataclass(slots=True)
class _Pending:
    """What a request has decided so far: campaigns as its lifecycle events leave them, the facts it
    retracts, and every event it names (so a correction may refer to a fact sent earlier in it)."""

    campaigns: dict[str, Campaign]
    retracted: set[str]
    seen: dict[str, KnownEvent]


class GroupDecider:
    """Decides the requests of one group in order, carrying their effects forward."""

    def __init__(self, state: LogState, now: datetime, clock_skew: timedelta = timedelta(minutes=5)) -> None:
        self._state = state
        self._now = now.astimezone(UTC)
        self._skew = clock_skew
        self._recorded_at = recorded_at_bytes(self._now)

    @property
    def head(self) -> tuple[int, bytes]:
        """Position and hash of the last event accepted so far."""
        return self._state.head_position, self._state.head_hash

    @property
    def stamp(self) -> bytes:
        """The ``,"recorded_at":…`` fragment every record of this group is hashed with."""
        return self._recorded_at

    def decide(self, request: AppendRequest) -> Accepted | DomainError:
        """Accept the whole request (assigning positions and hashes) or return why not."""
        try:
            return self._decide(request)
        except DomainError as error:
            return error

    def _decide(self, request: AppendRequest) -> Accepted:
        if request.actor.key_id in self._state.revoked_keys:
            raise KeyRevoked(f"key {request.actor.key_id} has been revoked")
        if request.outline is not None and self._facts_fit(request.outline):
            whole = [(d, d.data, p) for d, p in zip(request.drafts, request.prepared, strict=True) if p is not None]
            return self._accept(request, whole, [(d.event_id, "created", None) for d in request.drafts],
                                self._state.campaigns, set())
        normalised, seen = self._normalised(request)
        pending = _Pending(dict(self._state.campaigns), set(), seen)
        errors: list[ItemError] = []
        fresh: list[tuple[DraftEvent, dict[str, Any], RecordParts]] = []
        statuses: list[tuple[str, ItemStatus, int | None]] = []
        in_request: dict[str, bytes] = {}
        for draft, data, parts in normalised:
            digest = parts.content_hash
            stored = self._state.known(draft.event_id)
            earlier = in_request.get(draft.event_id)
            if stored is not None or earlier is not None:
                same = (stored.content_hash if stored is not None else earlier) == digest
                if not same and request.server_stamped and stored is not None:
                    same = (stored.type, stored.campaign) == (draft.type.name, draft.campaign)
                if not same:
                    raise EventIdConflict(draft.event_id, draft.index)
                statuses.append((draft.event_id, "duplicate", stored.position if stored else None))
                continue
            in_request[draft.event_id] = digest
            errors.extend(self._check_new(draft, pending, request.actor))
            fresh.append((draft, data, parts))
            statuses.append((draft.event_id, "created", None))
        if errors:
            raise ValidationFailed(errors)
        return self._accept(request, fresh, statuses, pending.campaigns, pending.retracted)

    def _facts_fit(self, outline: FactsOutline) -> bool:
        """True when a request of plain facts passes every check whole: no event_id the log or this group
        already holds, and per campaign an open campaign whose window (and the clock) holds its span and
        whose region list holds its regions. False says nothing: the request is then decided event by event."""
        state = self._state
        if not outline.event_ids.isdisjoint(state.events) or not outline.event_ids.isdisjoint(state.appended):
            return False
        for campaign_id, span in outline.spans.items():
            campaign = state.campaigns.get(campaign_id)
            if campaign is None or campaign.status != "open":
                return False
            start, end = campaign.window
            if not (start <= span.earliest and span.latest < end and span.latest <= self._now + self._skew):
                return False
            codes = state.region_lists.get(campaign.starts_on.year)
            if codes is not None and not span.listed_regions <= codes:
                return False
        return True

    def _normalised(self, request: AppendRequest) -> tuple[list[tuple[DraftEvent, dict[str, Any], RecordParts]],
                                                           dict[str, KnownEvent]]:
        """Each draft with its normalised payload and canonical parts, and the events the request names.

        Item refusals: a correction's target must exist and be a fact, and its replacement must be valid.
        """
        errors: list[ItemError] = []
        seen: dict[str, KnownEvent] = {}
        normalised: list[tuple[DraftEvent, dict[str, Any], RecordParts]] = []
        names_targets = any(d.target is not None for d in request.drafts)
        for index, draft in enumerate(request.drafts):
            data = self._normalise(draft, seen, errors)
            if data is None:
                continue
            parts = request.prepared[index] if request.prepared else None
            if parts is None:  # not prepared, or a correction (its replacement needed the log)
                parts = RecordBuilder(request.actor.key_id, request.request_id).parts(
                    draft.campaign, data, draft.event_id, format_timestamp(draft.occurred_at), draft.region,
                    draft.schema_version, draft.type.name)
            normalised.append((draft, data, parts))
            if names_targets and draft.event_id not in seen:  # only corrections and retractions look here
                seen[draft.event_id] = KnownEvent(draft.event_id, 0, draft.type.name, draft.schema_version,
                                                  draft.campaign, draft.region, parts.content_hash)
        if errors:
            raise ValidationFailed(errors)
        return normalised, seen

    def _normalise(self, draft: DraftEvent, seen: dict[str, KnownEvent],
                   errors: list[ItemError]) -> dict[str, Any] | None:
        if draft.type.kind != "correction":
            return draft.data
        target = self._state.known(draft.data["corrects"]) or seen.get(draft.data["corrects"])
        if target is None:
            errors.append(ItemError(draft.index, draft.event_id, ("data", "corrects"),
                                    f"no event {draft.data['corrects']} to correct"))
            return None
        target_type = CATALOGUE[target.type]
        if target_type.kind != "fact":
            errors.append(ItemError(draft.index, draft.event_id, ("data", "corrects"),
                                    f"{target.type} events cannot be corrected; correct the original fact"))
            return None
        try:
            replacement = validate_payload(target_type, target.schema_version, draft.data["replacement"])
        except ValidationError as exc:
            errors.extend(ItemError(draft.index, draft.event_id, ("data", "replacement", *e["loc"]), item_message(e),
                                    e["type"]) for e in exc.errors())
            return None
        return {**draft.data, "replacement": replacement}

    def _check_new(self, draft: DraftEvent, pending: _Pending, actor: Actor) -> list[ItemError]:
        """The item refusals of one new event (a lifecycle event changes ``pending`` or refuses the request)."""
        if draft.type.kind == "lifecycle":
            self._apply_lifecycle(draft, pending.campaigns)
            return []
        campaign = self._campaign_takes_events(draft, pending)
        if campaign is None:
            return [_problem(draft, ("campaign",), f"campaign {draft.campaign} has not been opened")]
        return [*self._within_window(draft, campaign), *self._in_region_list(draft, campaign),
                *self._target_applies(draft, pending, actor)]

    @staticmethod
    def _campaign_takes_events(draft: DraftEvent, pending: _Pending) -> Campaign | None:
        """The draft's campaign (None when never opened); a closed campaign refuses the request."""
        campaign = pending.campaigns.get(draft.campaign)
        if campaign is not None and campaign.status == "closed":
            raise CampaignClosedError(campaign.id)
        return campaign

    def _within_window(self, draft: DraftEvent, campaign: Campaign) -> Iterator[ItemError]:
        """occurred_at lies in the campaign's window (China Standard Time days) and not in the future."""
        start, end = campaign.window
        if not start <= draft.occurred_at < end:
            yield _problem(draft, ("occurred_at",), f"occurred_at is outside campaign {campaign.id}'s window "
                                                    f"{campaign.starts_on}..{campaign.ends_on} (China Standard Time)")
        elif draft.occurred_at > self._now + self._skew:
            yield _problem(draft, ("occurred_at",), "occurred_at is in the future")

    def _in_region_list(self, draft: DraftEvent, campaign: Campaign) -> Iterator[ItemError]:
        """A prefecture or county code is in the campaign year's imported region list (when one is loaded)."""
        codes = self._state.region_lists.get(campaign.starts_on.year)
        if codes is not None and level_of(draft.region) in ("prefecture", "county") and draft.region not in codes:
            yield _problem(draft, ("region",), f"{draft.region} is not in the {campaign.starts_on.year} region list")

    def _target_applies(self, draft: DraftEvent, pending: _Pending, actor: Actor) -> Iterator[ItemError]:
        """A correction or retraction names a live fact of its own campaign, inside the key's scope.

        A retraction that passes is noted in ``pending``, so a second one in the group is refused.
        """
        target_id = draft.target
        if target_id is None:
            return
        target = self._state.known(target_id) or pending.seen.get(target_id)
        field_name, verb = ("corrects", "correct") if draft.type.kind == "correction" else ("retracts", "retract")
        if target is None or CATALOGUE[target.type].kind != "fact":
            yield _problem(draft, ("data", field_name), f"no fact event {target_id} to {verb}")
        elif target.retracted or target_id in pending.retracted:
            yield _problem(draft, ("data", field_name), f"event {target_id} has been retracted")
        elif target.campaign != draft.campaign:
            yield _problem(draft, ("campaign",), f"event {target_id} belongs to campaign {target.campaign}")
        elif actor.scope is not None and not is_within(target.region, actor.scope):
            raise OutOfScope(f"event {target_id} (item {draft.index}) is in region {target.region}, "
                             f"outside this key's scope {actor.scope}")
        elif draft.type.kind == "retraction":
            pending.retracted.add(target_id)

    def _apply_lifecycle(self, draft: DraftEvent, campaigns: dict[str, Campaign]) -> None:
        data = draft.data
        current = campaigns.get(data["id"])
        if data["id"] != draft.campaign or draft.region != NATION:
            raise CampaignConflict(f"{draft.type.name} must name campaign {data['id']} in its envelope "
                                   f"and region {NATION}")
        if draft.type.name == "campaign_opened":
            if current is not None:
                raise CampaignConflict(f"campaign {current.id} has already been opened")
            campaigns[data["id"]] = Campaign(
                data["id"], date.fromisoformat(data["starts_on"]), date.fromisoformat(data["ends_on"]), "open")
        elif current is None:
            raise CampaignConflict(f"campaign {data['id']} has not been opened")
        elif draft.type.name == "campaign_closed":
            if current.status == "closed":
                raise CampaignConflict(f"campaign {current.id} is already closed")
            campaigns[current.id] = replace(current, status="closed")
        else:
            if current.status == "open":
                raise CampaignConflict(f"campaign {current.id} is open; only a closed campaign can reopen")
            campaigns[current.id] = replace(current, status="open")

    def _accept(self, request: AppendRequest, fresh: list[tuple[DraftEvent, dict[str, Any], RecordParts]],
                statuses: list[tuple[str, ItemStatus, int | None]], campaigns: dict[str, Campaign],
                retracted: set[str]) -> Accepted:
        state = self._state
        position, prev = state.head_position, state.head_hash
        rows: list[EventRow] = []
        appended = state.appended
        recorded_at, now = self._recorded_at, self._now
        key_id, request_id = request.actor.key_id, request.request_id
        for draft, _, parts in fresh:
            position += 1
            link = chain_hash_of_parts(prev, parts, position, recorded_at)
            target = draft.target if draft.type.kind in ("correction", "retraction") else None
            rows.append(EventRow(position, draft.event_id, draft.type.name, draft.schema_version, draft.campaign,
                                 draft.region, draft.occurred_at, now, key_id, request_id, target,
                                 parts.data, parts.content_hash, prev, link))
            prev = link
            appended[draft.event_id] = (draft, position, parts.content_hash)
        for target_id in retracted:
            known = state.known(target_id)
            assert known is not None  # _target_applies found it
            state.events[target_id] = replace(known, retracted=True)
        state.campaigns = campaigns
        state.head_position, state.head_hash = position, prev
        results = [ItemResult(event_id, status, pos if pos is not None else appended[event_id][1])
                   for event_id, status, pos in statuses]
        return Accepted(results, rows, [parts for _, _, parts in fresh])
