"""Deciding append requests against the log state: positions, duplicates, campaigns, corrections."""

import uuid
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from events.canonical import GENESIS_HASH
from events.chain_check import ChainVerifier
from events.decide import Accepted, Actor, Campaign, GroupDecider, KnownEvent, LogState, check_scope
from events.errors import (
    CampaignClosedError,
    CampaignConflict,
    DomainError,
    EventIdConflict,
    ItemError,
    OutOfScope,
    ValidationFailed,
)
from events.records import RecordedEvent
from tests.factories import SAMPLE_DATA, correction, event, retraction
from tests.unit.scenario import (
    ADMIN,
    CAMPAIGN_2017,
    NOW,
    REPORTER,
    accept,
    closed,
    drafts,
    fresh_state,
    opened,
    reopened,
    request,
)

HEAD_HASH = bytes.fromhex("ab" * 32)
CAMPAIGN_2018 = Campaign("2018", date(2018, 9, 1), date(2018, 9, 30), "open")


def decider(state: LogState | None = None, now: datetime = NOW, **kwargs: Any) -> GroupDecider:
    return GroupDecider(state if state is not None else fresh_state(), now, **kwargs)


def refused(outcome: Accepted | DomainError) -> list[ItemError]:
    assert isinstance(outcome, ValidationFailed), outcome
    return outcome.errors


def locs(outcome: Accepted | DomainError) -> list[tuple[int | None, tuple[str | int, ...]]]:
    return [(e.index, e.loc) for e in refused(outcome)]


def known(record: RecordedEvent, *, retracted: bool = False) -> KnownEvent:
    """What the writer loads about a stored event."""
    return KnownEvent(record.event_id, record.position, record.type, record.schema_version, record.campaign,
                      record.region, record.content_hash, retracted)


def stored(*envelopes: dict[str, Any], campaigns: tuple[Campaign, ...] = (CAMPAIGN_2017, CAMPAIGN_2018),
           actor: Actor = ADMIN) -> tuple[LogState, list[RecordedEvent]]:
    """A log state as the writer would load it after these events were recorded by an earlier group."""
    first = accept(decider(fresh_state(*campaigns)), *envelopes, actor=actor, request_id="earlier")
    state = fresh_state(*campaigns, head_position=first.records[-1].position, head_hash=first.records[-1].hash)
    state.events = {r.event_id: known(r) for r in first.records}
    return state, first.records


# --- acceptance, positions and the chain ------------------------------------------------------


def test_a_request_is_accepted_whole_with_contiguous_positions_continuing_the_chain() -> None:
    state = fresh_state(head_position=41, head_hash=HEAD_HASH)
    sent = [event("raid_conducted"), event("publicity_held"), event("inspection_completed")]
    outcome = accept(decider(state), *sent, request_id="req-42")
    assert [(r.event_id, r.status, r.position) for r in outcome.results] == \
        [(e["event_id"], "created", p) for e, p in zip(sent, (42, 43, 44), strict=True)]
    assert [r.position for r in outcome.records] == [42, 43, 44]
    assert outcome.records[0].prev_hash == HEAD_HASH
    for earlier, later in zip(outcome.records, outcome.records[1:], strict=False):
        assert later.prev_hash == earlier.hash
    verifier = ChainVerifier(41, HEAD_HASH)
    verifier.feed(outcome.records)
    assert verifier.report().ok
    assert all(r.recorded_by == REPORTER.key_id and r.request_id == "req-42" and r.recorded_at == NOW
               for r in outcome.records)
    assert outcome.records[0].data["seized_value_yuan"] == "152000.50"
    assert outcome.records[0].occurred_at == datetime(2017, 9, 8, 2, tzinfo=UTC)


def test_a_second_request_in_the_group_continues_the_positions() -> None:
    state = fresh_state(head_position=41, head_hash=HEAD_HASH)
    group = decider(state)
    first = accept(group, event(), event())
    second = accept(group, event(), request_id="req-2")
    assert [r.position for r in second.records] == [44]
    assert second.records[0].prev_hash == first.records[-1].hash
    assert group.head == (44, second.records[0].hash)
    assert (state.head_position, state.head_hash) == (44, second.records[0].hash)


def test_results_follow_request_order() -> None:
    sent = [event() for _ in range(5)]
    outcome = accept(decider(), *sent)
    assert [r.event_id for r in outcome.results] == [e["event_id"] for e in sent]
    assert [r.event_id for r in outcome.records] == [e["event_id"] for e in sent]


# --- duplicates and conflicts -----------------------------------------------------------------


def test_a_retry_is_a_duplicate_with_the_original_position_and_nothing_new() -> None:
    group = decider()
    sent = event()
    first = accept(group, event(), sent)
    retry = accept(group, sent, request_id="retry")
    assert [(r.event_id, r.status, r.position) for r in retry.results] == [(sent["event_id"], "duplicate", 2)]
    assert retry.records == []
    assert group.head == (2, first.records[-1].hash)


def test_a_retry_written_differently_but_meaning_the_same_is_a_duplicate() -> None:
    state, [record] = stored(event(event_id="6f1c2d3e-0000-4000-8000-000000000001"))
    retry = event(event_id="6F1C2D3E-0000-4000-8000-000000000001", occurred_at="2017-09-08T02:00:00Z",
                  data={**SAMPLE_DATA["raid_conducted"], "seized_value_yuan": "152000.5"})
    outcome = accept(decider(state), retry)
    assert [(r.status, r.position) for r in outcome.results] == [("duplicate", record.position)]
    assert outcome.records == []


def test_a_request_mixing_new_and_duplicate_events_only_records_the_new() -> None:
    state, [old] = stored(event())
    new = event()
    outcome = accept(decider(state), new, event(event_id=old.event_id, occurred_at="2017-09-08T10:00:00+08:00"))
    assert [(r.status, r.position) for r in outcome.results] == [("created", 2), ("duplicate", 1)]
    assert [r.event_id for r in outcome.records] == [new["event_id"]]


def test_the_same_id_with_different_content_is_a_conflict_and_nothing_is_recorded() -> None:
    state, [old] = stored(event())
    group = decider(state)
    other = event(event_id=old.event_id, data={**SAMPLE_DATA["raid_conducted"], "dens_busted": 4})
    outcome = group.decide(request(event(), other))
    assert isinstance(outcome, EventIdConflict)
    assert (outcome.event_id, outcome.index) == (old.event_id, 1)
    assert group.head == (1, old.hash)
    assert accept(group, event()).records[0].position == 2


def test_the_same_event_twice_in_one_request_is_created_then_duplicate() -> None:
    sent = event()
    outcome = accept(decider(), event(), sent, sent)
    assert [(r.status, r.position) for r in outcome.results] == [("created", 1), ("created", 2), ("duplicate", 2)]
    assert len(outcome.records) == 2


def test_the_same_id_twice_in_one_request_with_different_content_is_a_conflict() -> None:
    sent = event()
    other = sent | {"region": "330103"}
    outcome = decider().decide(request(sent, other))
    assert isinstance(outcome, EventIdConflict)
    assert outcome.index == 1


# --- campaigns --------------------------------------------------------------------------------


def test_an_unknown_campaign_is_refused_at_its_item() -> None:
    sent = event(campaign="2019")
    errors = refused(decider().decide(request(event(), sent)))
    assert [(e.index, e.event_id, e.loc) for e in errors] == [(1, sent["event_id"], ("campaign",))]


def test_a_refused_request_records_nothing() -> None:
    group = decider()
    good = event()
    assert locs(group.decide(request(good, event(campaign="2019")))) == [(1, ("campaign",))]
    assert group.head == (0, GENESIS_HASH)
    again = accept(group, good)
    assert [(r.status, r.position) for r in again.results] == [("created", 1)]


def test_a_closed_campaign_refuses_new_events_but_still_answers_retries() -> None:
    group = decider()
    before = event()
    accept(group, before)
    accept(group, closed("2017"), actor=ADMIN)
    outcome = group.decide(request(event()))
    assert isinstance(outcome, CampaignClosedError)
    assert outcome.campaign == "2017"
    retry = accept(group, before)
    assert [(r.status, r.position) for r in retry.results] == [("duplicate", 1)]


def test_a_campaign_closed_in_the_loaded_state_refuses_events() -> None:
    state, [old] = stored(event())
    state.campaigns["2017"] = replace(CAMPAIGN_2017, status="closed")
    assert isinstance(decider(state).decide(request(event())), CampaignClosedError)
    assert isinstance(decider(state).decide(request(retraction(old.event_id))), CampaignClosedError)
    assert accept(decider(state), event(event_id=old.event_id)).results[0].status == "duplicate"


def test_a_reopened_campaign_takes_events_again() -> None:
    group = decider()
    accept(group, closed("2017"), reopened("2017"), actor=ADMIN)
    assert accept(group, event()).results[0].position == 3


@pytest.mark.parametrize(("occurred_at", "in_window"), [
    ("2017-08-31T23:59:59+08:00", False),
    ("2017-08-31T15:59:59.999999Z", False),
    ("2017-09-01T00:00:00+08:00", True),
    ("2017-08-31T16:00:00Z", True),
    ("2017-09-15T12:00:00-05:00", True),
    ("2017-09-30T23:59:59+08:00", True),
    ("2017-09-30T15:59:59.999999Z", True),
    ("2017-10-01T00:00+08:00", False),
    ("2017-09-30T16:00:00Z", False),
    ("2016-09-15T10:00:00+08:00", False),
])
def test_the_window_is_whole_days_in_china_standard_time(occurred_at: str, in_window: bool) -> None:
    outcome = decider().decide(request(event(occurred_at=occurred_at)))
    if in_window:
        assert isinstance(outcome, Accepted), outcome
    else:
        assert locs(outcome) == [(0, ("occurred_at",))]
        assert "window" in refused(outcome)[0].msg


def test_events_beyond_the_clock_skew_in_the_future_are_refused() -> None:
    now = datetime(2017, 9, 10, 4, 0, tzinfo=UTC)
    assert isinstance(decider(now=now).decide(request(event(occurred_at="2017-09-10T12:05:00+08:00"))), Accepted)
    late = decider(now=now).decide(request(event(occurred_at="2017-09-10T12:05:01+08:00")))
    assert locs(late) == [(0, ("occurred_at",))]
    assert "future" in refused(late)[0].msg
    strict = decider(now=now, clock_skew=timedelta(0)).decide(request(event(occurred_at="2017-09-10T12:00:01+08:00")))
    assert locs(strict) == [(0, ("occurred_at",))]


def test_the_region_list_of_the_campaign_year_refuses_unknown_counties_but_not_provinces() -> None:
    state = fresh_state()
    state.region_lists = {2017: frozenset({"330000", "330100", "330102"}), 2018: frozenset({"330103"})}
    group = decider(state)
    assert accept(group, event(region="330102"), event(region="330100")).results[1].status == "created"
    assert locs(group.decide(request(event(region="330103")))) == [(0, ("region",))]
    assert locs(group.decide(request(event(region="330200")))) == [(0, ("region",))]
    assert accept(group, event(region="330000"), event(region="340000"), event(region="000000"),
                  actor=ADMIN).records[-1].position == 5


def test_without_a_region_list_any_valid_code_is_accepted() -> None:
    state = fresh_state()
    state.region_lists = {2018: frozenset({"330102"})}
    assert accept(decider(state), event(region="330199")).results[0].status == "created"


def test_every_bad_item_of_a_request_is_listed() -> None:
    sent = [event(), event(campaign="2019"), event(occurred_at="2017-10-02T10:00:00+08:00"),
            retraction(str(uuid.uuid4()))]
    assert locs(decider().decide(request(*sent))) == [(1, ("campaign",)), (2, ("occurred_at",)),
                                                       (3, ("data", "retracts"))]


# --- corrections ------------------------------------------------------------------------------


def test_a_correction_is_recorded_with_its_replacement_normalised() -> None:
    state, [old] = stored(event())
    replacement = {**SAMPLE_DATA["raid_conducted"], "dens_busted": 4, "seized_value_yuan": "152000.5"}
    [record] = accept(decider(state), correction(old.event_id, replacement)).records
    assert record.data == {"corrects": old.event_id,
                           "replacement": {**replacement, "seized_value_yuan": "152000.50"}}
    assert record.position == 2


def test_a_correction_of_an_event_earlier_in_the_same_request_is_accepted() -> None:
    fact = event()
    outcome = accept(decider(), fact, correction(fact["event_id"], SAMPLE_DATA["raid_conducted"]))
    assert [r.status for r in outcome.results] == ["created", "created"]


def test_a_correction_retried_with_the_same_meaning_is_a_duplicate() -> None:
    state, [old] = stored(event())
    fix = correction(old.event_id, {**SAMPLE_DATA["raid_conducted"], "seized_value_yuan": "1.5"})
    group = decider(state)
    accept(group, fix)
    retry = fix | {"data": {"corrects": old.event_id.upper(),
                            "replacement": {**SAMPLE_DATA["raid_conducted"], "seized_value_yuan": "1.50"}}}
    assert [(r.status, r.position) for r in accept(group, retry).results] == [("duplicate", 2)]


def test_correcting_an_unknown_event_is_refused() -> None:
    assert locs(decider().decide(request(correction(str(uuid.uuid4()), SAMPLE_DATA["raid_conducted"])))) == \
        [(0, ("data", "corrects"))]


def test_correcting_a_correction_is_refused() -> None:
    sent = event()
    state, [_, fix] = stored(sent, correction(sent["event_id"], SAMPLE_DATA["raid_conducted"]))
    outcome = decider(state).decide(request(correction(fix.event_id, SAMPLE_DATA["raid_conducted"])))
    assert locs(outcome) == [(0, ("data", "corrects"))]


def test_correcting_a_lifecycle_event_is_refused() -> None:
    state, [opening] = stored(opened("2019", "2019-09-01", "2019-09-30"))
    outcome = decider(state).decide(request(correction(opening.event_id, SAMPLE_DATA["raid_conducted"])))
    assert locs(outcome) == [(0, ("data", "corrects"))]


def test_a_replacement_is_validated_against_the_original_type() -> None:
    state, [raid] = stored(event())
    wrong_type = decider(state).decide(request(correction(raid.event_id, SAMPLE_DATA["publicity_held"])))
    got = {loc for _, loc in locs(wrong_type)}
    assert ("data", "replacement", "dens_busted") in got
    assert ("data", "replacement", "participants") in got
    bad_count = decider(state).decide(
        request(correction(raid.event_id, {**SAMPLE_DATA["raid_conducted"], "cases": -1})))
    assert locs(bad_count) == [(0, ("data", "replacement", "cases"))]


def test_a_replacement_follows_the_original_type_even_when_the_envelope_differs() -> None:
    state, [copies] = stored(event("materials_distributed"))
    [record] = accept(decider(state), correction(copies.event_id, {"copies": 6000})).records
    assert record.data["replacement"] == {"copies": 6000}


def test_correcting_a_retracted_event_is_refused() -> None:
    sent = event()
    state, [fact, _] = stored(sent, retraction(sent["event_id"]))
    state.events[fact.event_id] = replace(state.events[fact.event_id], retracted=True)
    outcome = decider(state).decide(request(correction(fact.event_id, SAMPLE_DATA["raid_conducted"])))
    assert locs(outcome) == [(0, ("data", "corrects"))]
    assert "retracted" in refused(outcome)[0].msg


def test_correcting_an_event_retracted_earlier_in_the_request_or_group_is_refused() -> None:
    state, [fact] = stored(event())
    fix = correction(fact.event_id, SAMPLE_DATA["raid_conducted"])
    same_request = decider(state).decide(request(retraction(fact.event_id), fix))
    assert locs(same_request) == [(1, ("data", "corrects"))]
    group = decider(state)
    accept(group, retraction(fact.event_id))
    assert locs(group.decide(request(fix))) == [(0, ("data", "corrects"))]


def test_a_correction_in_another_campaign_is_refused() -> None:
    state, [fact] = stored(event())
    fix = correction(fact.event_id, SAMPLE_DATA["raid_conducted"], campaign="2018",
                     occurred_at="2018-09-08T10:00:00+08:00")
    assert locs(decider(state, now=datetime(2018, 10, 1, tzinfo=UTC)).decide(request(fix))) == [(0, ("campaign",))]


def test_a_reporter_cannot_correct_or_retract_an_event_outside_its_scope() -> None:
    state, [anhui] = stored(event(region="340102"))
    fix = correction(anhui.event_id, SAMPLE_DATA["raid_conducted"], region="330102")
    assert isinstance(decider(state).decide(request(fix)), OutOfScope)
    assert isinstance(decider(state).decide(request(retraction(anhui.event_id))), OutOfScope)
    assert accept(decider(state), fix, actor=ADMIN).results[0].status == "created"


def test_a_reporter_may_correct_an_event_inside_its_scope() -> None:
    state, [hangzhou] = stored(event(region="330102"))
    fix = correction(hangzhou.event_id, SAMPLE_DATA["raid_conducted"], region="330106")
    assert accept(decider(state), fix, actor=REPORTER).results[0].status == "created"


# --- retractions ------------------------------------------------------------------------------


def test_a_retraction_is_recorded() -> None:
    state, [fact] = stored(event())
    [record] = accept(decider(state), retraction(fact.event_id, reason="重复上报")).records
    assert record.data == {"retracts": fact.event_id, "reason": "重复上报"}


def test_retracting_twice_in_one_request_is_refused() -> None:
    state, [fact] = stored(event())
    outcome = decider(state).decide(request(retraction(fact.event_id), retraction(fact.event_id)))
    assert locs(outcome) == [(1, ("data", "retracts"))]


def test_retracting_twice_in_one_group_is_refused() -> None:
    state, [fact] = stored(event())
    group = decider(state)
    accept(group, retraction(fact.event_id))
    assert locs(group.decide(request(retraction(fact.event_id)))) == [(0, ("data", "retracts"))]


def test_retracting_an_event_already_retracted_in_the_log_is_refused() -> None:
    state, [fact] = stored(event())
    state.events[fact.event_id] = replace(state.events[fact.event_id], retracted=True)
    assert locs(decider(state).decide(request(retraction(fact.event_id)))) == [(0, ("data", "retracts"))]


def test_a_refused_retraction_does_not_count_as_a_retraction() -> None:
    state, [fact] = stored(event())
    group = decider(state)
    assert locs(group.decide(request(retraction(fact.event_id), event(campaign="2019")))) == [(1, ("campaign",))]
    assert accept(group, retraction(fact.event_id)).results[0].status == "created"


@pytest.mark.parametrize("target", ["unknown", "retraction", "lifecycle"])
def test_only_facts_can_be_retracted(target: str) -> None:
    sent = event()
    state, [_, undo, opening] = stored(sent, retraction(sent["event_id"]), opened("2019", "2019-09-01", "2019-09-30"))
    target_id = {"unknown": str(uuid.uuid4()), "retraction": undo.event_id, "lifecycle": opening.event_id}[target]
    assert locs(decider(state).decide(request(retraction(target_id)))) == [(0, ("data", "retracts"))]


# --- campaign lifecycle -----------------------------------------------------------------------


def test_opening_a_campaign_twice_is_a_conflict() -> None:
    group = decider()
    accept(group, opened("2018"), actor=ADMIN)
    assert isinstance(group.decide(request(opened("2018"), actor=ADMIN)), CampaignConflict)
    assert isinstance(group.decide(request(opened("2017", "2017-09-01", "2017-09-30"), actor=ADMIN)),
                      CampaignConflict)


def test_closing_a_closed_campaign_is_a_conflict() -> None:
    group = decider()
    accept(group, closed("2017"), actor=ADMIN)
    assert isinstance(group.decide(request(closed("2017"), actor=ADMIN)), CampaignConflict)


def test_reopening_an_open_campaign_is_a_conflict() -> None:
    assert isinstance(decider().decide(request(reopened("2017"), actor=ADMIN)), CampaignConflict)


@pytest.mark.parametrize("change", [closed("2019"), reopened("2019")])
def test_closing_or_reopening_an_unopened_campaign_is_a_conflict(change: dict[str, Any]) -> None:
    assert isinstance(decider().decide(request(change, actor=ADMIN)), CampaignConflict)


@pytest.mark.parametrize("envelope", [{"region": "330000"}, {"campaign": "2019"}])
def test_lifecycle_events_must_name_their_campaign_at_the_nation(envelope: dict[str, Any]) -> None:
    assert isinstance(decider().decide(request(opened("2018") | envelope, actor=ADMIN)), CampaignConflict)


def test_open_then_post_in_the_same_request_works() -> None:
    group = decider(now=datetime(2018, 10, 1, tzinfo=UTC))
    outcome = accept(group, opened("2018"), event(campaign="2018", occurred_at="2018-09-08T10:00:00+08:00"),
                     actor=ADMIN)
    assert [(r.status, r.position) for r in outcome.results] == [("created", 1), ("created", 2)]
    assert accept(group, event(campaign="2018", occurred_at="2018-09-09T10:00:00+08:00")).records[0].position == 3


def test_a_refused_request_does_not_open_its_campaign() -> None:
    group = decider(now=datetime(2018, 10, 1, tzinfo=UTC))
    failed = group.decide(request(opened("2018"), event(campaign="2019"), actor=ADMIN))
    assert locs(failed) == [(1, ("campaign",))]
    later = group.decide(request(event(campaign="2018", occurred_at="2018-09-08T10:00:00+08:00")))
    assert locs(later) == [(0, ("campaign",))]


def test_close_then_post_in_the_same_request_is_refused() -> None:
    outcome = decider().decide(request(closed("2017"), event(), actor=ADMIN))
    assert isinstance(outcome, CampaignClosedError)


# --- who may append what ----------------------------------------------------------------------


@pytest.mark.parametrize("role", ["viewer", "auditor"])
def test_viewers_and_auditors_cannot_append(role: str) -> None:
    with pytest.raises(OutOfScope):
        check_scope(drafts(event()), Actor("key", role))  # type: ignore[arg-type]


@pytest.mark.parametrize(("scope", "region"), [
    ("330000", "330000"), ("330000", "330100"), ("330000", "330102"), ("330100", "330102"),
    ("110000", "110101"), ("410000", "419001"), ("000000", "650000"),
])
def test_a_reporter_may_send_inside_its_subtree(scope: str, region: str) -> None:
    check_scope(drafts(event(region=region)), Actor("key", "reporter", scope))


@pytest.mark.parametrize(("scope", "region"), [
    ("330000", "340102"), ("330000", "000000"), ("330100", "330201"), ("330100", "330000"),
    ("330102", "330100"), ("110100", "110101"), ("419000", "419001"),
])
def test_a_reporter_may_not_send_outside_its_subtree(scope: str, region: str) -> None:
    with pytest.raises(OutOfScope, match=rf"region {region} \(item 1\)"):
        check_scope(drafts(event(region=scope), event(region=region)), Actor("key", "reporter", scope))


@pytest.mark.parametrize("change", [opened("2018"), closed("2017"), reopened("2017")])
def test_lifecycle_events_are_admin_only(change: dict[str, Any]) -> None:
    with pytest.raises(OutOfScope, match="admin"):
        check_scope(drafts(change), Actor("key", "reporter", None))
    check_scope(drafts(change), ADMIN)


def test_an_admin_may_send_anywhere() -> None:
    check_scope(drafts(event(region="340102"), event(region="000000"), event(region="650000")), ADMIN)


# --- the refusal policy: request refusals answer alone, item refusals are collected -------------------------


def test_a_request_refusal_answers_alone_even_after_item_problems_were_found() -> None:
    state, [anhui] = stored(event(region="340102"))
    late = event(occurred_at="2017-10-09T10:00:00+08:00")  # an item problem: outside the window
    outcome = decider(state).decide(request(late, retraction(anhui.event_id)))  # then one outside the scope
    assert isinstance(outcome, OutOfScope)
    assert "340102" in outcome.detail


def test_a_closed_campaign_refuses_the_request_before_its_items_are_checked() -> None:
    state = fresh_state(replace(CAMPAIGN_2017, status="closed"))
    outcome = decider(state).decide(request(event(occurred_at="2017-10-09T10:00:00+08:00"), event()))
    assert isinstance(outcome, CampaignClosedError)


def test_item_refusals_of_different_checks_are_all_listed_in_item_order() -> None:
    state, [anhui] = stored(event(region="340102"), campaigns=(CAMPAIGN_2017, CAMPAIGN_2018))
    outcome = decider(state).decide(request(
        event(occurred_at="2017-10-09T10:00:00+08:00"),                    # window
        event(campaign="2016"),                                             # campaign never opened
        # in the future (NOW is 2017-10-15) and aimed at a fact of another campaign: both are listed
        retraction(anhui.event_id, campaign="2018", occurred_at="2018-09-08T10:00:00+08:00"),
        actor=ADMIN))
    assert locs(outcome) == [(0, ("occurred_at",)), (1, ("campaign",)), (2, ("occurred_at",)), (2, ("campaign",))]
