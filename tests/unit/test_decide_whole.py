"""A prepared request of plain facts is decided whole (per campaign) exactly as it is decided event by event.

``prepare`` gives a request of facts a ``FactsOutline``; under the lock the decider then checks it a campaign
at a time and, only when that fails, event by event. Either way the outcome must be the one the event-by-event
decision gives a request without an outline: the same results, rows and chain, or the same refusal.
"""

import uuid
from dataclasses import replace
from datetime import date
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from events.canonical import RecordBuilder, utc_text
from events.decide import Accepted, Actor, AppendRequest, Campaign, GroupDecider, KnownEvent, LogState, prepare
from events.errors import DomainError, ValidationFailed
from tests.factories import FACT_TYPES, event
from tests.unit.scenario import NOW, drafts, fresh_state

REPORTER = Actor("key-zhejiang", "reporter", "330000")
TIMES = ["2017-09-08T10:00:00+08:00", "2017-09-01T00:00:00+08:00", "2017-08-31T23:59:59+08:00",
         "2017-09-30T23:59:59.999999+08:00", "2017-10-01T00:00:00+08:00", "2017-10-15T12:04:00+08:00",
         "2017-10-15T12:06:00+08:00", "2018-09-10T10:00:00+08:00"]
REGIONS = ["330000", "330100", "330102", "330103", "330106"]
CAMPAIGNS = ["2017", "2018", "2019", "2017-10"]


def outcome_of(result: Accepted | DomainError) -> Any:
    if isinstance(result, Accepted):
        return "accepted", result.results, result.rows
    errors = result.errors if isinstance(result, ValidationFailed) else None
    return type(result).__name__, result.detail, errors


@st.composite
def group(draw: st.DrawFn) -> tuple[LogState, list[list[dict[str, Any]]], dict[str, dict[str, Any]]]:
    campaigns = [Campaign("2017", date(2017, 9, 1), date(2017, 9, 30), draw(st.sampled_from(["open", "closed"])))]
    if draw(st.booleans()):
        campaigns.append(Campaign("2018", date(2018, 9, 1), date(2018, 9, 30), "open"))
    if draw(st.booleans()):  # a campaign running now: its events may lie in the future
        campaigns.append(Campaign("2017-10", date(2017, 10, 1), date(2017, 10, 31), "open"))
    state = fresh_state(*campaigns, head_position=draw(st.integers(0, 100)))
    if draw(st.booleans()):
        state.region_lists = {2017: frozenset(draw(st.sets(st.sampled_from(REGIONS))))}
    stored = {}
    for n in range(draw(st.integers(0, 2))):
        sent = event(draw(st.sampled_from(FACT_TYPES)))
        stored[sent["event_id"]] = sent
        [draft] = drafts(sent)
        parts = RecordBuilder("key-earlier", "earlier").parts(
            draft.campaign, draft.data, draft.event_id, utc_text(draft.occurred_at), draft.region, 1, draft.type.name)
        state.events[draft.event_id] = KnownEvent(draft.event_id, n + 1, draft.type.name, 1, draft.campaign,
                                                  draft.region, parts.content_hash)
    sent_so_far: list[dict[str, Any]] = []
    requests = []
    for _ in range(draw(st.integers(1, 3))):
        request = []
        for _ in range(draw(st.integers(1, 4))):
            choice = draw(st.sampled_from(["new", "new", "new", "stored", "stored-changed", "earlier", "repeat"]))
            fresh = event(draw(st.sampled_from(FACT_TYPES)), region=draw(st.sampled_from(REGIONS)),
                          campaign=draw(st.sampled_from(CAMPAIGNS)), occurred_at=draw(st.sampled_from(TIMES)))
            if choice.startswith("stored") and stored:
                fresh = dict(draw(st.sampled_from(sorted(stored.values(), key=lambda e: e["event_id"]))))
                if choice == "stored-changed":
                    fresh["region"] = "330106" if fresh["region"] != "330106" else "330103"
            elif choice == "earlier" and sent_so_far:
                fresh = dict(draw(st.sampled_from(sent_so_far)))
            elif choice == "repeat" and request:
                fresh = dict(request[-1])
            request.append(fresh)
        sent_so_far.extend(request)
        requests.append(request)
    return state, requests, stored


@settings(max_examples=400, deadline=None)
@given(case=group())
def test_a_prepared_request_of_facts_is_decided_as_event_by_event(
        case: tuple[LogState, list[list[dict[str, Any]]], dict[str, dict[str, Any]]]) -> None:
    state, requests, _ = case
    whole = GroupDecider(replace(state, events=dict(state.events), appended={}), NOW)
    each = GroupDecider(replace(state, events=dict(state.events), appended={}), NOW)
    for n, sent in enumerate(requests):
        validated = drafts(*sent)
        prepared = prepare(validated, REPORTER, f"req-{n}")
        assert outcome_of(whole.decide(prepared)) == \
            outcome_of(each.decide(AppendRequest(validated, REPORTER, f"req-{n}")))
    assert whole.head == each.head


def test_a_request_of_new_facts_in_an_open_campaign_is_outlined_and_accepted_whole() -> None:
    sent = [event(t, event_id=str(uuid.uuid4())) for t in FACT_TYPES]
    request = prepare(drafts(*sent), REPORTER, "req")
    assert request.outline is not None
    assert request.outline.spans["2017"].listed_regions == frozenset({"330102"})
    outcome = GroupDecider(fresh_state(), NOW).decide(request)
    assert isinstance(outcome, Accepted)
    assert [r.position for r in outcome.results] == list(range(1, len(sent) + 1))
