"""Domain errors. The HTTP layer maps each to one problem type in a single place."""

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class ItemError:
    """What is wrong with one item of a request: its index, its event_id, where, and why."""

    index: int | None
    event_id: str | None
    loc: tuple[str | int, ...]
    msg: str


class DomainError(Exception):
    """Base of every error the domain raises on purpose."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class MalformedRequest(DomainError):
    """The body is not the JSON the contract describes (bad syntax, duplicate keys, wrong shape)."""


class BatchTooLarge(DomainError):
    """More events in one request than the contract allows."""


@dataclass
class ValidationFailed(DomainError):
    """One or more items are invalid; nothing of the request is stored."""

    errors: list[ItemError] = field(default_factory=list)

    def __post_init__(self) -> None:
        DomainError.__init__(self, validation_detail(self.errors))


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def validation_detail(errors: list[ItemError]) -> str:
    """What a person needs first: how many events are invalid (not how many errors), and the first reason."""
    if not errors:
        return "the request is invalid; nothing was stored"
    first = errors[0]
    where = ".".join(str(part) for part in first.loc)
    reason = f"{where}: {first.msg}" if where else first.msg
    more = f" (and {_plural(len(errors) - 1, 'more error')})" if len(errors) > 1 else ""
    events = {e.index for e in errors if e.index is not None}
    if not events:  # a request body that is not a batch of events (a campaign, a review)
        return f"invalid request: {reason}{more}; nothing was stored"
    count = f"{_plural(len(events), 'invalid event')} ({_plural(len(errors), 'error')})"
    return f"{count}; nothing was stored. First: item {first.index} {reason}"


class EventIdConflict(DomainError):
    """An event_id already names different content; nothing of the request is stored."""

    def __init__(self, event_id: str, index: int) -> None:
        super().__init__(f"event_id {event_id} (item {index}) was already recorded with different content")
        self.event_id = event_id
        self.index = index


class CampaignClosedError(DomainError):
    """The campaign is closed: its figures are frozen until an admin reopens it."""

    def __init__(self, campaign: str) -> None:
        super().__init__(f"campaign {campaign} is closed; reopen it before adding events")
        self.campaign = campaign


class CampaignConflict(DomainError):
    """A lifecycle change that does not fit the campaign's state (open twice, close a closed one)."""


class OutOfScope(DomainError):
    """The key may not act on this region."""


class KeyRevoked(DomainError):
    """The key that sent the request was revoked (checked again under the append lock)."""


class NotFound(DomainError):
    """The thing asked for does not exist."""


class StoreUnavailable(DomainError):
    """The database cannot be reached right now; the request may be retried."""
