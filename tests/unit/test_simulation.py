"""The simulated month: deterministic, realistic, every type; its invalid events are invalid; its expectations
agree with the projection fold when every submission goes through the real intake and decider."""

import re
from collections import Counter
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import cache
from typing import Any

import pytest

from events.canonical import GENESIS_HASH
from events.catalogue import CATALOGUE, METRICS
from events.decide import Accepted, Actor, AppendRequest, Campaign, GroupDecider, LogState
from events.errors import DomainError, EventIdConflict, ValidationFailed
from events.intake import read_events
from events.regions import EXPECTED_PROVINCES, NATION, is_structurally_valid, level_of
from projections.fold import Fold
from services.simulate.budget import INVALID_KINDS, Budget
from services.simulate.ledger import Expected, Ledger
from services.simulate.plan import MonthSpec, Submission, generate_events, plan_month
from services.simulate.regionsample import read_code_list, sample_regions
from services.simulate.server import SimulationError, require_loopback
from tests.shared_data import AREACODES

SEPTEMBER = (date(2017, 9, 1), date(2017, 9, 30))
NOW = datetime(2017, 10, 15, 4, 0, tzinfo=UTC)
ADMIN = Actor("key-admin", "admin")
FACT_TYPES = {name for name, t in CATALOGUE.items() if t.kind == "fact"}
MONEY = re.compile(r"^[0-9]+\.[0-9]{2}$")
AREACODES_2017 = AREACODES / "2017.txt"


@cache
def month(events: int = 3000, seed: int = 1, batch: int = 200) -> list[Submission]:
    """The planned month (cached: tests only read it)."""
    return list(plan_month(MonthSpec("2017", *SEPTEMBER, seed=seed, events=events, batch=batch)))


def expected_of(submissions: list[Submission]) -> Expected:
    ledger = Ledger()
    for submission in submissions:
        ledger.record(submission)
    return ledger.expected()


def through_the_write_model(submissions: list[Submission]) -> tuple[Fold, Counter[str]]:
    """Each submission through intake and the decider, as the service would; the accepted records folded."""
    state = LogState(0, GENESIS_HASH, campaigns={"2017": Campaign("2017", *SEPTEMBER, "open")})
    decider, fold, outcomes = GroupDecider(state, NOW), Fold(), Counter[str]()
    for submission in submissions:
        try:
            outcome: Accepted | DomainError = decider.decide(
                AppendRequest(read_events(submission.body()), ADMIN, f"r{submission.index}"))
        except DomainError as exc:
            outcome = exc
        if isinstance(outcome, DomainError):
            status = 409 if isinstance(outcome, EventIdConflict) else 422
            assert isinstance(outcome, ValidationFailed | EventIdConflict), (submission.reason, outcome)
            assert status == submission.expect_status, (submission.index, submission.reason, outcome)
            outcomes[f"refused {submission.reason}"] += 1
            continue
        assert submission.expect_status is None, (submission.index, submission.reason)
        for kind, result in zip(submission.kinds, outcome.results, strict=True):
            assert result.status == ("duplicate" if kind == "resend" else "created"), (submission.index, kind)
            outcomes[result.status] += 1
        for record in outcome.records:
            fold.apply(record)
    return fold, outcomes


def test_the_same_seed_gives_the_same_month_and_another_seed_another() -> None:
    first, again, other = month(seed=5), month(seed=5), month(seed=6)
    assert [(s.index, s.events, s.kinds, s.after, s.expect_status) for s in first] == \
        [(s.index, s.events, s.kinds, s.after, s.expect_status) for s in again]
    assert [s.events for s in first] != [s.events for s in other]
    assert expected_of(first) == expected_of(again)


def test_the_budget_is_exact_whatever_the_size() -> None:
    for events, batch in ((1, 1), (99, 10), (100, 200), (1500, 200), (4001, 200), (20_000, 200), (7, 1)):
        budget = Budget.of(events, batch)
        assert budget.total == events
        assert budget.facts >= 0.85 * events
        assert sum(len(s.events) for s in month(events, batch=batch)) == events


def test_a_month_has_every_type_every_province_on_most_days_and_a_sample_of_regions() -> None:
    submissions = month(6000)
    events = [e for s in submissions for e, k in zip(s.events, s.kinds, strict=True) if k != "invalid"]
    assert {e["type"] for e in events} == FACT_TYPES | {"event_corrected", "event_retracted"}
    regions = {e["region"] for e in events}
    assert {r[:2] + "0000" for r in regions} == EXPECTED_PROVINCES
    assert Counter(level_of(r) for r in regions).keys() == {"province", "prefecture", "county"}
    days: dict[str, set[str]] = {}
    for e in events:
        days.setdefault(e["region"][:2] + "0000", set()).add(e["occurred_at"][:10])
    assert all(len(d) >= 27 for d in days.values()), sorted((p, len(d)) for p, d in days.items())
    assert any(len(d) < 30 for d in days.values()), "a few provinces should miss a few days"
    assert all(is_structurally_valid(r) for r in regions)


def test_money_is_an_exact_two_decimal_string_and_the_pass_rate_varies_by_category() -> None:
    submissions = month(6000)
    money = [e["data"][m.field] for s in submissions for e, k in zip(s.events, s.kinds, strict=True)
             if k in ("fact", "tracked") for m in CATALOGUE[e["type"]].metrics if m.kind == "money"]
    assert money
    assert all(isinstance(v, str) and MONEY.match(v) for v in money)
    rates = expected_of(submissions).pass_rate_by_category
    assert {"mooncake", "liquor", "fertilizer", "building_materials", "auto_parts", "toys", "cosmetics"} <= set(rates)
    assert max(Decimal(r or 0) for r in rates.values()) - min(Decimal(r or 1) for r in rates.values()) > \
        Decimal("0.05")


def test_every_submission_gets_the_answer_the_plan_expects_from_intake_and_the_decider() -> None:
    submissions = month(4000)
    _, outcomes = through_the_write_model(submissions)
    budget = Budget.of(4000, 200)
    assert outcomes["created"] == budget.facts + budget.corrections + budget.retractions
    assert outcomes["duplicate"] == budget.resent + budget.whole_batch_resent
    assert {k for k in outcomes if k.startswith("refused")} == {f"refused {k}" for k in INVALID_KINDS}
    assert sum(v for k, v in outcomes.items() if k.startswith("refused")) == budget.invalid


def test_invalid_events_are_refused_by_intake_or_by_the_log() -> None:
    invalid = [s for s in month(20_000) if s.expect_status is not None]
    assert Counter(s.reason for s in invalid) == {k: 2 for k in INVALID_KINDS}
    needs_the_log = {"outside_window", "correction_of_unknown", "bad_replacement", "conflicting_resend"}
    for submission in invalid:
        assert submission.bare
        assert len(submission.events) == 1
        if submission.reason in needs_the_log:
            read_events(submission.body())  # statelessly fine; the decider refuses it (previous test)
        else:
            with pytest.raises(ValidationFailed):
                read_events(submission.body())


def test_the_expectation_equals_the_projection_fold_of_what_the_decider_accepted() -> None:
    submissions = month(5000, seed=11)
    fold, _ = through_the_write_model(submissions)
    expected = expected_of(submissions)
    totals = fold.deltas.totals
    for metric in METRICS:
        assert str(expected.national[metric]) == _shown(metric, totals[("2017", NATION, metric)]), metric
        for province, figures in expected.provinces.items():
            assert str(figures[metric]) == _shown(metric, totals[("2017", province, metric)]), (province, metric)
    corrected = sum(k == "correction" for s in submissions for k in s.kinds)
    retracted = sum(k == "retraction" for s in submissions for k in s.kinds)
    assert corrected >= 90
    assert retracted >= 20
    assert expected.facts == sum(k in ("fact", "tracked") for s in submissions for k in s.kinds) - retracted


def test_narrowed_days_keep_reports_inside_them_and_the_invalid_date_outside_the_campaign() -> None:
    spec = MonthSpec("2017", *SEPTEMBER, events=2000, first_day=date(2017, 9, 10), last_day=date(2017, 9, 20))
    submissions = list(plan_month(spec))
    days = {e["occurred_at"][:10] for s in submissions if s.expect_status is None for e in s.events}
    assert days == {f"2017-09-{d}" for d in range(10, 21)}
    outside = [s.events[0]["occurred_at"] for s in submissions if s.reason == "outside_window"]
    assert outside == ["2017-10-03T10:00:00+08:00"]
    with pytest.raises(ValueError, match="can be reported"):
        list(plan_month(MonthSpec("2017", *SEPTEMBER, last_day=date(2017, 8, 31))))


def test_the_ledger_applies_corrections_and_retractions_and_ignores_refused_events() -> None:
    def raid(event_id: str, region: str, dens: int, value: str) -> dict[str, Any]:
        return {"event_id": event_id, "type": "raid_conducted", "region": region, "data": {
            "dens_busted": dens, "personnel": 10, "vehicles": 2, "cases": 1, "seized_value_yuan": value,
            "category": "liquor"}}

    a, b = raid("a", "330102", 3, "100.10"), raid("b", "330200", 4, "0.95")
    moved = {"event_id": "c1", "type": "event_corrected", "region": "110101",
             "data": {"corrects": "a", "replacement": raid("a", "", 5, "7.00")["data"]}}
    again = {"event_id": "c2", "type": "event_corrected", "region": "110102",
             "data": {"corrects": "a", "replacement": raid("a", "", 6, "8.01")["data"]}}
    gone = {"event_id": "r1", "type": "event_retracted", "region": "330200", "data": {"retracts": "b"}}
    ledger = Ledger()
    ledger.record(Submission(0, [a, b], ["tracked", "tracked"]))
    ledger.record(Submission(1, [moved, b], ["correction", "resend"]))
    ledger.record(Submission(2, [raid("x", "330102", 100, "1.00")], ["invalid"], expect_status=422))
    ledger.record(Submission(3, [again, gone], ["correction", "retraction"]))
    expected = ledger.expected()
    assert expected.national["dens_busted"] == 6
    assert expected.national["seized_value_yuan"] == "8.01"
    assert expected.provinces["110000"]["dens_busted"] == 6
    assert expected.provinces["330000"]["dens_busted"] == 0
    assert expected.provinces["330000"]["seized_value_yuan"] == "0.00"
    assert expected.facts == 1
    assert set(expected.provinces) == EXPECTED_PROVINCES


def test_a_default_month_lands_near_the_national_magnitudes_and_scales_linearly() -> None:
    expected = expected_of(month(20_000))
    national = expected.national
    assert 1000 < int(national["dens_busted"]) < 2000  # 上千
    assert Decimal("300000000") < Decimal(str(national["seized_value_yuan"])) < Decimal("400000000")  # 3.5亿
    assert 90_000 < int(national["personnel"]) < 110_000  # 约10万人次
    assert 12_000 < int(national["vehicles"]) < 14_000  # 13000余台次
    assert 2_000_000 < int(national["participants"]) < 2_300_000  # 200多万
    assert 2_700_000 < int(national["materials_copies"]) < 3_100_000  # 近300万
    assert expected.pass_rate is not None
    assert abs(Decimal(expected.pass_rate) - Decimal("0.915")) < Decimal("0.01")
    double = expected_of(month(40_000, seed=2)).national
    assert 1.8 < int(double["personnel"]) / int(national["personnel"]) < 2.2


def test_generate_events_yields_exactly_count_valid_facts_for_benchmarks() -> None:
    batches = list(generate_events("2017", SEPTEMBER, 3, 2500, batch=500))
    assert [len(b) for b in batches] == [500] * 5
    events = [e for b in batches for e in b]
    assert len({e["event_id"] for e in events}) == 2500
    assert {e["type"] for e in events} == FACT_TYPES
    for batch in batches:
        read_events({"events": batch})
    assert batches == list(generate_events("2017", SEPTEMBER, 3, 2500, batch=500))
    with_corrections = [e for b in generate_events("2017", SEPTEMBER, 3, 2500, corrections=True) for e in b]
    assert len(with_corrections) == 2500
    assert {"event_corrected", "event_retracted"} <= {e["type"] for e in with_corrections}


def test_real_region_codes_come_from_the_list_and_synthesized_ones_are_well_formed() -> None:
    import random

    codes = read_code_list(AREACODES_2017.read_text("utf-8-sig"))
    listed = set(codes)
    real = sample_regions(random.Random(1), codes)
    assert set(real) == EXPECTED_PROVINCES
    for province, sample in real.items():
        assert set(sample.prefectures) | set(sample.counties) <= listed
        assert sample.counties, province
    assert not real["110000"].prefectures
    assert real["330000"].prefectures
    made_up = sample_regions(random.Random(1))
    assert all(is_structurally_valid(c) for s in made_up.values() for c in s.codes)


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080", "http://localhost:1", "http://[::1]:8080/",
                                 "http://127.0.0.2:9"])
def test_loopback_urls_are_allowed(url: str) -> None:
    require_loopback(url, allow_remote=False)


@pytest.mark.parametrize("url", ["http://10.0.0.7:8080", "https://qmstats.example.cn", "ftp://127.0.0.1/"])
def test_other_hosts_are_refused_unless_allowed(url: str) -> None:
    with pytest.raises(SimulationError):
        require_loopback(url, allow_remote=False)
    if url.startswith("http"):
        require_loopback(url, allow_remote=True)


def _shown(metric: str, value: Decimal | int) -> str:
    return f"{Decimal(value):.2f}" if METRICS[metric].kind == "money" else str(int(value))
