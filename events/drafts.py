"""A statelessly valid event (``DraftEvent``) and the envelope's timestamp type. Pure.

Shared by the two ways a request's events are validated: item by item (``events.intake``) and the whole
list in one call (``events.batch_intake``).
"""

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Final

from pydantic import AfterValidator, AwareDatetime, BeforeValidator

from events.catalogue import EventType

RFC3339_DATE: Final = r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ]"
"""How an occurred_at must begin (a date), so pydantic cannot read numbers or digit strings as Unix times."""
_STARTS_WITH_DATE = re.compile(RFC3339_DATE)


def _require_text_timestamp(value: Any) -> Any:
    # pydantic would also read numbers, and strings of digits, as Unix times.
    if not isinstance(value, str) or not _STARTS_WITH_DATE.match(value):
        raise ValueError("must be an RFC 3339 date and time with its UTC offset, such as 2017-09-08T10:00:00+08:00")
    return value


def _in_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError as exc:  # e.g. 0001-01-01T00:00:00+08:00 is before the first UTC instant
        raise ValueError("is out of range") from exc


OccurredAt = Annotated[AwareDatetime, BeforeValidator(_require_text_timestamp), AfterValidator(_in_utc)]
"""When the event happened: RFC 3339 text with its UTC offset, held in UTC."""


@dataclass(slots=True)  # not frozen (nothing changes one): a frozen __init__ costs ~2.5× more, one is made per event
class DraftEvent:
    """A statelessly valid event; ``data`` is normalised JSON except a correction's replacement."""

    index: int
    event_id: str
    type: EventType
    schema_version: int
    campaign: str
    region: str
    occurred_at: datetime
    data: dict[str, Any]

    @property
    def target(self) -> str | None:
        """The event a correction or retraction refers to."""
        value = self.data.get("corrects") or self.data.get("retracts")
        return str(value) if value is not None else None
