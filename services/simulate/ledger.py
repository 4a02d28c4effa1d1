"""The figures a simulated month should produce, kept by the simulator itself.

Deliberately independent of ``projections``: it applies its own corrections and retractions to its
own records and skips the submissions it expects the service to refuse, so a dashboard that agrees
with it agrees with an implementation that shares no code with the projector. Pure.
"""

from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Final

from events.catalogue import CATALOGUE, METRICS
from events.regions import EXPECTED_PROVINCES, PROVINCES
from services.simulate.plan import Submission

Figure = int | str
# type → [(metric, payload field, is money)], and the field holding the category, if any.
_FIELDS: Final = {t.name: [(m.name, m.field, m.kind == "money") for m in t.metrics]
                  for t in CATALOGUE.values() if t.kind == "fact"}
_CATEGORY: Final = {t.name: t.category_field for t in CATALOGUE.values() if t.kind == "fact"}


def cents(text: str) -> int:
    """A two-decimal money string as an exact number of fen."""
    whole, _, fraction = text.partition(".")
    return int(whole) * 100 + int(fraction.ljust(2, "0")[:2])


def ratio(numerator: int, denominator: int) -> str | None:
    """numerator ÷ denominator as the API shows ratios: exact within 10 decimals, else half-even to 10."""
    if denominator == 0:
        return None
    scaled, rest = divmod(numerator * 10**10, denominator)
    if 2 * rest > denominator or (2 * rest == denominator and scaled % 2):
        scaled += 1
    whole, fraction = divmod(scaled, 10**10)
    digits = f"{fraction:010d}".rstrip("0")
    return f"{whole}.{digits}" if digits else str(whole)


@dataclass(frozen=True, slots=True)
class _Fact:
    type: str
    region: str
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Expected:
    """What the dashboard should show: national and per-province figures (money as strings), pass rates."""

    national: dict[str, Figure]
    provinces: dict[str, dict[str, Figure]]
    pass_rate: str | None
    pass_rate_by_category: dict[str, str | None]
    facts: int


class Ledger:
    """Effective facts of everything sent, folded into per-province totals (money in fen)."""

    def __init__(self) -> None:
        self._totals: defaultdict[str, defaultdict[str, int]] = defaultdict(lambda: defaultdict(int))
        self._categories: defaultdict[tuple[str, str], int] = defaultdict(int)
        self._tracked: dict[str, _Fact] = {}
        self.facts = 0

    def record(self, submission: Submission) -> None:
        """Account for a submission the service should accept; one it should refuse changes nothing."""
        if submission.expect_status is not None:
            return
        for event, kind in zip(submission.events, submission.kinds, strict=True):
            if kind in ("fact", "tracked"):
                fact = _Fact(event["type"], event["region"], event["data"])
                self._apply(fact, 1)
                if kind == "tracked":
                    self._tracked[event["event_id"]] = fact
            elif kind == "correction":
                before = self._tracked[event["data"]["corrects"]]
                after = _Fact(before.type, event["region"], event["data"]["replacement"])
                self._apply(before, -1)
                self._apply(after, 1)
                self._tracked[event["data"]["corrects"]] = after
            elif kind == "retraction":
                self._apply(self._tracked.pop(event["data"]["retracts"]), -1)

    def _apply(self, fact: _Fact, sign: int) -> None:
        totals = self._totals[fact.region[:2] + "0000"]
        category_field = _CATEGORY[fact.type]
        category = fact.data[category_field] if category_field else None
        for metric, field, money in _FIELDS[fact.type]:
            value = sign * (cents(fact.data[field]) if money else fact.data[field])
            totals[metric] += value
            if category is not None:
                self._categories[(metric, category)] += value
        self.facts += sign

    def expected(self) -> Expected:
        """The figures as the API shows them: every metric, every expected province (zeros included)."""
        national: defaultdict[str, int] = defaultdict(int)
        provinces: dict[str, dict[str, Figure]] = {}
        for province in sorted(EXPECTED_PROVINCES | set(self._totals)):
            totals: dict[str, int] = self._totals.get(province, {})
            for metric, value in totals.items():
                national[metric] += value
            provinces[province] = {m: _shown(m, totals.get(m, 0)) for m in METRICS}
        by_category = {c: ratio(self._categories[("batches_passed", c)], sampled)
                       for (metric, c), sampled in sorted(self._categories.items()) if metric == "batches_sampled"}
        return Expected({m: _shown(m, national[m]) for m in METRICS}, provinces,
                        ratio(national["batches_passed"], national["batches_sampled"]), by_category, self.facts)


def _shown(metric: str, value: int) -> Figure:
    if METRICS[metric].kind == "money":
        sign = "-" if value < 0 else ""
        return f"{sign}{abs(value) // 100}.{abs(value) % 100:02d}"
    return value


def province_name(code: str) -> str:
    """The province's name for a table."""
    return PROVINCES.get(code, code)
