"""A simulated month as a deterministic stream of submissions (batches of events). Pure: no I/O.

The same spec (and seed) always gives the same events, event_ids included. Facts come day by day:
every expected province reports on each of its reporting days (a few provinces miss a few days),
the rest of a day's reports fall on provinces by size and on their sampled prefectures and counties.
Some facts are later corrected (values, and sometimes region or day), corrected twice, retracted,
or resent unchanged; a few invalid events and one whole batch resent are mixed in. A submission
that refers to earlier events names, in ``after``, the submissions that must be answered first, so
a sender may run submissions concurrently and the log still gets them in a meaningful order.
"""

import heapq
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from itertools import accumulate
from typing import Any, Final, Literal

from services.simulate.budget import Budget
from services.simulate.invalid import INVALID_KINDS, NEEDS_AN_EARLIER_FACT, expected_status, invalid_event
from services.simulate.payloads import DRAW, Payload, envelope, weighted
from services.simulate.profile import DEFAULT_EVENTS, FACT_PROFILES, PROVINCE_WEIGHTS
from services.simulate.regionsample import ProvinceSample, sample_regions

Kind = Literal["fact", "tracked", "correction", "retraction", "resend", "invalid"]
"""What an item of a submission is: a fact (``tracked`` when corrections or a retraction will follow),
a correction, a retraction, an unchanged resend of an earlier event, or an event the service must refuse."""
Action = Literal["correct", "retract", "resend"]

_TYPES: Final = tuple(p.name for p in FACT_PROFILES)
_TYPE_CUM: Final = tuple(accumulate(p.share for p in FACT_PROFILES))
_CATEGORY_FIELD: Final = {"raid_conducted": "category", "goods_destroyed": "category",
                          "inspection_completed": "category", "media_reported": "channel"}
_IN_THIS_BATCH: Final = -1
_UUID_KEEP: Final = ~((0xF000 << 64) | (0xC000 << 48)) & ((1 << 128) - 1)
_UUID_SET: Final = (0x4000 << 64) | (0x8000 << 48)  # version 4, RFC 4122 variant
_PLANS: Final[dict[str, tuple[Action, ...]]] = {
    "once": ("correct",), "twice": ("correct", "correct"), "then_retracted": ("correct", "retract"),
    "retracted": ("retract",), "resent": ("resend",),
}
_REASONS: Final = ("reported twice", "entered under the wrong campaign activity", "test report sent by mistake")


@dataclass(frozen=True, slots=True)
class MonthSpec:
    """What to simulate: the campaign and its window; ``first_day`` and ``last_day`` narrow the days reported
    on (e.g. a window still running); ``mischief`` adds duplicates and invalid events; ``corrections`` adds
    corrections and retractions."""

    campaign: str
    starts_on: date
    ends_on: date
    seed: int = 1
    events: int = DEFAULT_EVENTS
    batch: int = 200
    region_codes: tuple[str, ...] | None = None
    first_day: date | None = None
    last_day: date | None = None
    mischief: bool = True
    corrections: bool = True


@dataclass(frozen=True, slots=True)
class Submission:
    """One POST /v1/events: its events (bare when ``bare``, else ``{"events": [...]}``), what each is,
    the submissions that must be answered before it, and for an invalid one the status it must get."""

    index: int
    events: list[dict[str, Any]]
    kinds: list[Kind]
    after: frozenset[int] = frozenset()
    bare: bool = False
    expect_status: int | None = None
    reason: str | None = None

    def body(self) -> dict[str, Any]:
        """The JSON body to post."""
        return self.events[0] if self.bare else {"events": self.events}


@dataclass(slots=True)
class _Tracked:
    """A fact some later submission refers to, as it currently stands."""

    event: dict[str, Any]
    region: str
    day: int
    occurred_at: str
    data: Payload
    pending: int


@dataclass(slots=True)
class _Batch:
    events: list[dict[str, Any]] = field(default_factory=list)
    kinds: list[Kind] = field(default_factory=list)
    after: set[int] = field(default_factory=set)
    targets: list[str] = field(default_factory=list)


class _Month:
    def __init__(self, spec: MonthSpec) -> None:
        first = max(spec.starts_on, spec.first_day) if spec.first_day else spec.starts_on
        last = min(spec.ends_on, spec.last_day) if spec.last_day else spec.ends_on
        if last < first:
            raise ValueError(f"no day of {first}..{spec.ends_on} can be reported (yet)")
        if spec.events < 1 or spec.batch < 1:
            raise ValueError("events and batch must be positive")
        self.spec = spec
        # The campaign is part of the seed: event_ids of another campaign's month never collide with these.
        self.rng = random.Random(f"{spec.campaign}/{spec.seed}")
        self.regions: dict[str, ProvinceSample] = sample_regions(self.rng, spec.region_codes)
        self.days = [(first + timedelta(days=n)).isoformat() for n in range((last - first).days + 1)]
        self.budget = Budget.of(spec.events, spec.batch, mischief=spec.mischief, corrections=spec.corrections)
        self.missed = self._missed_days()
        self.roles = {name: getattr(self.budget, field_) for name, field_ in (
            ("once", "corrected_once"), ("twice", "corrected_twice"), ("then_retracted", "corrected_then_retracted"),
            ("retracted", "retracted"), ("resent", "resent"))}
        self.roles_left = sum(self.roles.values())
        self.index = 0
        self.emitted = 0
        self.batch = _Batch()
        self.tracked: dict[str, _Tracked] = {}
        self.where: dict[str, int] = {}
        self.due: list[tuple[int, int, Action, str]] = []
        self.sequence = 0
        self.last_fact: tuple[dict[str, Any], int] | None = None
        self.saved: Submission | None = None
        self.saved_due = 0
        self.invalid_sent = 0

    # --- the stream -----------------------------------------------------------------------------

    def submissions(self) -> Iterator[Submission]:
        facts = self.budget.facts
        first_invalid = min(self.spec.batch, max(0, facts - self.budget.invalid))
        invalid_at = set(self.rng.sample(range(first_invalid, facts), min(self.budget.invalid, facts - first_invalid)))
        number = 0
        for day, provinces in self._days(facts):
            for province in provinces:
                yield from self._follow_ups(until=self.emitted)
                self._fact(day, province, facts - number)
                number += 1
                yield from self._full()
                if number - 1 in invalid_at:
                    yield self._invalid()
                if self.saved is not None and self.emitted >= self.saved_due:
                    yield self._resend_saved()
        yield from self._follow_ups(until=None)
        if self.batch.events:
            yield self._flush()
        while self.invalid_sent < self.budget.invalid:
            yield self._invalid()
        if self.saved is not None:
            yield self._resend_saved()

    def _days(self, facts: int) -> Iterator[tuple[int, list[str]]]:
        base, extra = divmod(facts, len(self.days))
        for day in range(len(self.days)):
            count = base + (day < extra)
            reporting = [p for p in sorted(self.regions) if day not in self.missed[p]]
            self.rng.shuffle(reporting)
            chosen = reporting[:count]  # each reporting province at least once, when the day has enough reports
            cum = list(accumulate(PROVINCE_WEIGHTS.get(p, 1.0) for p in reporting))
            chosen += self.rng.choices(reporting, cum_weights=cum, k=count - len(chosen))
            self.rng.shuffle(chosen)
            yield day, chosen

    def _missed_days(self) -> dict[str, set[int]]:
        missed: dict[str, set[int]] = {p: set() for p in self.regions}
        if len(self.days) >= 8:
            for province in self.rng.sample(sorted(self.regions), min(4, len(self.regions))):
                missed[province] = set(self.rng.sample(range(1, len(self.days)), self.rng.randint(1, 3)))
        return missed

    # --- facts and what follows them ------------------------------------------------------------

    def _fact(self, day: int, province: str, remaining: int) -> None:
        rng = self.rng
        type_ = weighted(rng, _TYPES, _TYPE_CUM)
        region = self._region(province)
        occurred_at = self._time(day)
        data = DRAW[type_](rng, None)
        event = envelope(self._id(), type_, self.spec.campaign, region, occurred_at, data)
        role = self._role(remaining)
        if role is None:
            self._add(event, "fact", None)
            return
        plan = _PLANS[role]
        self._add(event, "fact" if role == "resent" else "tracked", None)
        self._track(event["event_id"])
        self.tracked[event["event_id"]] = _Tracked(event, region, day, occurred_at, data, len(plan))
        due = self.emitted + rng.randint(2 * self.spec.batch, 8 * self.spec.batch)
        for action in plan:
            heapq.heappush(self.due, (due, self.sequence, action, event["event_id"]))
            self.sequence += 1
            due += rng.randint(self.spec.batch, 4 * self.spec.batch)

    def _role(self, remaining: int) -> str | None:
        # Sequential sampling: every quota is met exactly, spread evenly over the month.
        if not self.roles_left:
            return None
        pick = int(self.rng.random() * remaining)
        for role, quota in self.roles.items():
            if pick < quota:
                self.roles[role] -= 1
                self.roles_left -= 1
                return role
            pick -= quota
        return None

    def _follow_ups(self, until: int | None) -> Iterator[Submission]:
        while self.due and (until is None or self.due[0][0] <= until):
            _, _, action, target = heapq.heappop(self.due)
            self._follow_up(action, target)
            yield from self._full()

    def _follow_up(self, action: Action, target: str) -> None:
        fact = self.tracked[target]
        depends_on = self.where[target]
        spec, rng = self.spec, self.rng
        if action == "resend":
            self._add(fact.event, "resend", depends_on)
        elif action == "correct":
            moved = rng.random()
            if moved < 0.2:
                fact.region = self._moved(fact.region)
                if fact.day in self.missed[fact.region[:2] + "0000"]:
                    fact.day, fact.occurred_at = self._reporting_time(fact.region)
            elif moved < 0.35:
                fact.day, fact.occurred_at = self._reporting_time(fact.region)
            kind_field = _CATEGORY_FIELD.get(fact.event["type"])
            fact.data = DRAW[fact.event["type"]](rng, fact.data[kind_field] if kind_field else None)
            self._add(envelope(self._id(), "event_corrected", spec.campaign, fact.region, fact.occurred_at,
                               {"corrects": target, "replacement": fact.data}), "correction", depends_on)
        else:
            self._add(envelope(self._id(), "event_retracted", spec.campaign, fact.region, fact.occurred_at,
                               {"retracts": target, "reason": rng.choice(_REASONS)}), "retraction", depends_on)
        fact.pending -= 1
        if fact.pending:
            self._track(target)
        else:
            del self.tracked[target], self.where[target]

    # --- invalid events and resent batches ------------------------------------------------------

    def _invalid(self) -> Submission:
        kind = INVALID_KINDS[self.invalid_sent % len(INVALID_KINDS)]
        self.invalid_sent += 1
        if kind in NEEDS_AN_EARLIER_FACT and self.last_fact is None:
            kind = INVALID_KINDS[0]
        earlier, after = self.last_fact or (None, None)
        region = self._region(self.rng.choice(sorted(self.regions)))
        event = invalid_event(kind, self.rng, campaign=self.spec.campaign, region=region,
                              occurred_at=self._time(self.rng.randrange(len(self.days))), ends_on=self.spec.ends_on,
                              ids=(self._id(), self._id()), earlier=earlier)
        return Submission(self._next_index(), [event], ["invalid"],
                          frozenset({after}) if kind in NEEDS_AN_EARLIER_FACT and after is not None else frozenset(),
                          bare=True, expect_status=expected_status(kind), reason=kind)

    def _resend_saved(self) -> Submission:
        assert self.saved is not None
        saved, self.saved = self.saved, None
        return Submission(self._next_index(), saved.events, ["resend"] * len(saved.events), frozenset({saved.index}))

    # --- batching -------------------------------------------------------------------------------

    def _add(self, event: dict[str, Any], kind: Kind, depends_on: int | None) -> None:
        self.batch.events.append(event)
        self.batch.kinds.append(kind)
        if depends_on is not None and depends_on != _IN_THIS_BATCH:
            self.batch.after.add(depends_on)
        self.emitted += 1

    def _track(self, event_id: str) -> None:
        self.where[event_id] = _IN_THIS_BATCH
        self.batch.targets.append(event_id)

    def _full(self) -> Iterator[Submission]:
        if len(self.batch.events) >= self.spec.batch:
            yield self._flush()

    def _flush(self) -> Submission:
        batch, self.batch = self.batch, _Batch()
        index = self._next_index()
        submission = Submission(index, batch.events, batch.kinds, frozenset(batch.after), bare=self.spec.batch == 1)
        for target in batch.targets:
            if self.where.get(target) == _IN_THIS_BATCH:
                self.where[target] = index
        facts = [e for e, k in zip(batch.events, batch.kinds, strict=True) if k in ("fact", "tracked")]
        if facts:
            self.last_fact = (facts[-1], index)
        if self.budget.whole_batch_resent and self.saved is None and self.saved_due == 0 and index >= 2 \
                and len(batch.events) == self.spec.batch:
            self.saved, self.saved_due = submission, self.emitted + 10 * self.spec.batch
        return submission

    def _next_index(self) -> int:
        self.index += 1
        return self.index - 1

    # --- regions, days, ids ---------------------------------------------------------------------

    def _region(self, province: str) -> str:
        sample, pick = self.regions[province], self.rng.random()
        if pick < 0.3 or not (sample.prefectures or sample.counties):
            return province
        if (pick < 0.6 and sample.prefectures) or not sample.counties:
            return self.rng.choice(sample.prefectures)
        return self.rng.choice(sample.counties)

    def _moved(self, region: str) -> str:
        province = region[:2] + "0000"
        if self.rng.random() < 0.3:
            province = self.rng.choice(sorted(set(self.regions) - {province}))
        codes = [c for c in self.regions[province].codes if c != region]
        return self.rng.choice(codes) if codes else region

    def _reporting_time(self, region: str) -> tuple[int, str]:
        missed = self.missed[region[:2] + "0000"]
        day = self.rng.choice([d for d in range(len(self.days)) if d not in missed])
        return day, self._time(day)

    def _time(self, day: int) -> str:
        hour, minute = divmod(int(self.rng.random() * 720), 60)
        return f"{self.days[day]}T{hour + 8:02d}:{minute:02d}:00+08:00"

    def _id(self) -> str:
        # A version-4 UUID from the seeded generator, formatted by hand (uuid.UUID is slow in a hot loop).
        h = f"{self.rng.getrandbits(128) & _UUID_KEEP | _UUID_SET:032x}"
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def plan_month(spec: MonthSpec) -> Iterator[Submission]:
    """The month's submissions, in the order a sender should dispatch them; lazily, so memory stays small."""
    return _Month(spec).submissions()


def month_budget(spec: MonthSpec) -> Budget:
    """How the spec's events split into facts, corrections, retractions, resends and invalid events."""
    return Budget.of(spec.events, spec.batch, mischief=spec.mischief, corrections=spec.corrections)


def generate_events(campaign: str, window: tuple[date, date], seed: int, count: int, *, batch: int = 1000,
                    region_codes: tuple[str, ...] | None = None,
                    corrections: bool = False) -> Iterator[list[dict[str, Any]]]:
    """Batches of ``count`` valid events in total for benchmarks: no invalid events and no duplicates.

    Facts only by default, so batches may be appended in any order and concurrently. With
    ``corrections`` some batches correct or retract facts of earlier ones: append those in order.
    """
    spec = MonthSpec(campaign, window[0], window[1], seed=seed, events=count, batch=batch,
                     region_codes=region_codes, mischief=False, corrections=corrections)
    for submission in plan_month(spec):
        yield submission.events
