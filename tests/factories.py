"""Building valid events for tests."""

import uuid
from typing import Any

CAMPAIGN = {"id": "2017", "theme": "全面提升质量 推动高质量发展", "starts_on": "2017-09-01", "ends_on": "2017-09-30"}

SAMPLE_DATA: dict[str, dict[str, Any]] = {
    "raid_conducted": {"dens_busted": 3, "personnel": 120, "vehicles": 14, "cases": 2,
                       "seized_value_yuan": "152000.50", "category": "liquor"},
    "goods_destroyed": {"destroyed_value_yuan": "80000.00", "category": "liquor"},
    "inspection_completed": {"batches_sampled": 40, "batches_passed": 37, "enterprises": 12, "category": "mooncake"},
    "publicity_held": {"participants": 2000, "quality_workers": 35, "booths": 12, "consultations": 140},
    "materials_distributed": {"copies": 5000},
    "media_reported": {"reports": 6, "channel": "television"},
    "lab_open_day_held": {"labs": 3, "visitors": 420},
    "pledge_signed": {"enterprises": 25},
    "brand_awarded": {"enterprises": 4, "products": 9},
}
FACT_TYPES = tuple(SAMPLE_DATA)


def event(type_: str = "raid_conducted", *, region: str = "330102", campaign: str = "2017",
          occurred_at: str = "2017-09-08T10:00:00+08:00", data: dict[str, Any] | None = None,
          event_id: str | None = None) -> dict[str, Any]:
    """A valid event envelope (override any part)."""
    return {"event_id": event_id or str(uuid.uuid4()), "type": type_, "schema_version": 1, "campaign": campaign,
            "region": region, "occurred_at": occurred_at,
            "data": dict(SAMPLE_DATA[type_]) if data is None else data}


def correction(target: str, replacement: dict[str, Any], **envelope: Any) -> dict[str, Any]:
    """An event_corrected envelope replacing ``target``'s payload."""
    return event("raid_conducted", **envelope) | {"type": "event_corrected",
                                                  "data": {"corrects": target, "replacement": replacement}}


def retraction(target: str, reason: str = "reported twice", **envelope: Any) -> dict[str, Any]:
    """An event_retracted envelope."""
    return event("raid_conducted", **envelope) | {"type": "event_retracted",
                                                  "data": {"retracts": target, "reason": reason}}
