"""The fold: what each event does to the figures. Pure, no I/O.

Every consumer (the live projector, ``rebuild``, ``at_position`` and offline ``replay``)
turns events into figures through this module, so there is one definition of what an
event means. A fact contributes each metric its type declares (events.catalogue) to its
own region and every ancestor, for its day in China Standard Time; a correction swaps the
fact's effective contribution for the replacement's; a retraction removes it.
"""

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Set
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from events.catalogue import CATALOGUE
from events.decide import CHINA_STANDARD_TIME
from events.records import RecordedEvent
from events.regions import ancestors_and_self, is_within, level_of, parent_of
from events.upcasting import upcast

Value = int | Decimal


class FoldError(Exception):
    """An event the fold cannot apply (the projector stops on it, loudly)."""

    def __init__(self, position: int, reason: str) -> None:
        super().__init__(f"cannot apply event at position {position}: {reason}")
        self.position = position


@dataclass(frozen=True, slots=True)
class Fact:
    """A fact's effective form: the original, or its latest correction."""

    event_id: str
    type: str
    campaign: str
    region: str
    day: date
    data: Mapping[str, Any]
    position: int
    """Position of the original event."""
    changed_at: int
    """Position of the event that made it what it is (the original or its latest correction)."""


def local_day(moment: datetime) -> date:
    """The calendar day of an instant in China Standard Time."""
    return moment.astimezone(CHINA_STANDARD_TIME).date()


def metric_value(kind: str, raw: Any) -> Value:
    """A payload value as a number: money (a two-decimal string) as Decimal, counts as int."""
    return Decimal(raw) if kind == "money" else int(raw)


def contributions(fact: Fact) -> Iterator[tuple[str, Value, str | None]]:
    """(metric, value, category) for every metric the fact's type declares."""
    event_type = CATALOGUE[fact.type]
    category = fact.data.get(event_type.category_field) if event_type.category_field else None
    for metric in event_type.metrics:
        yield metric.name, metric_value(metric.kind, fact.data[metric.field]), category


def fact_of(event: RecordedEvent) -> Fact:
    """The fact an original fact event states."""
    _, data = upcast(event.type, event.schema_version, event.data)
    return Fact(event.event_id, event.type, event.campaign, event.region, local_day(event.occurred_at), data,
                event.position, event.position)


def corrected(fact: Fact, correction: RecordedEvent) -> Fact:
    """The fact as a correction restates it (region and day come from the correction's envelope)."""
    version = CATALOGUE[fact.type].latest_version
    _, data = upcast(fact.type, version, correction.data["replacement"])
    return Fact(fact.event_id, fact.type, fact.campaign, correction.region, local_day(correction.occurred_at), data,
                fact.position, correction.position)


def effective_fact(original: RecordedEvent, later: Iterable[RecordedEvent]) -> Fact | None:
    """A fact after the corrections and retractions that refer to it (in position order); None if retracted."""
    fact: Fact | None = fact_of(original)
    for event in later:
        if fact is None:
            break
        if event.type == "event_corrected":
            fact = corrected(fact, event)
        elif event.type == "event_retracted":
            fact = None
    return fact


class Deltas:
    """Changes to the read tables, keyed as the tables are. Without ``daily``, the per-day figures are left out
    (a reader that shows no series: figures at a past position); everything else is the same."""

    __slots__ = ("categories", "daily", "reports", "totals", "with_daily")

    def __init__(self, *, daily: bool = True) -> None:
        self.with_daily = daily
        self.totals: defaultdict[tuple[str, str, str], Value] = defaultdict(int)
        self.daily: defaultdict[tuple[str, str, str, date], Value] = defaultdict(int)
        self.categories: defaultdict[tuple[str, str, str, str], Value] = defaultdict(int)
        self.reports: defaultdict[tuple[str, str, date], int] = defaultdict(int)

    def add(self, fact: Fact, sign: int) -> None:
        """Add (sign=1) or remove (sign=-1) a fact's contribution at its region and every ancestor."""
        regions = ancestors_and_self(fact.region)
        values = list(contributions(fact))
        for region in regions:
            self.reports[(fact.campaign, region, fact.day)] += sign
            for metric, value, category in values:
                self.totals[(fact.campaign, region, metric)] += sign * value
                if self.with_daily:
                    self.daily[(fact.campaign, region, metric, fact.day)] += sign * value
                if category is not None:
                    self.categories[(fact.campaign, region, metric, category)] += sign * value

    def __bool__(self) -> bool:
        return bool(self.reports)

    def merge(self, other: "Deltas", sign: int = 1) -> None:
        """Add (or with sign=-1 subtract) another set of deltas into this one."""
        for mine, theirs in ((self.totals, other.totals), (self.daily, other.daily),
                             (self.categories, other.categories)):
            for key, value in theirs.items():
                mine[key] += sign * value  # type: ignore[index]
        for key_r, count in other.reports.items():
            self.reports[key_r] += sign * count


class Fold:
    """Applies events in position order, accumulating Deltas.

    ``known`` must hold the effective fact (or None when retracted) of every event that a
    correction or retraction in the coming events refers to, as of just before them, unless
    that original is itself among the coming events.
    """

    def __init__(self, known: Mapping[str, Fact | None] | None = None, *,
                 remember: Set[str] | None = None, daily: bool = True) -> None:
        self.deltas = Deltas(daily=daily)
        self._facts: dict[str, Fact | None] = dict(known or {})
        # When the caller knows which facts will be corrected or retracted (a whole-file replay),
        # only those need remembering; memory then stays proportional to the corrections.
        self._remember = remember

    def apply(self, event: RecordedEvent) -> None:
        """Fold one event (events must come in position order)."""
        kind = CATALOGUE[event.type].kind if event.type in CATALOGUE else None
        if kind is None:
            raise FoldError(event.position, f"unknown event type {event.type!r}")
        if kind == "fact":
            fact = fact_of(event)
            if self._remember is None or event.event_id in self._remember:
                self._facts[event.event_id] = fact
            self.deltas.add(fact, 1)
        elif kind in ("correction", "retraction"):
            target = event.target
            if target is None or target not in self._facts:
                raise FoldError(event.position, f"the event it refers to ({target}) is unknown to the fold")
            before = self._facts[target]
            if before is None:
                raise FoldError(event.position, f"event {target} was already retracted")
            self.deltas.add(before, -1)
            after = corrected(before, event) if kind == "correction" else None
            if after is not None:
                self.deltas.add(after, 1)
            self._facts[target] = after

    def learn(self, known: Mapping[str, Fact | None]) -> None:
        """Add effective facts the coming events refer to (as ``known`` in the constructor), for folding a long
        range page by page into one set of deltas."""
        for event_id, fact in known.items():
            self._facts.setdefault(event_id, fact)

    def fact(self, event_id: str) -> Fact | None:
        """The effective fact the fold currently holds for an event id (None if retracted or unknown)."""
        return self._facts.get(event_id)


def region_view(deltas: Deltas, campaign: str, region: str) -> tuple[dict[str, Decimal], dict[str, dict[str, Decimal]]]:
    """(metric → total, metric → category → value) of one region out of folded deltas."""
    totals = {m: Decimal(v) for (c, r, m), v in deltas.totals.items() if c == campaign and r == region}
    categories: dict[str, dict[str, Decimal]] = {}
    for (c, r, m, category), v in deltas.categories.items():
        if c == campaign and r == region:
            categories.setdefault(m, {})[category] = Decimal(v)
    return totals, categories


def children_view(deltas: Deltas, campaign: str, region: str, level: str | None) -> dict[str, dict[str, Decimal]]:
    """region → metric → total for the direct children of ``region`` (or every region of ``level`` within it)."""
    out: dict[str, dict[str, Decimal]] = {}
    for (c, r, m), v in deltas.totals.items():
        if c != campaign or r == region:
            continue
        wanted = (level_of(r) == level and is_within(r, region)) if level else parent_of(r) == region
        if wanted:
            out.setdefault(r, {})[m] = Decimal(v)
    return out
