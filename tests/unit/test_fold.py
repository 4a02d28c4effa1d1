"""The fold on its own: what one event contributes to the figures, and the campaign lifecycle fold."""

from dataclasses import replace
from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from events.campaigns import fold_lifecycle
from events.decide import Campaign, GroupDecider
from events.records import RecordedEvent
from projections.fold import Deltas, Fold, FoldError, effective_fact, local_day
from tests.factories import SAMPLE_DATA, correction, event, retraction
from tests.unit.scenario import ADMIN, NOW, accept, fresh_state

HANGZHOU_SHANGCHENG = ("330102", "330100", "330000", "000000")
GUANGZHOU_YUEXIU = ("440104", "440100", "440000", "000000")
SEP_8, SEP_10 = date(2017, 9, 8), date(2017, 9, 10)


def recorded(*envelopes: dict[str, Any]) -> list[RecordedEvent]:
    """Envelopes accepted one request each by the decider (admin: any region), as the log records them."""
    decider = GroupDecider(fresh_state(), NOW)
    return [r for n, e in enumerate(envelopes) for r in accept(decider, e, actor=ADMIN, request_id=f"r{n}").records]


def folded(events: list[RecordedEvent], known: dict[str, Any] | None = None) -> Fold:
    fold = Fold(known)
    for e in events:
        fold.apply(e)
    return fold


def nonzero(table: dict[Any, Any]) -> dict[Any, Any]:
    return {k: v for k, v in table.items() if v != 0}


def test_a_fact_counts_at_its_region_and_every_ancestor_on_its_day() -> None:
    [raid] = recorded(event("raid_conducted", region="330102", occurred_at="2017-09-08T10:00:00+08:00"))
    deltas = folded([raid]).deltas
    for region in HANGZHOU_SHANGCHENG:
        assert deltas.totals[("2017", region, "dens_busted")] == 3
        assert deltas.totals[("2017", region, "seized_value_yuan")] == Decimal("152000.50")
        assert deltas.daily[("2017", region, "personnel", SEP_8)] == 120
        assert deltas.categories[("2017", region, "seized_value_yuan", "liquor")] == Decimal("152000.50")
        assert deltas.reports[("2017", region, SEP_8)] == 1
    assert {region for (_, region, _) in nonzero(deltas.totals)} == set(HANGZHOU_SHANGCHENG)
    assert {metric for (_, _, metric) in nonzero(deltas.totals)} == {
        "dens_busted", "personnel", "vehicles", "cases", "seized_value_yuan"}


def test_money_stays_decimal_and_counts_stay_integers() -> None:
    [raid] = recorded(event("raid_conducted", data=SAMPLE_DATA["raid_conducted"] | {"seized_value_yuan": "0.10"}))
    deltas = folded([raid]).deltas
    money = deltas.totals[("2017", "000000", "seized_value_yuan")]
    count = deltas.totals[("2017", "000000", "cases")]
    assert isinstance(money, Decimal)
    assert money == Decimal("0.10")
    assert isinstance(count, int)
    assert count == 2


def test_a_fact_without_a_category_field_adds_no_category_rows() -> None:
    [pledge] = recorded(event("pledge_signed", region="330102"))
    deltas = folded([pledge]).deltas
    assert nonzero(deltas.totals) == {("2017", r, "pledged_enterprises"): 25 for r in HANGZHOU_SHANGCHENG}
    assert not deltas.categories


def test_the_day_is_the_china_standard_time_day() -> None:
    # 20:30 UTC on the 8th is 04:30 on the 9th in Beijing.
    [raid] = recorded(event("raid_conducted", occurred_at="2017-09-08T20:30:00+00:00"))
    deltas = folded([raid]).deltas
    assert set(nonzero(deltas.reports)) == {("2017", r, date(2017, 9, 9)) for r in HANGZHOU_SHANGCHENG}
    assert local_day(raid.occurred_at) == date(2017, 9, 9)


def test_facts_add_up() -> None:
    events = recorded(event("raid_conducted", region="330102"), event("raid_conducted", region="330106"))
    deltas = folded(events).deltas
    assert deltas.totals[("2017", "330100", "dens_busted")] == 6
    assert deltas.totals[("2017", "330102", "dens_busted")] == 3
    assert deltas.totals[("2017", "330106", "dens_busted")] == 3
    assert deltas.reports[("2017", "000000", SEP_8)] == 2


def test_a_correction_moves_region_and_day_and_replaces_the_values() -> None:
    original = event("raid_conducted", region="330102", occurred_at="2017-09-08T10:00:00+08:00")
    replacement = SAMPLE_DATA["raid_conducted"] | {"dens_busted": 5, "category": "food"}
    fix = correction(original["event_id"], replacement, region="440104", occurred_at="2017-09-10T09:00:00+08:00")
    deltas = folded(recorded(original, fix)).deltas
    for region in HANGZHOU_SHANGCHENG[:3]:  # the old place no longer counts it
        assert deltas.totals[("2017", region, "dens_busted")] == 0
        assert deltas.reports[("2017", region, SEP_8)] == 0
    for region in GUANGZHOU_YUEXIU:
        assert deltas.totals[("2017", region, "dens_busted")] == 5
        assert deltas.daily[("2017", region, "dens_busted", SEP_10)] == 5
        assert deltas.categories[("2017", region, "dens_busted", "food")] == 5  # under the replacement's category
        assert deltas.categories[("2017", region, "seized_value_yuan", "food")] == Decimal("152000.50")
        assert deltas.reports[("2017", region, SEP_10)] == 1
    assert deltas.daily[("2017", "000000", "dens_busted", SEP_8)] == 0
    assert deltas.categories[("2017", "000000", "seized_value_yuan", "liquor")] == 0
    assert deltas.categories[("2017", "000000", "dens_busted", "food")] == 5


def test_a_later_correction_replaces_an_earlier_one() -> None:
    original = event("raid_conducted")
    first = correction(original["event_id"], SAMPLE_DATA["raid_conducted"] | {"cases": 7})
    second = correction(original["event_id"], SAMPLE_DATA["raid_conducted"] | {"cases": 9})
    fold = folded(recorded(original, first, second))
    assert fold.deltas.totals[("2017", "000000", "cases")] == 9
    fact = fold.fact(original["event_id"])
    assert fact is not None
    assert fact.data["cases"] == 9


def test_a_retraction_removes_the_fact_everywhere() -> None:
    original = event("raid_conducted", region="330102")
    gone = retraction(original["event_id"])
    fold = folded(recorded(original, gone))
    assert not nonzero(fold.deltas.totals)
    assert not nonzero(fold.deltas.daily)
    assert not nonzero(fold.deltas.categories)
    assert not nonzero(fold.deltas.reports)
    assert fold.fact(original["event_id"]) is None


def test_a_retraction_after_a_correction_removes_the_corrected_figures() -> None:
    original = event("raid_conducted", region="330102")
    fix = correction(original["event_id"], SAMPLE_DATA["raid_conducted"], region="440104")
    gone = retraction(original["event_id"])
    deltas = folded(recorded(original, fix, gone)).deltas
    assert not nonzero(deltas.totals)
    assert not nonzero(deltas.reports)


def test_a_later_batch_folds_from_the_known_facts_to_the_same_figures() -> None:
    original = event("raid_conducted", region="330102")
    fix = correction(original["event_id"], SAMPLE_DATA["raid_conducted"] | {"dens_busted": 1}, region="330106")
    first, second = recorded(original, fix)
    whole = folded([first, second]).deltas
    before = folded([first])
    after = folded([second], known={first.event_id: before.fact(first.event_id)})
    combined = Deltas()
    combined.merge(before.deltas)
    combined.merge(after.deltas)
    assert nonzero(combined.totals) == nonzero(whole.totals)
    assert nonzero(combined.daily) == nonzero(whole.daily)
    assert nonzero(combined.reports) == nonzero(whole.reports)


def test_merging_with_sign_minus_one_undoes_deltas() -> None:
    deltas = folded(recorded(event("inspection_completed"), event("publicity_held"))).deltas
    undone = Deltas()
    undone.merge(deltas)
    undone.merge(deltas, sign=-1)
    assert nonzero(deltas.totals)
    assert nonzero(deltas.categories)
    assert not nonzero(undone.totals)
    assert not nonzero(undone.categories)
    assert not nonzero(undone.reports)


def test_effective_fact_follows_corrections_and_retraction_in_order() -> None:
    original = event("raid_conducted", region="330102")
    fix = correction(original["event_id"], SAMPLE_DATA["raid_conducted"] | {"cases": 4}, region="330106",
                     occurred_at="2017-09-10T09:00:00+08:00")
    gone = retraction(original["event_id"])
    first, second, third = recorded(original, fix, gone)
    fact = effective_fact(first, [])
    assert fact is not None
    assert (fact.region, fact.day, fact.changed_at) == ("330102", SEP_8, first.position)
    fact = effective_fact(first, [second])
    assert fact is not None
    assert (fact.region, fact.day, fact.data["cases"]) == ("330106", SEP_10, 4)
    assert (fact.position, fact.changed_at) == (first.position, second.position)
    assert effective_fact(first, [second, third]) is None
    assert effective_fact(first, [third, second]) is None  # nothing revives a retracted fact


def test_an_unknown_event_type_stops_the_fold_at_its_position() -> None:
    [raid] = recorded(event("raid_conducted"))
    alien = replace(raid, position=7, type="rocket_launched")
    with pytest.raises(FoldError, match="position 7: unknown event type 'rocket_launched'") as caught:
        folded([alien])
    assert caught.value.position == 7


def test_a_correction_of_a_fact_the_fold_does_not_know_stops_it() -> None:
    original = event("raid_conducted")
    _, fix = recorded(original, correction(original["event_id"], SAMPLE_DATA["raid_conducted"]))
    with pytest.raises(FoldError, match=f"position {fix.position}: the event it refers to .* is unknown") as caught:
        folded([fix])  # no known facts given: the original came before this batch
    assert caught.value.position == fix.position


def test_a_retraction_of_a_retracted_fact_stops_the_fold() -> None:
    original = event("raid_conducted")
    _, gone = recorded(original, retraction(original["event_id"]))
    with pytest.raises(FoldError, match="was already retracted"):
        folded([gone], known={original["event_id"]: None})


def test_a_fold_told_what_to_remember_forgets_the_other_facts() -> None:
    kept, dropped = event("raid_conducted"), event("raid_conducted")
    records = recorded(kept, dropped, correction(dropped["event_id"], SAMPLE_DATA["raid_conducted"]))
    fold = Fold(remember={kept["event_id"]})
    fold.apply(records[0])
    fold.apply(records[1])
    assert fold.fact(kept["event_id"]) is not None
    assert fold.fact(dropped["event_id"]) is None
    with pytest.raises(FoldError, match="unknown to the fold"):
        fold.apply(records[2])


# --- the campaign lifecycle fold -------------------------------------------------------------------------------

OPENED = {"id": "2018", "theme": "质量月", "starts_on": "2018-09-01", "ends_on": "2018-09-30"}


def test_an_opened_campaign_is_open_with_its_window() -> None:
    history = fold_lifecycle([(3, "e3", "campaign_opened", OPENED)])
    assert history is not None
    assert (history.id, history.status, history.closed_at) == ("2018", "open", ())
    assert (history.starts_on, history.ends_on, history.theme) == (date(2018, 9, 1), date(2018, 9, 30), "质量月")
    assert (history.opened_position, history.last_position, history.last_event_id) == (3, 3, "e3")
    assert history.state == Campaign("2018", date(2018, 9, 1), date(2018, 9, 30), "open")


def test_close_reopen_close_keeps_every_close_and_ends_closed() -> None:
    history = fold_lifecycle([(3, "e3", "campaign_opened", OPENED), (9, "e9", "campaign_closed", {"id": "2018"}),
                              (12, "e12", "campaign_reopened", {"id": "2018"}),
                              (15, "e15", "campaign_closed", {"id": "2018"})])
    assert history is not None
    assert (history.status, history.closed_at) == ("closed", (9, 15))
    assert (history.opened_position, history.last_position, history.last_event_id) == (3, 15, "e15")


def test_a_reopened_campaign_is_open_and_remembers_its_close() -> None:
    history = fold_lifecycle([(3, "e3", "campaign_opened", OPENED), (9, "e9", "campaign_closed", {"id": "2018"}),
                              (12, "e12", "campaign_reopened", {"id": "2018"})])
    assert history is not None
    assert (history.status, history.closed_at, history.last_position) == ("open", (9,), 12)


def test_without_an_opening_there_is_no_campaign() -> None:
    assert fold_lifecycle([]) is None
    assert fold_lifecycle([(9, "e9", "campaign_closed", {"id": "2018"})]) is None


def test_lifecycle_events_before_the_opening_are_ignored() -> None:
    history = fold_lifecycle([(2, "e2", "campaign_closed", {"id": "2018"}), (3, "e3", "campaign_opened", OPENED)])
    assert history is not None
    assert (history.status, history.closed_at, history.last_position) == ("open", (), 3)
