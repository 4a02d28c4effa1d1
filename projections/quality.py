"""The flags projection's fold: which events look implausible, and why. Pure, no I/O.

Each fact is scored when the log reaches it, against the baselines as they stood just before it
(the region's own earlier values for the same type and metric, across campaigns; else its siblings'
values in the campaign). So the same log always gives the same flags, and a rebuild from position 0
reproduces them exactly. Flags never touch a figure: this fold writes only the quality tables.

Statistics are robust and on a log scale (values are skewed, often zero): median and MAD of log1p,
with a guard when MAD is 0, a minimum volume so that tiny counts never alarm, and a score that ranks
a 10⁴ unit slip far above a genuine 3× rise. Thresholds are the catalogue's (events.catalogue.FLAG_RULES).
"""

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from functools import cache
from operator import itemgetter
from statistics import median
from typing import Any, Final

from events.canonical import canonical_bytes, format_timestamp
from events.catalogue import CATALOGUE, FLAG_RULES, METRICS
from events.records import RecordedEvent
from events.regions import NATION, is_within, parent_of
from events.rules import FlagRule
from events.upcasting import upcast

_SCORE: Final = Decimal("0.001")
_MEAN_AD_SCALE: Final = 1.253314  # σ ≈ 1.2533·mean |x − median| for a normal: the MAD = 0 fallback
_MAD_SCALE: Final = 1.4826  # σ ≈ 1.4826·MAD for a normal (1 / 0.6745)
BLOCKING_CODES: Final = frozenset(code for code, rule in FLAG_RULES.items() if rule.severity == "error")
"""Open flags of these codes make closing a campaign need ``force`` (unit_scale, possible_duplicate)."""


@dataclass(frozen=True, slots=True)
class Flag:
    """One data-quality finding, as the flags table holds it."""

    id: str
    code: str
    severity: str
    campaign: str
    event_id: str
    region: str
    type: str | None
    metric: str | None
    observed: str
    expected: str
    score: Decimal
    message_zh: str
    message_en: str
    raised_at: int
    basis: str
    """What ``expected`` is: own (the region's history), peers (its siblings), national (every region; unit_scale
    only), earlier_event, threshold, relation."""
    related_event_id: str | None = None


@dataclass(frozen=True, slots=True)
class Review:
    """A flag_reviewed event that applies to a known flag within the reviewer's region."""

    flag_id: str
    verdict: str
    note: str
    reviewed_by: str
    event_id: str
    position: int


Values = Mapping[str, Decimal]
"""A fact's value per metric of its type (every metric of the type's latest version)."""


@dataclass(slots=True)
class Current:
    """A fact's effective values as the flags projection holds them (its latest version)."""

    type: str
    campaign: str
    region: str
    position: int
    values: Values


@dataclass(slots=True)
class QualityState:
    """What scoring a batch needs, as of just before it: loaded by the store, updated by the fold.

    ``history``, ``peers`` and ``national`` hold facts' current values in position order, one entry per fact
    with every metric of its type (a corrected fact moves to the correction's position; a retracted one
    leaves). A baseline is the last entries of its list, so the store needs to load only the last window of
    each key the batch touches (plus one per withdrawal in the batch), and every batch split gives the same
    baselines. One entry per fact, not per metric: which baseline a fact is scored against (own, peers,
    national) is decided once for all its metrics, as it is the same for each.
    """

    history: dict[tuple[str, str], list[tuple[int, Values]]] = field(default_factory=dict)
    """(region, type) → (position, values): the region's own facts, every campaign."""
    peers: dict[tuple[str, str, str], list[tuple[int, str, Values]]] = field(default_factory=dict)
    """(campaign, parent, type) → (position, region, values): the facts of parent's children."""
    national: dict[tuple[str, str], list[tuple[int, str, Values]]] = field(default_factory=dict)
    """(campaign, type) → (position, region, values) of every region: the last resort for unit_scale."""
    current: dict[str, Current | None] = field(default_factory=dict)
    """event_id → effective values (None: retracted or not a fact the projection saw)."""
    fingerprints: dict[bytes, str] = field(default_factory=dict)
    """fingerprint of (type, campaign, region, occurred_at, data) → the first event that had it."""
    fingerprint_of: dict[str, bytes] = field(default_factory=dict)
    """event_id → its fingerprint, for the events in ``fingerprints``."""
    batch_prints: dict[str, bytes] = field(default_factory=dict)
    """event_id → fingerprint of the batch's facts, when the store already computed them (a hash each)."""
    sums: dict[tuple[str, str, str], Decimal] = field(default_factory=dict)
    """(campaign, province, metric) → sum over the province's subtree, for relation rules."""
    open_relations: dict[str, bool] = field(default_factory=dict)
    """relation flag id → whether it is open now."""
    flag_regions: dict[str, str] = field(default_factory=dict)
    """flag id → region, for the reviews in the batch."""


@dataclass(slots=True)
class FlagChanges:
    """What a batch does to the quality tables."""

    values: dict[str, tuple[str, str, str | None, str, Values, int] | None] = field(default_factory=dict)
    """event_id → (campaign, region, parent, type, values, position) of a fact, or None to delete."""
    sums: dict[tuple[str, str, str], Decimal] = field(default_factory=dict)
    fingerprints: dict[bytes, tuple[str, str, int] | None] = field(default_factory=dict)
    """fingerprint → (event_id, campaign, position), or None to delete."""
    raised: list[Flag] = field(default_factory=list)
    resolved_events: dict[str, int] = field(default_factory=dict)
    """event_id → position: its flags raised before that position are resolved (the event was retracted)."""
    resolved_values: dict[str, int] = field(default_factory=dict)
    """event_id → position: its unit_scale and outlier flags raised before it are resolved (corrected)."""
    resolved_related: dict[str, int] = field(default_factory=dict)
    """event_id → position: possible_duplicate flags naming it as the earlier event are resolved."""
    resolved_ids: dict[str, int] = field(default_factory=dict)
    reviews: list[Review] = field(default_factory=list)
    dropped_fingerprints: set[bytes] = field(default_factory=set)
    """Fingerprints whose row goes (written before the added ones: a later send in the batch may take one over)."""
    new_facts: set[str] = field(default_factory=set)
    """Facts first seen in this batch: their values have no row yet (written without an upsert)."""


def fingerprint(event: RecordedEvent) -> bytes:
    """What two sends of the same fact share whatever their event_id: type, campaign, region, time, data."""
    return hashlib.sha256(canonical_bytes({
        "campaign": event.campaign, "data": event.data, "occurred_at": format_timestamp(event.occurred_at),
        "region": event.region, "type": event.type})).digest()


def flag_id(*parts: object) -> str:
    """A stable id: the same finding gets the same id after a rebuild."""
    return hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()[:16]


def province_of(region: str) -> str | None:
    """The province whose subtree a region is in (None for the nation)."""
    return None if region == NATION else region[:2] + "0000"


def _text(metric: str, value: Decimal) -> str:
    if METRICS[metric].kind == "money":
        return f"{value:.2f}"
    return format(value.normalize(), "f") if value != value.to_integral_value() else str(int(value))


def _median(values: list[Decimal]) -> Decimal:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


@cache
def _fields(type_: str) -> tuple[tuple[str, str], ...]:
    """(metric, data field) of every metric of a fact type, in catalogue order."""
    return tuple((m.name, m.field) for m in CATALOGUE[type_].metrics)


def _remove_at(entries: list[Any], position: int) -> None:
    """Remove the entry of the fact at ``position`` (at most one: a position is one event), newest first."""
    for i in range(len(entries) - 1, -1, -1):
        if entries[i][0] == position:
            del entries[i]
            return


def robust_z(value: Decimal, baseline: list[Decimal], floor: float) -> float:
    """Modified z-score of log1p(value) against log1p(baseline): (x − median) / σ̂, σ̂ from MAD.

    When more than half the baseline is equal, MAD is 0; σ̂ then falls back to 1.2533·mean absolute
    deviation, and never goes below ``floor`` (so an all-equal series does not turn every change
    into an infinite score).
    """
    logs = [math.log1p(float(v)) for v in baseline]
    centre = median(logs)
    deviations = [abs(x - centre) for x in logs]
    mad = median(deviations)
    sigma = _MAD_SCALE * mad if mad > 0 else _MEAN_AD_SCALE * sum(deviations) / len(deviations)
    return (math.log1p(float(value)) - centre) / max(sigma, floor)


class FlagFold:
    """Applies events in position order to a QualityState, collecting FlagChanges."""

    def __init__(self, state: QualityState, *, late_after: timedelta = timedelta(days=7)) -> None:
        self.state = state
        self.changes = FlagChanges()
        self._late_after = late_after
        self._unit = FLAG_RULES["unit_scale"]
        self._outlier = FLAG_RULES["outlier"]
        self._own_window, self._peer_window = own_window(), peer_window()
        self._min_history, self._min_peers = min_history(), int(self._unit.params["min_peers"])
        relation = FLAG_RULES["relation"].params
        self._relation_metrics = str(relation["left"]), str(relation["right"])
        self._log_min_fold = math.log10(float(self._outlier.params["min_fold"]))

    def apply(self, event: RecordedEvent) -> None:
        """Fold one event (events must come in position order)."""
        kind = CATALOGUE[event.type].kind if event.type in CATALOGUE else None
        if kind == "fact":
            _, data = upcast(event.type, event.schema_version, event.data)
            self.changes.new_facts.add(event.event_id)
            self._late(event)
            self._duplicate(event)
            self._observe(event.event_id, event.type, event.campaign, event.region, event.position, data)
        elif kind == "correction" and event.target is not None:
            before = self._withdraw(event.target, event.position)
            if before is not None:
                self.changes.resolved_values[event.target] = event.position
                version = CATALOGUE[before.type].latest_version
                _, data = upcast(before.type, version, event.data["replacement"])
                self._observe(event.target, before.type, before.campaign, event.region, event.position, data)
        elif kind == "retraction" and event.target is not None:
            if self._withdraw(event.target, event.position) is not None:
                self.changes.resolved_events[event.target] = event.position
            self._forget_fingerprint(event.target, event.position)
        elif kind == "review":
            self._review(event)

    # --- facts -------------------------------------------------------------------------------

    def _observe(self, event_id: str, type_: str, campaign: str, region: str, position: int,
                 data: Mapping[str, Any]) -> None:
        values = {name: Decimal(str(data[field_])) for name, field_ in _fields(type_)}
        base = self.basis(campaign, region, type_)
        if base is not None:
            for metric, value in values.items():
                flag = self._score(event_id, type_, campaign, region, metric, value, position, base)
                if flag is not None:
                    self.changes.raised.append(flag)
        parent = parent_of(region)
        self.state.history.setdefault((region, type_), []).append((position, values))
        if parent is not None:
            self.state.peers.setdefault((campaign, parent, type_), []).append((position, region, values))
        self.state.national.setdefault((campaign, type_), []).append((position, region, values))
        self.changes.values[event_id] = (campaign, region, parent, type_, values, position)
        self.state.current[event_id] = Current(type_, campaign, region, position, values)
        self._add_sums(campaign, region, values, 1, event_id, position)

    def _withdraw(self, event_id: str, position: int) -> Current | None:
        """Take a fact's current values out of every baseline; its open flags are resolved."""
        before = self.state.current.get(event_id)
        if before is None:
            return None
        parent = parent_of(before.region)
        lists: list[list[Any] | None] = [self.state.history.get((before.region, before.type)),
                                         self.state.national.get((before.campaign, before.type))]
        if parent is not None:
            lists.append(self.state.peers.get((before.campaign, parent, before.type)))
        for entries in lists:
            if entries is not None:
                _remove_at(entries, before.position)
        self.changes.values[event_id] = None
        self.state.current[event_id] = None
        self._add_sums(before.campaign, before.region, before.values, -1, event_id, position)
        return before

    def basis(self, campaign: str, region: str, type_: str) -> tuple[str, list[Values]] | None:
        """The facts a fact of ``region`` is compared with: the region's own last facts of the type if it has
        enough, else its siblings', else every region's, else None (then nothing is scored)."""
        enough = self._min_history
        own = self.state.history.get((region, type_), [])[-self._own_window:]
        if len(own) >= enough:
            return "own", [v for _, v in own]
        parent = parent_of(region)
        for basis, window in (
                ("peers", self.state.peers.get((campaign, parent or "", type_), [])[-self._peer_window:]),
                ("national", self.state.national.get((campaign, type_), [])[-self._peer_window:])):
            pool = [v for _, r, v in window if r != region]
            if len(pool) >= enough and len({r for _, r, _ in window if r != region}) >= self._min_peers:
                return basis, pool
        return None

    def _score(self, event_id: str, type_: str, campaign: str, region: str, metric: str, value: Decimal,
               position: int, base: tuple[str, list[Values]]) -> Flag | None:
        if value <= 0:
            return None  # zero never alarms: nothing to be off by a unit
        basis, facts = base
        values = list(map(itemgetter(metric), facts))
        expected = _median(values)
        if expected <= 0:
            return None
        lr = math.log10(float(value / expected))
        if abs(lr) < self._log_min_fold:
            return None  # within 10× of the baseline: neither rule can fire (most values stop here, cheaply)
        z = robust_z(value, values, float(self._outlier.params["mad_floor"]))
        if abs(z) <= float(self._outlier.params["z"]):
            return None
        band = float(self._unit.params["band_log10"])
        if 3 - band <= abs(lr) <= 4 + band:
            rule = self._unit
        elif basis == "national":
            return None  # every region of the country differs too much in size to call anything else an outlier
        else:
            volume = self._outlier.params["min_volume_money" if METRICS[metric].kind == "money" else
                                          "min_volume_count"]
            # Sizes differ legitimately between siblings (a city district and a mountain county), so an
            # outlier against peers must be much further off than one against the region's own history.
            fold = self._outlier.params["min_fold" if basis == "own" else "min_fold_peers"]
            if abs(lr) < math.log10(float(fold)) or max(value, expected) < Decimal(volume):
                return None
            rule = self._outlier
        fold = f"10^{round(lr)}" if rule is self._unit else f"{10 ** lr:.3g}"
        return self._flag(rule, event_id, campaign, region, type_, metric, _text(metric, value),
                          _text(metric, expected), abs(Decimal(str(lr))), position, basis,
                          fold=fold, z=f"{z:.1f}")

    def _late(self, event: RecordedEvent) -> None:
        delay = event.recorded_at - event.occurred_at
        if delay <= self._late_after:
            return
        days, threshold = Decimal(delay.total_seconds()) / 86400, Decimal(self._late_after.total_seconds()) / 86400
        score = Decimal(str(math.log10(float(days / threshold))))
        self.changes.raised.append(self._flag(
            FLAG_RULES["late_report"], event.event_id, event.campaign, event.region, event.type, None,
            f"{days:.1f}", f"{threshold:.1f}".removesuffix(".0"), score, event.position, "threshold"))

    def _duplicate(self, event: RecordedEvent) -> None:
        print_ = self.state.batch_prints.get(event.event_id) or fingerprint(event)
        earlier = self.state.fingerprints.get(print_)
        if earlier is None:
            self.state.fingerprints[print_] = event.event_id
            self.state.fingerprint_of[event.event_id] = print_
            self.changes.fingerprints[print_] = (event.event_id, event.campaign, event.position)
            return
        rule = FLAG_RULES["possible_duplicate"]
        self.changes.raised.append(self._flag(
            rule, event.event_id, event.campaign, event.region, event.type, None, event.event_id, earlier,
            Decimal(rule.params["score"]), event.position, "earlier_event", related=earlier))

    def _forget_fingerprint(self, event_id: str, position: int) -> None:
        """A retracted event no longer makes later sends duplicates; flags naming it are resolved."""
        self.changes.resolved_related[event_id] = position
        print_ = self.state.fingerprint_of.pop(event_id, None)
        if print_ is not None and self.state.fingerprints.get(print_) == event_id:
            del self.state.fingerprints[print_]
            self.changes.fingerprints[print_] = None
            self.changes.dropped_fingerprints.add(print_)

    # --- relations across events --------------------------------------------------------------

    def _add_sums(self, campaign: str, region: str, values: Mapping[str, Decimal], sign: int, event_id: str,
                  position: int) -> None:
        left, right = self._relation_metrics
        if left not in values and right not in values:
            return  # most facts: neither side of the relation
        province = province_of(region)
        if province is None:
            return
        rule = FLAG_RULES["relation"]
        for metric in (left, right):
            if metric in values:
                # The sum, and how many facts make it (a relation is judged only on enough reports).
                for key, amount in (((campaign, province, metric), values[metric]),
                                    ((campaign, province, "reports:" + metric), Decimal(1))):
                    self.state.sums[key] = self.state.sums.get(key, Decimal(0)) + sign * amount
                    self.changes.sums[key] = self.changes.sums.get(key, Decimal(0)) + sign * amount
        destroyed = self.state.sums.get((campaign, province, left), Decimal(0))
        seized = self.state.sums.get((campaign, province, right), Decimal(0))
        reports = self.state.sums.get((campaign, province, "reports:" + right), Decimal(0))
        fid = flag_id("relation", campaign, province, left)
        broken = (seized > 0 and destroyed > seized * Decimal(rule.params["tolerance"])
                  and destroyed >= Decimal(rule.params["min_volume_money"])
                  and reports >= int(rule.params["min_reports"]))
        was_open = self.state.open_relations.get(fid, False)
        if broken and not was_open:
            score = Decimal(str(math.log10(float(destroyed / seized))))
            flag = self._flag(rule, event_id, campaign, province, None, left, f"{destroyed:.2f}", f"{seized:.2f}",
                              score, position, "relation", fid=fid)
            self.changes.raised.append(flag)
            self.changes.resolved_ids.pop(fid, None)
            self.state.flag_regions[fid] = province
        elif was_open and not broken:
            self.changes.resolved_ids[fid] = position
        self.state.open_relations[fid] = broken

    # --- reviews ------------------------------------------------------------------------------

    def _review(self, event: RecordedEvent) -> None:
        flag_region = self.state.flag_regions.get(event.data["flag_id"])
        # A review counts only for a flag that exists, sent for a region that covers the flag's.
        if flag_region is None or not is_within(flag_region, event.region):
            return
        self.changes.reviews.append(Review(event.data["flag_id"], event.data["verdict"], event.data["note"],
                                           event.recorded_by, event.event_id, event.position))

    # --- building flags -----------------------------------------------------------------------

    def _flag(self, rule: FlagRule, event_id: str, campaign: str, region: str, type_: str | None,
              metric: str | None, observed: str, expected: str, score: Decimal, position: int, basis: str, *,
              related: str | None = None, fid: str | None = None, **extra: str) -> Flag:
        label_zh = METRICS[metric].label_zh if metric else ""
        label_en = METRICS[metric].label_en if metric else ""
        fill = {"region": region, "observed": observed, "expected": expected, **extra}
        fid = fid or flag_id(rule.code, event_id, metric or "", position)
        self.state.flag_regions[fid] = region
        return Flag(fid, rule.code, rule.severity, campaign, event_id, region, type_, metric, observed, expected,
                    score.quantize(_SCORE), rule.message_zh.format(metric=label_zh, **fill),
                    rule.message_en.format(metric=label_en, **fill), position, basis, related)


def min_history() -> int:
    """How many values a baseline needs before a value is scored against it."""
    return int(FLAG_RULES["unit_scale"].params["min_history"])


def own_window() -> int:
    """How many of a region's last values make its own baseline."""
    return int(FLAG_RULES["unit_scale"].params["history_window"])


def peer_window() -> int:
    """How many of the last values of a parent's children make the peer baseline (the region's own dropped)."""
    return int(FLAG_RULES["unit_scale"].params["peer_window"])


def fold_flags(state: QualityState, events: list[RecordedEvent], *,
               late_after: timedelta = timedelta(days=7)) -> FlagChanges:
    """Fold a batch of events (in position order) and return what it changes."""
    fold = FlagFold(state, late_after=late_after)
    for event in events:
        fold.apply(event)
    return fold.changes
