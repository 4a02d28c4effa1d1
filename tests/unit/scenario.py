"""Building log states, requests and recorded chains for the pure write-model tests."""

from datetime import UTC, date, datetime
from typing import Any

from events.canonical import GENESIS_HASH
from events.decide import Accepted, Actor, AppendRequest, Campaign, GroupDecider, LogState
from events.drafts import DraftEvent
from events.intake import read_events
from events.records import RecordedEvent
from tests.factories import SAMPLE_DATA, event

NOW = datetime(2017, 10, 15, 4, 0, tzinfo=UTC)  # reports may arrive after the month is over
CAMPAIGN_2017 = Campaign("2017", date(2017, 9, 1), date(2017, 9, 30), "open")
REPORTER = Actor("key-zhejiang", "reporter", "330000")
ADMIN = Actor("key-admin", "admin")


def fresh_state(*campaigns: Campaign, head_position: int = 0, head_hash: bytes = GENESIS_HASH) -> LogState:
    """A log state holding the given campaigns (the 2017 one, open, by default) and no events."""
    chosen = campaigns or (CAMPAIGN_2017,)
    return LogState(head_position, head_hash, campaigns={c.id: c for c in chosen})


def drafts(*envelopes: dict[str, Any]) -> list[DraftEvent]:
    """Envelopes validated by intake, as the writer receives them."""
    return read_events({"events": list(envelopes)})


def request(*envelopes: dict[str, Any], actor: Actor = REPORTER, request_id: str = "req-1") -> AppendRequest:
    return AppendRequest(drafts(*envelopes), actor, request_id)


def accept(decider: GroupDecider, *envelopes: dict[str, Any], actor: Actor = REPORTER,
           request_id: str = "req-1") -> Accepted:
    """Decide one request and insist it was accepted."""
    outcome = decider.decide(request(*envelopes, actor=actor, request_id=request_id))
    assert isinstance(outcome, Accepted), outcome
    return outcome


def lifecycle(type_: str, data: dict[str, Any], *, campaign: str = "2018", region: str = "000000",
              occurred_at: str = "2017-10-15T12:00:00+08:00", event_id: str | None = None) -> dict[str, Any]:
    """An admin's campaign_opened / campaign_closed / campaign_reopened envelope."""
    return event("raid_conducted", campaign=campaign, region=region, occurred_at=occurred_at,
                 event_id=event_id) | {"type": type_, "data": data}


def opened(campaign: str = "2018", starts_on: str = "2018-09-01", ends_on: str = "2018-09-30",
           **envelope: Any) -> dict[str, Any]:
    return lifecycle("campaign_opened", {"id": campaign, "theme": "质量月", "starts_on": starts_on,
                                         "ends_on": ends_on}, campaign=campaign, **envelope)


def closed(campaign: str = "2017", **envelope: Any) -> dict[str, Any]:
    return lifecycle("campaign_closed", {"id": campaign, "note": "数据定稿"}, campaign=campaign, **envelope)


def reopened(campaign: str = "2017", **envelope: Any) -> dict[str, Any]:
    return lifecycle("campaign_reopened", {"id": campaign, "reason": "补报"}, campaign=campaign, **envelope)


def recorded_chain(length: int) -> list[RecordedEvent]:
    """A realistic log of ``length`` events from position 1, recorded over several requests."""
    decider = GroupDecider(fresh_state(), NOW)
    records: list[RecordedEvent] = []
    types = list(SAMPLE_DATA)
    for n in range(length):
        sent = event(types[n % len(types)], occurred_at=f"2017-09-{n % 30 + 1:02d}T10:00:00+08:00")
        records.extend(accept(decider, sent, request_id=f"req-{n}").records)
    return records
