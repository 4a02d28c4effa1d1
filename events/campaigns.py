"""A campaign's history folded from its lifecycle events (opened, closed, reopened). Pure."""

from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Any, Literal

from events.decide import Campaign
from events.drafts import DraftEvent
from events.intake import read_events
from events.regions import NATION


@dataclass(frozen=True, slots=True)
class CampaignHistory:
    """Everything the log says about one campaign's lifecycle."""

    id: str
    theme: str
    starts_on: date
    ends_on: date
    status: Literal["open", "closed"]
    opened_event_id: str
    opened_position: int
    last_event_id: str
    last_position: int
    closed_at: tuple[int, ...] = field(default=())
    """Positions of every campaign_closed event, oldest first; the last one freezes the final figures."""

    @property
    def state(self) -> Campaign:
        """The part the append decision needs."""
        return Campaign(self.id, self.starts_on, self.ends_on, self.status)


def fold_lifecycle(events: list[tuple[int, str, str, dict[str, Any]]]) -> CampaignHistory | None:
    """Fold (position, event_id, type, data) lifecycle events of one campaign, oldest first."""
    history: CampaignHistory | None = None
    for position, event_id, type_, data in events:
        if type_ == "campaign_opened":
            history = CampaignHistory(data["id"], data["theme"], date.fromisoformat(data["starts_on"]),
                                      date.fromisoformat(data["ends_on"]), "open", event_id, position,
                                      event_id, position)
        elif history is not None and type_ == "campaign_closed":
            history = replace(history, status="closed", last_event_id=event_id, last_position=position,
                              closed_at=(*history.closed_at, position))
        elif history is not None and type_ == "campaign_reopened":
            history = replace(history, status="open", last_event_id=event_id, last_position=position)
    return history


def lifecycle_draft(type_: str, campaign_id: str, data: dict[str, Any], *, event_id: str,
                    now: datetime) -> DraftEvent:
    """The validated draft of a lifecycle event, as the admin endpoints and the CLI send it."""
    envelope = {"event_id": event_id, "type": type_, "schema_version": 1, "campaign": campaign_id,
                "region": NATION, "occurred_at": now.isoformat(), "data": data}
    return read_events(envelope)[0]
