"""Events a regional system gets wrong, one per kind, each of which the service must refuse. Pure.

All but ``conflicting_resend`` are refused 422 (by intake, or by the log: a date outside the window,
a correction of nothing, a replacement that is not a valid payload); ``conflicting_resend`` reuses an
earlier fact's event_id with different content and is refused 409.
"""

import random
from datetime import date, timedelta
from typing import Any, Final

from services.simulate.budget import INVALID_KINDS
from services.simulate.payloads import DRAW, envelope

__all__ = ["INVALID_KINDS", "NEEDS_AN_EARLIER_FACT", "expected_status", "invalid_event"]
NEEDS_AN_EARLIER_FACT: Final = frozenset({"bad_replacement", "conflicting_resend"})


def expected_status(kind: str) -> int:
    """The status the service must answer for an invalid event of ``kind``."""
    return 409 if kind == "conflicting_resend" else 422


def invalid_event(kind: str, rng: random.Random, *, campaign: str, region: str, occurred_at: str, ends_on: date,
                  ids: tuple[str, str], earlier: dict[str, Any] | None = None) -> dict[str, Any]:
    """An event of ``kind`` with event_id ``ids[0]`` (``ids[1]`` is an id never sent); ``earlier`` (an accepted
    fact) is needed by the kinds that refer to one."""
    new_id, unknown_id = ids
    type_, data = "raid_conducted", DRAW["raid_conducted"](rng, None)
    if kind == "negative_count":
        data["personnel"] = -rng.randint(1, 50)
    elif kind == "unknown_field":
        type_, data = "publicity_held", DRAW["publicity_held"](rng, None) | {"weather": "sunny"}
    elif kind == "outside_window":
        occurred_at = f"{ends_on + timedelta(days=3)}T10:00:00+08:00"
    elif kind == "money_precision":
        type_, data = "goods_destroyed", {"destroyed_value_yuan": "1234.567", "category": "liquor"}
    elif kind == "passed_exceeds_sampled":
        type_, data = "inspection_completed", DRAW["inspection_completed"](rng, None)
        data["batches_passed"] = data["batches_sampled"] + 3
    elif kind == "unknown_type":
        type_ = "raid_planned"
    elif kind == "bad_region":
        region = "990100"
    elif kind == "correction_of_unknown":
        type_, data = "event_corrected", {"corrects": unknown_id, "replacement": data}
    elif kind == "conflicting_resend":  # the same event_id with different content
        assert earlier is not None
        return earlier | {"occurred_at": earlier["occurred_at"].replace(":00+08:00", ":01+08:00")}
    elif kind == "bad_replacement":
        assert earlier is not None
        replacement = DRAW[earlier["type"]](rng, None)
        field, value = next((k, v) for k, v in replacement.items() if isinstance(v, int | str))
        replacement[field] = -1 if isinstance(value, int) else "12.345"
        return envelope(new_id, "event_corrected", campaign, earlier["region"], earlier["occurred_at"],
                        {"corrects": earlier["event_id"], "replacement": replacement})
    else:
        raise ValueError(f"no invalid event of kind {kind!r}")
    return envelope(new_id, type_, campaign, region, occurred_at, data)
