"""The flags fold on a province built like a real one: what it must flag, and what it must leave alone."""

import random
from decimal import Decimal

import pytest

from events.errors import ValidationFailed
from events.intake import read_events
from events.records import RecordedEvent
from projections.quality import Flag, FlagChanges, QualityState, fold_flags, robust_z
from tests.factories import event
from tests.quality_support import LogBuilder, province_month, raid

SLIP_COUNTY = "330106"  # 西湖区, Hangzhou


def _fold(events: list[RecordedEvent]) -> FlagChanges:
    return fold_flags(QualityState(), events)


def _flags_of(changes: FlagChanges, event: RecordedEvent) -> list[Flag]:
    return [f for f in changes.raised if f.event_id == event.event_id]


def _history(builder: LogBuilder, county: str, n: int = 12, size: float = 1.0) -> None:
    for day in range(1, n + 1):
        builder.add("raid_conducted", county, raid(builder.rng, size), day=day)


def test_a_clean_province_month_raises_almost_nothing() -> None:
    builder = province_month()
    changes = _fold(builder.events)
    assert len(builder.events) > 400  # dozens of counties, a month of reports
    per_thousand = 1000 * len(changes.raised) / len(builder.events)
    assert per_thousand < 5, [(f.code, f.observed, f.expected) for f in changes.raised]


@pytest.mark.parametrize("factor", [Decimal("0.0001"), Decimal(10000)], ids=["yuan-as-wan", "wan-as-yuan"])
def test_a_yuan_wan_slip_is_flagged_in_both_directions(factor: Decimal) -> None:
    builder = province_month()
    _history(builder, SLIP_COUNTY)
    data = raid(builder.rng, 1.0) | {"seized_value_yuan": "152000.00"}
    data["seized_value_yuan"] = f"{Decimal('152000.00') * factor:.2f}"
    slip = builder.add("raid_conducted", SLIP_COUNTY, data, day=28)
    flags = [f for f in _flags_of(_fold(builder.events), slip) if f.metric == "seized_value_yuan"]
    assert [f.code for f in flags] == ["unit_scale"]
    assert (flags[0].severity, flags[0].basis) == ("error", "own")
    assert Decimal("3.5") < flags[0].score < Decimal("4.5")
    assert flags[0].observed == data["seized_value_yuan"]


def test_a_genuine_threefold_rise_ranks_below_a_unit_slip() -> None:
    builder = province_month()
    county_a, county_b = "330106", "330108"
    for county in (county_a, county_b):
        for day in range(1, 13):  # a steady county: the same kind of raid every day
            builder.add("raid_conducted", county, raid(builder.rng, 1.0) | {"seized_value_yuan": "80000.00"},
                        day=day)
    rise = builder.add("raid_conducted", county_a, raid(builder.rng, 1.0) | {"seized_value_yuan": "240000.00"},
                       day=20)
    slip = builder.add("raid_conducted", county_b, raid(builder.rng, 1.0) | {"seized_value_yuan": "800000000.00"},
                       day=20)
    changes = _fold(builder.events)
    slip_flag = next(f for f in _flags_of(changes, slip) if f.metric == "seized_value_yuan")
    rise_scores = [f.score for f in _flags_of(changes, rise) if f.metric == "seized_value_yuan"]
    assert slip_flag.code == "unit_scale"
    assert all(score < slip_flag.score for score in rise_scores)
    ranked = sorted(changes.raised, key=lambda f: -f.score)
    assert ranked[0].event_id == slip.event_id


def test_a_double_submission_under_a_new_event_id_is_flagged() -> None:
    builder = province_month()
    first = builder.add("raid_conducted", SLIP_COUNTY, raid(builder.rng, 1.0), day=12)
    again = builder.add("raid_conducted", SLIP_COUNTY, dict(first.data), day=12)
    flags = _flags_of(_fold(builder.events), again)
    assert [(f.code, f.expected, f.related_event_id) for f in flags] == [
        ("possible_duplicate", first.event_id, first.event_id)]


def test_same_values_on_another_day_are_not_a_duplicate() -> None:
    builder = province_month()
    first = builder.add("raid_conducted", SLIP_COUNTY, raid(builder.rng, 1.0), day=12)
    other_day = builder.add("raid_conducted", SLIP_COUNTY, dict(first.data), day=13)
    assert not [f for f in _flags_of(_fold(builder.events), other_day) if f.code == "possible_duplicate"]


def test_mad_zero_series_zero_values_and_a_lone_event_never_crash_or_alarm() -> None:
    builder = LogBuilder(random.Random(1), [])
    for day in range(1, 21):  # more than half the values equal: MAD = 0
        builder.add("materials_distributed", "330106", {"copies": 5000}, day=day)
        builder.add("pledge_signed", "330108", {"enterprises": 0}, day=day)
    same = builder.add("materials_distributed", "330106", {"copies": 5000}, day=25)
    bit_more = builder.add("materials_distributed", "330106", {"copies": 5600}, day=26)
    zero = builder.add("pledge_signed", "330108", {"enterprises": 0}, day=27)
    small_after_zeros = builder.add("pledge_signed", "330108", {"enterprises": 3}, day=28)
    lone = builder.add("brand_awarded", "330122", {"enterprises": 4000, "products": 90000}, day=28)
    changes = _fold(builder.events)
    for quiet in (same, bit_more, zero, small_after_zeros, lone):
        assert _flags_of(changes, quiet) == []
    assert robust_z(Decimal(5000), [Decimal(5000)] * 9, 0.1) == 0.0


def test_a_county_without_history_is_compared_with_its_siblings() -> None:
    builder = province_month(reports_per_county=3)
    newcomer = "330183"  # 富阳区: no report of its own yet
    slip = builder.add("raid_conducted", newcomer, raid(builder.rng, 1.0) | {"seized_value_yuan": "9.50"}, day=30)
    flags = [f for f in _flags_of(_fold(builder.events), slip) if f.metric == "seized_value_yuan"]
    assert [(f.code, f.basis) for f in flags] == [("unit_scale", "peers")]


def test_a_region_without_history_or_siblings_is_held_to_the_nation_for_unit_slips_only() -> None:
    builder = province_month(reports_per_county=3)
    far = "440103"  # 广州 荔湾区: nothing reported in Guangdong yet
    slip = builder.add("raid_conducted", far, raid(builder.rng, 1.0) | {"seized_value_yuan": "7.60"}, day=30)
    big = builder.add("raid_conducted", "440104", raid(builder.rng, 1.0) | {"seized_value_yuan": "4000000.00"},
                      day=30)  # 50× a typical raid: large, but the nation is no baseline for an outlier
    changes = _fold(builder.events)
    assert [(f.code, f.basis) for f in _flags_of(changes, slip) if f.metric == "seized_value_yuan"] == [
        ("unit_scale", "national")]
    assert [f for f in _flags_of(changes, big) if f.metric == "seized_value_yuan"] == []


def test_tiny_counts_never_alarm_even_far_from_the_median() -> None:
    builder = LogBuilder(random.Random(2), [])
    for day in range(1, 16):
        builder.add("media_reported", "330106", {"reports": 1, "channel": "online"}, day=day)
    burst = builder.add("media_reported", "330106", {"reports": 40, "channel": "online"}, day=20)
    assert _flags_of(_fold(builder.events), burst) == []


def test_a_correction_resolves_the_slip_and_is_scored_itself() -> None:
    builder = province_month()
    _history(builder, SLIP_COUNTY)
    slip = builder.add("raid_conducted", SLIP_COUNTY, raid(builder.rng, 1.0) | {"seized_value_yuan": "8.20"}, day=20)
    fixed = builder.correct(slip, dict(slip.data) | {"seized_value_yuan": "82000.00"})
    changes = _fold(builder.events)
    assert changes.resolved_values == {slip.event_id: fixed.position}
    assert [f for f in _flags_of(changes, slip) if f.raised_at == fixed.position] == []


def test_retracting_the_earlier_send_resolves_the_duplicate_flag() -> None:
    builder = province_month()
    first = builder.add("raid_conducted", SLIP_COUNTY, raid(builder.rng, 1.0), day=12)
    builder.add("raid_conducted", SLIP_COUNTY, dict(first.data), day=12)
    gone = builder.retract(first)
    changes = _fold(builder.events)
    assert changes.resolved_related == {first.event_id: gone.position}


def test_destroyed_well_beyond_seized_in_a_province_is_a_relation_warning() -> None:
    builder = LogBuilder(random.Random(3), [])
    for day in range(1, 11):  # ten raids: enough reports to judge the province's seizures
        builder.add("raid_conducted", "330106", raid(builder.rng, 1.0) | {"seized_value_yuan": "20000.00"}, day=day)
    within = builder.add("goods_destroyed", "330108", {"destroyed_value_yuan": "290000.00", "category": "liquor"},
                         day=11)  # 290k ≤ 1.5 × 200k: destroying earlier seizures too is normal
    over = builder.add("goods_destroyed", "330108", {"destroyed_value_yuan": "100000.00", "category": "liquor"},
                       day=12)
    builder.add("raid_conducted", "330109", raid(builder.rng, 1.0) | {"seized_value_yuan": "800000.00"}, day=13)
    changes = _fold(builder.events)
    relation = [f for f in changes.raised if f.code == "relation"]
    assert [(f.event_id, f.region, f.observed, f.expected) for f in relation] == [
        (over.event_id, "330000", "390000.00", "200000.00")]
    assert within.event_id not in {f.event_id for f in changes.raised}
    assert list(changes.resolved_ids.values()) == [builder.events[-1].position]  # seizures caught up


def test_few_seizure_reports_are_not_enough_to_judge_a_relation() -> None:
    builder = LogBuilder(random.Random(3), [])
    builder.add("raid_conducted", "330106", raid(builder.rng, 1.0) | {"seized_value_yuan": "20000.00"}, day=1)
    builder.add("goods_destroyed", "330108", {"destroyed_value_yuan": "900000.00", "category": "liquor"}, day=2)
    assert [f for f in _fold(builder.events).raised if f.code == "relation"] == []


def test_a_report_sent_weeks_late_is_flagged_with_the_threshold() -> None:
    builder = LogBuilder(random.Random(4), [])
    late = builder.add("publicity_held", "330106", {"participants": 10, "quality_workers": 1, "booths": 1,
                                                    "consultations": 1}, day=2, late_days=20)
    flags = _flags_of(_fold(builder.events), late)
    assert [(f.code, f.observed, f.expected, f.severity) for f in flags] == [("late_report", "20.0", "7", "info")]


def test_a_review_applies_only_within_the_reviewers_region() -> None:
    builder = province_month()
    first = builder.add("raid_conducted", SLIP_COUNTY, raid(builder.rng, 1.0), day=12)
    again = builder.add("raid_conducted", SLIP_COUNTY, dict(first.data), day=12)
    changes = fold_flags(QualityState(), builder.events)
    duplicate = next(f for f in changes.raised if f.event_id == again.event_id)
    builder.review(duplicate.id, "330100")  # Hangzhou covers 西湖区
    builder.review(duplicate.id, "330200", "false_alarm")  # Ningbo does not
    changes = fold_flags(QualityState(), builder.events)
    assert [(r.flag_id, r.verdict) for r in changes.reviews] == [(duplicate.id, "confirmed")]


def test_flags_are_the_same_on_every_fold_of_the_same_log() -> None:
    builder = province_month()
    _history(builder, SLIP_COUNTY)
    builder.add("raid_conducted", SLIP_COUNTY, raid(builder.rng, 1.0) | {"seized_value_yuan": "8.20"}, day=20)
    assert _fold(builder.events).raised == _fold(list(builder.events)).raised


def test_passed_beyond_sampled_is_refused_with_its_catalogue_code() -> None:
    bad = event("inspection_completed", data={"batches_sampled": 10, "batches_passed": 12, "enterprises": 3,
                                              "category": "toys"})
    with pytest.raises(ValidationFailed) as refused:
        read_events(bad)
    [error] = refused.value.errors
    assert (error.code, error.loc) == ("passed_exceeds_sampled", ("data", "batches_passed"))
    assert "合格批次" in error.msg


def test_other_validation_errors_carry_the_validator_code() -> None:
    bad = event("raid_conducted")
    bad["data"] = dict(bad["data"]) | {"personnel": -1}
    with pytest.raises(ValidationFailed) as refused:
        read_events(bad)
    assert [e.code for e in refused.value.errors] == ["greater_than_equal"]
