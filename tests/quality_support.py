"""A province built like a real one for the data-quality tests: Zhejiang's 2017 counties, skewed values.

Each county has its own size (log-normal across counties, as real ones differ by an order of magnitude)
and reports raids, inspections and publicity days through September; single reports vary around the
county's size. Seeded, so every run builds the same log.
"""

import math
import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from events.canonical import GENESIS_HASH
from events.records import RecordedEvent
from events.regions import level_of
from tests.shared_data import AREACODES

CST = timedelta(hours=8)


def zhejiang_counties() -> list[str]:
    """Zhejiang's county-level codes from the official 2017 list (../shared/data/areacodes)."""
    lines = (AREACODES / "2017.txt").read_text("utf-8").splitlines()
    codes = [line.split()[0] for line in lines if line.startswith("33")]
    return [c for c in codes if level_of(c) == "county"]


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


@dataclass
class LogBuilder:
    """Builds RecordedEvents in position order (the pure fold needs nothing else)."""

    rng: random.Random
    events: list[RecordedEvent]
    campaign: str = "2017"

    def add(self, type_: str, region: str, data: dict[str, Any], *, day: int = 10, event_id: str | None = None,
            late_days: float = 0.1, campaign: str | None = None, recorded_by: str = "key-zj") -> RecordedEvent:
        campaign = campaign or self.campaign
        occurred = datetime(int(campaign), 9, day, 2, 0, tzinfo=UTC)  # 10:00 China Standard Time
        record = RecordedEvent(len(self.events) + 1, event_id or _uuid(self.rng), type_, 1, campaign, region,
                               occurred, occurred + timedelta(days=late_days), recorded_by, "req", data, b"",
                               GENESIS_HASH, GENESIS_HASH)
        self.events.append(record)
        return record

    def correct(self, target: RecordedEvent, replacement: dict[str, Any]) -> RecordedEvent:
        return self.add("event_corrected", target.region, {"corrects": target.event_id, "replacement": replacement},
                        day=target.occurred_at.day, late_days=2)

    def retract(self, target: RecordedEvent) -> RecordedEvent:
        return self.add("event_retracted", target.region, {"retracts": target.event_id, "reason": "reported twice"},
                        day=target.occurred_at.day, late_days=2)

    def review(self, flag_id: str, region: str, verdict: str = "confirmed") -> RecordedEvent:
        return self.add("flag_reviewed", region, {"flag_id": flag_id, "verdict": verdict, "note": "已核实"},
                        late_days=3)


def _lognormal(rng: random.Random, mean: float, sigma: float) -> float:
    return mean * math.exp(sigma * rng.gauss() - sigma ** 2 / 2)


def raid(rng: random.Random, size: float) -> dict[str, Any]:
    """A raid of a county of ``size`` (1 = typical)."""
    return {"dens_busted": int(_lognormal(rng, 0.6 * size, 0.6) + rng.random()),
            "personnel": int(_lognormal(rng, 25 * size, 0.5) + rng.random()),
            "vehicles": int(_lognormal(rng, 4 * size, 0.5) + rng.random()),
            "cases": int(_lognormal(rng, 1.2 * size, 0.6) + rng.random()),
            "seized_value_yuan": f"{_lognormal(rng, 80000 * size, 0.8):.2f}", "category": "liquor"}


def publicity(rng: random.Random, size: float) -> dict[str, Any]:
    return {"participants": int(_lognormal(rng, 1500 * size, 0.5)), "quality_workers": int(_lognormal(rng, 30, 0.4)),
            "booths": int(_lognormal(rng, 8, 0.4) + rng.random()), "consultations": int(_lognormal(rng, 90, 0.5))}


def inspection(rng: random.Random, size: float) -> dict[str, Any]:
    sampled = max(1, int(_lognormal(rng, 30 * size, 0.5)))
    return {"batches_sampled": sampled, "batches_passed": int(sampled * 0.9), "enterprises": max(1, sampled // 2),
            "category": "mooncake"}


def province_month(seed: int = 15, *, reports_per_county: int = 12, campaign: str = "2017") -> LogBuilder:
    """A clean September of Zhejiang's counties: raids, inspections and publicity days, day by day."""
    rng = random.Random(seed)
    builder = LogBuilder(rng, [], campaign)
    counties = zhejiang_counties()
    sizes = {c: _lognormal(rng, 1.0, 0.9) for c in counties}
    for day in range(1, 31):
        for county in counties:
            if rng.random() > reports_per_county / 30:
                continue
            kind = rng.random()
            if kind < 0.5:
                builder.add("raid_conducted", county, raid(rng, sizes[county]), day=day)
            elif kind < 0.8:
                builder.add("inspection_completed", county, inspection(rng, sizes[county]), day=day)
            else:
                builder.add("publicity_held", county, publicity(rng, sizes[county]), day=day)
    return builder
