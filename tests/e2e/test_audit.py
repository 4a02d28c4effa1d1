"""Audit over HTTP: tampering found at the right position, figures as they stood at a past position,
the events behind a figure, one event's fate, and who may ask.

The expected figures come from tests/projection_support.py (a ledger kept by the test itself, not by
``projections/``); what the service answered live is recorded while posting and compared afterwards.
"""

from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from projections.projector import apply_batch
from services.app import create_app
from services.settings import Settings
from tests import conftest
from tests.audit_support import TAMPERED, TAMPERING, figures, post, tamper, two_campaign_log
from tests.conftest import Database, Keys
from tests.e2e.wire import expect_problem
from tests.factories import SAMPLE_DATA, correction, event, retraction
from tests.projection_support import (
    NATION,
    Ledger,
    Scenario,
    get_json,
    import_registry,
    lineage,
    realistic_mix,
    settled,
    shown,
)

pytestmark = pytest.mark.usefixtures("campaign")

DASHBOARD = "/v1/campaigns/2017/dashboard"

# --- tampering ---------------------------------------------------------------------------------------


async def verify(client: TestClient, keys: Keys, **query: str) -> dict[str, Any]:
    return await get_json(client, "/v1/audit/verify", keys.auditor, **query)


@pytest.mark.parametrize("how", list(TAMPERING))
async def test_verify_names_the_tampered_position(client: TestClient, keys: Keys, admin_conn: asyncpg.Connection,
                                                  how: str) -> None:
    await two_campaign_log(client, keys)
    await settled(client, keys.viewer, 8)
    before = await verify(client, keys)
    assert before["ok"] is True
    assert (before["checked"], before["first_bad_position"]) == (8, None)
    head = await get_json(client, "/v1/audit/head", keys.auditor)
    assert before["head"] == head
    assert head["position"] == 8
    assert len(bytes.fromhex(head["hash"])) == 32
    assert (await verify(client, keys, campaign="2017"))["ok"] is True

    await tamper(admin_conn, how, TAMPERED)

    after = await verify(client, keys)
    assert after["ok"] is False, after
    assert after["first_bad_position"] == TAMPERED, after
    this_campaign = await verify(client, keys, campaign="2017")
    assert (this_campaign["ok"], this_campaign["first_bad_position"], this_campaign["campaign"]) == (
        False, TAMPERED, "2017"), this_campaign
    # The other campaign's events and their links are intact.
    other = await verify(client, keys, campaign="2018")
    assert (other["ok"], other["checked"], other["first_bad_position"]) == (True, 3, None), other


async def test_tampering_with_the_first_and_the_last_event_is_found_too(
        client: TestClient, keys: Keys, admin_conn: asyncpg.Connection) -> None:
    await two_campaign_log(client, keys)
    await tamper(admin_conn, "data", 8)
    assert (await verify(client, keys))["first_bad_position"] == 8
    assert (await verify(client, keys, campaign="2018"))["first_bad_position"] == 8
    await tamper(admin_conn, "prev_hash", 1)
    body = await verify(client, keys)
    assert (body["ok"], body["first_bad_position"]) == (False, 1)
    assert (await verify(client, keys, campaign="2017"))["first_bad_position"] == 1


# --- figures as they stood at a past position ---------------------------------------------------------


@dataclass
class Posted:
    """A scenario posted step by step: where each event landed and the head after each step."""

    scenario: Scenario
    positions: dict[str, int] = field(default_factory=dict)
    heads: list[int] = field(default_factory=list)

    def ledger_at(self, position: int) -> Ledger:
        """The test's own account of the facts as they stood at ``position``."""
        ledger = Ledger()
        ledger.record_all(e for r in self.scenario.requests for e in r if self.positions[e["event_id"]] <= position)
        return ledger

    def corrections(self, until: int) -> dict[str, list[str]]:
        """original event_id → its corrections' ids (position order) up to ``until``."""
        out: defaultdict[str, list[str]] = defaultdict(list)
        for request in self.scenario.requests:
            for e in request:
                if e["type"] == "event_corrected" and self.positions[e["event_id"]] <= until:
                    out[e["data"]["corrects"]].append(e["event_id"])
        return dict(out)


Views = dict[str, dict[str, str]]
VIEWS: Views = {"nation": {}, "province": {"region": "330000"}, "counties": {"level": "county"}}


async def post_in_steps(client: TestClient, keys: Keys, scenario: Scenario,
                        record: Views | None = None) -> tuple[Posted, list[tuple[int, dict[str, dict[str, Any]]]]]:
    """Post each request of the scenario; after each, wait until the projection reaches the head and
    (with ``record``) keep the live dashboards of those views with the position they show."""
    posted = Posted(scenario)
    recorded: list[tuple[int, dict[str, dict[str, Any]]]] = []
    for request in scenario.requests:
        response = await client.post("/v1/events", json={"events": request}, headers=keys.admin)
        assert response.status == 201, await response.text()
        body = await response.json()
        posted.positions |= {r["event_id"]: r["position"] for r in body["results"]}
        head = body["last_position"]
        posted.heads.append(head)
        await settled(client, keys.viewer, head)
        if record is not None:
            recorded.append((head, await live_views(client, keys, head, record)))
    return posted, recorded


async def live_views(client: TestClient, keys: Keys, head: int, views: Views) -> dict[str, dict[str, Any]]:
    """The live dashboards of ``views`` once the projection has reached ``head``."""
    await settled(client, keys.viewer, head)
    bodies = {name: await get_json(client, DASHBOARD, keys.viewer, **query) for name, query in views.items()}
    assert all(b["position"] == head for b in bodies.values()), [b["position"] for b in bodies.values()]
    return bodies


async def test_at_position_equals_the_live_answers_recorded_while_posting(
        client: TestClient, keys: Keys, admin_conn: asyncpg.Connection, areacodes: Path) -> None:
    await import_registry(admin_conn)
    posted, recorded = await post_in_steps(client, keys, realistic_mix(seed=2017), VIEWS)
    assert len(recorded) >= 6

    # Some recorded positions fall inside correction chains: after an original and its first
    # correction, before its last one.
    chains = {t: [posted.positions[c] for c in cs] for t, cs in posted.corrections(posted.heads[-1]).items()}
    inside = {p for p, _ in recorded for t, cs in chains.items() if len(cs) >= 2 and cs[0] <= p < cs[-1]}
    assert len(inside) >= 3, inside
    # A last step reaches a county, a province and a category nobody reported before, and moves a fact
    # into another new county: the figures at the position before it must not show them, even with
    # zeros (the answer there is folded backward from the live tables).
    ledger = posted.scenario.ledger
    target = next(f for f in ledger.standing if f.type == "publicity_held" and f.region.startswith("33"))
    last = [event("inspection_completed", region="320102", data=SAMPLE_DATA["inspection_completed"]
                  | {"category": "cosmetics"}),
            correction(target.event_id, dict(target.data), region="330109", occurred_at="2017-09-20T09:00:00+08:00")]
    assert not ledger.within("320000")
    assert "cosmetics" not in ledger.by_label(NATION, "batches_sampled")
    head = (await post(client, keys.admin, *last))[-1]
    recorded.append((head, await live_views(client, keys, head, VIEWS)))
    assert {c["code"] for c in recorded[-1][1]["counties"]["children"]} - {
        c["code"] for c in recorded[-2][1]["counties"]["children"]} == {"320102", "330109"}

    for position, bodies in recorded:
        for name, query in VIEWS.items():
            response = await client.get(DASHBOARD, params={**query, "at_position": str(position)},
                                        headers=keys.auditor)
            assert response.status == 200, await response.text()
            past = await response.json()
            assert past["position"] == position
            assert past["lag_events"] == 0
            assert figures(past) == figures(bodies[name]), f"{name} at {position}"

    # Immutable: asked again (now cached), the same; an admin may ask too.
    position, bodies = recorded[len(recorded) // 2]
    again = await get_json(client, DASHBOARD, keys.admin, at_position=str(position))
    assert figures(again) == figures(bodies["nation"])


async def at_positions(client: TestClient, keys: Keys, positions: list[int]) -> dict[tuple[int, str], Any]:
    out = {}
    for position in positions:
        for name, query in VIEWS.items():
            body = await get_json(client, DASHBOARD, keys.auditor, **query, at_position=str(position))
            assert body["position"] == position
            out[(position, name)] = figures(body)
    return out


@pytest.mark.parametrize("settings", [conftest.test_settings(run_projector=False)])
async def test_at_position_is_the_same_whichever_way_it_is_folded(
        client: TestClient, keys: Keys, database: Database, admin_conn: asyncpg.Connection, settings: Settings,
        areacodes: Path) -> None:
    """Forward from 0, backward from the live tables and forward past them give one answer; each position
    is asked of two services (answers are cached per service) while the projection stands at two places."""
    await import_registry(admin_conn)
    scenario = realistic_mix(seed=2017)
    posted = Posted(scenario)
    for request in scenario.requests:
        positions = await post(client, keys.admin, *request)
        posted.positions |= {e["event_id"]: p for e, p in zip(request, positions, strict=True)}
        posted.heads.append(positions[-1])
    heads = posted.heads
    wanted = [heads[1], heads[5], heads[7]]

    await apply_batch(admin_conn, batch_size=10_000, until=heads[3])
    # Projection at heads[3]: heads[1] backward from it, the others forward past it.
    early = await at_positions(client, keys, wanted)
    while (await apply_batch(admin_conn, batch_size=10_000)).events:
        pass
    # Projection at the head: heads[1] forward from 0, the others backward from it.
    async with TestClient(TestServer(create_app(settings, database.service_url))) as other:
        late = await at_positions(other, keys, wanted)
    assert late == early
    for position in wanted:
        expected = posted.ledger_at(position)
        for metric in ("dens_busted", "seized_value_yuan", "batches_passed"):
            assert late[(position, "nation")]["metrics"][metric]["value"] == shown(
                metric, expected.totals(NATION)[metric]), (position, metric)


async def test_at_position_beyond_the_head_is_422_and_for_auditors_only(client: TestClient, keys: Keys) -> None:
    head = (await post(client, keys.reporter, event(), event("inspection_completed")))[-1]
    await settled(client, keys.viewer, head)
    at_head = await get_json(client, DASHBOARD, keys.auditor, at_position=str(head))
    assert at_head["metrics"]["dens_busted"]["value"] == SAMPLE_DATA["raid_conducted"]["dens_busted"]
    body = await expect_problem(await client.get(DASHBOARD, params={"at_position": str(head + 1)},
                                                 headers=keys.auditor), 422, "invalid-parameter")
    assert str(head) in body["detail"]
    for bad in ("-1", "x", "1.5"):
        await expect_problem(await client.get(DASHBOARD, params={"at_position": bad}, headers=keys.auditor),
                             422, "invalid-parameter", bad)
    for role in ("viewer", "reporter"):
        response = await client.get(DASHBOARD, params={"at_position": "1"}, headers=getattr(keys, role))
        await expect_problem(response, 403, "forbidden", role)
    await expect_problem(await client.get(DASHBOARD, params={"at_position": "1"}), 401, "unauthenticated")


# --- provenance --------------------------------------------------------------------------------------


async def provenance(client: TestClient, keys: Keys, metric: str, region: str, *, limit: int = 7,
                     at_position: int | None = None) -> tuple[Any, int, list[dict[str, Any]]]:
    """Every page of the events behind one figure: (figure, position, contributions)."""
    after, items, pages = 0, [], 0
    figure: Any = None
    position: int | None = None
    while True:
        query = {"region": region, "limit": str(limit), "after": str(after)}
        if at_position is not None:
            query["at_position"] = str(at_position)
        page = await get_json(client, f"/v1/campaigns/2017/figures/{metric}/events", keys.auditor, **query)
        pages += 1
        assert (page["campaign"], page["metric"], page["region"]) == ("2017", metric, region)
        assert len(page["events"]) <= limit
        assert all(e["position"] > after for e in page["events"])
        assert figure is None or (page["figure"], page["position"]) == (figure, position), "pages disagree"
        figure, position = page["figure"], page["position"]
        items.extend(page["events"])
        if page["complete"]:
            break
        assert page["next_after"] > after, page
        after = page["next_after"]
        assert pages < 500
    assert position is not None
    positions = [e["position"] for e in items]
    assert positions == sorted(set(positions)), "each original once, in position order"
    return figure, position, items


def total(items: list[dict[str, Any]]) -> Decimal:
    return sum((Decimal(str(e["contribution"])) for e in items), Decimal(0))


def expected_items(posted: Posted, ledger: Ledger, until: int, metric: str, region: str) -> list[dict[str, Any]]:
    """What the provenance of (metric, region) at ``until`` must list, from the test's own ledger."""
    corrections = posted.corrections(until)
    out = []
    for event_id, fact in ledger.facts.items():
        value = fact.values().get(metric) if fact is not None else None
        if fact is None or value is None or not value or region not in lineage(fact.region):
            continue
        fixes = corrections.get(event_id, [])
        out.append({"event_id": event_id, "position": posted.positions[event_id], "type": fact.type,
                    "region": fact.region, "day": fact.day.isoformat(), "contribution": shown(metric, value),
                    "corrected_by": fixes,
                    "effective_since": posted.positions[fixes[-1]] if fixes else posted.positions[event_id]})
    return sorted(out, key=lambda e: e["position"])


def moved_county(posted: Posted, metric: str) -> tuple[str, str, str]:
    """(event_id, old county, new county) of a fact feeding ``metric`` that a correction moved between
    counties and that still stands there with a non-zero value."""
    ledger = posted.scenario.ledger
    for request in posted.scenario.requests:
        for e in request:
            if e["type"] != "event_corrected":
                continue
            target = e["data"]["corrects"]
            original = next(o for r in posted.scenario.requests for o in r if o["event_id"] == target)
            fact = ledger.facts[target]
            if (fact is not None and fact.region == e["region"] != original["region"]
                    and not original["region"].endswith("00") and not e["region"].endswith("00")
                    and fact.values().get(metric)):
                return target, original["region"], e["region"]
    raise AssertionError(f"the scenario moves no {metric} fact between counties")


@pytest.mark.parametrize("metric", ["dens_busted", "seized_value_yuan"])
async def test_provenance_adds_up_to_the_figure_after_corrections_and_retractions(
        client: TestClient, keys: Keys, admin_conn: asyncpg.Connection, areacodes: Path, metric: str) -> None:
    await import_registry(admin_conn)
    posted, _ = await post_in_steps(client, keys, realistic_mix(seed=2017))
    head, ledger = posted.heads[-1], posted.scenario.ledger
    moved, old_county, new_county = moved_county(posted, metric)
    regions = (NATION, "330000", "330100", new_county, old_county)

    for region in regions:
        figure, position, items = await provenance(client, keys, metric, region)
        dashboard = await get_json(client, DASHBOARD, keys.viewer, region=region)
        assert position == head == dashboard["position"]
        assert figure == dashboard["metrics"][metric]["value"] == shown(metric, ledger.totals(region)[metric]), region
        assert shown(metric, total(items)) == figure, f"{metric} {region}: contributions do not add up"
        assert items == expected_items(posted, ledger, head, metric, region), f"{metric} {region}"

    # The narrative an auditor follows: a corrected fact shows its effective contribution and who
    # corrected it; a retracted one is gone; a fact corrected into another county is under that one only.
    _, _, nation = await provenance(client, keys, metric, NATION, limit=1000)
    listed = {e["event_id"]: e for e in nation}
    corrections = posted.corrections(head)
    corrected = [eid for eid in corrections if eid in listed]
    assert corrected, "no corrected fact contributes"
    for eid in corrected:
        assert listed[eid]["corrected_by"] == corrections[eid]
        assert listed[eid]["contribution"] == shown(metric, ledger.facts[eid].values()[metric])  # type: ignore[union-attr]
    retracted = [eid for eid, fact in ledger.facts.items() if fact is None]
    assert retracted
    assert not set(retracted) & set(listed)
    _, _, under_new = await provenance(client, keys, metric, new_county)
    _, _, under_old = await provenance(client, keys, metric, old_county)
    assert moved in {e["event_id"] for e in under_new}
    assert moved not in {e["event_id"] for e in under_old}
    assert next(e for e in under_new if e["event_id"] == moved)["region"] == new_county

    # At a past position (inside correction chains): the figures as they stood then.
    for until in (posted.heads[1], posted.heads[len(posted.heads) // 2]):
        then = posted.ledger_at(until)
        for region in (NATION, "330000", new_county):
            figure, position, items = await provenance(client, keys, metric, region, at_position=until)
            past = await get_json(client, DASHBOARD, keys.auditor, region=region, at_position=str(until))
            assert position == until
            assert figure == past["metrics"][metric]["value"] == shown(metric, then.totals(region)[metric])
            assert shown(metric, total(items)) == figure
            assert items == expected_items(posted, then, until, metric, region), f"{metric} {region} at {until}"


async def test_provenance_parameters(client: TestClient, keys: Keys) -> None:
    head = (await post(client, keys.reporter, event()))[-1]
    await settled(client, keys.viewer, head)
    path = "/v1/campaigns/2017/figures/{}/events"
    await expect_problem(await client.get(path.format("parades"), headers=keys.auditor), 422, "invalid-parameter")
    await expect_problem(await client.get("/v1/campaigns/1999/figures/dens_busted/events", headers=keys.auditor),
                         404, "not-found")
    await expect_problem(await client.get(path.format("dens_busted"), params={"at_position": str(head + 1)},
                                          headers=keys.auditor), 422, "invalid-parameter")
    empty = await get_json(client, path.format("dens_busted"), keys.auditor, region="440000")
    assert (empty["figure"], empty["events"], empty["complete"]) == (0, [], True)


# --- one event and its fate --------------------------------------------------------------------------


async def test_an_event_with_its_corrections_retraction_and_effective_payload(client: TestClient,
                                                                              keys: Keys) -> None:
    original = event(region="330102")
    kept = event("publicity_held", region="330203")
    await post(client, keys.reporter, original, kept)
    first = correction(original["event_id"], SAMPLE_DATA["raid_conducted"] | {"dens_busted": 4}, region="330102")
    moved = correction(original["event_id"], SAMPLE_DATA["raid_conducted"] | {"dens_busted": 5,
                                                                              "seized_value_yuan": "7.5"},
                       region="330203", occurred_at="2017-09-09T01:00:00+08:00")
    positions = await post(client, keys.reporter, first, moved)

    body = await get_json(client, f"/v1/events/{original['event_id']}", keys.auditor)
    assert body["event"]["event_id"] == original["event_id"]
    assert body["event"]["data"] == original["data"]
    assert body["event"]["position"] == 2
    assert [c["event_id"] for c in body["corrections"]] == [first["event_id"], moved["event_id"]]
    assert [c["position"] for c in body["corrections"]] == positions
    assert all(c["hash"] and c["prev_hash"] for c in [body["event"], *body["corrections"]])
    assert body["retraction"] is None
    assert body["effective"] == {"region": "330203", "day": "2017-09-09", "effective_since": positions[-1],
                                 "data": SAMPLE_DATA["raid_conducted"] | {"dens_busted": 5,
                                                                          "seized_value_yuan": "7.50"}}

    gone = retraction(original["event_id"], "counted twice", region="330203")
    (gone_at,) = await post(client, keys.reporter, gone)
    body = await get_json(client, f"/v1/events/{original['event_id']}", keys.auditor)
    assert len(body["corrections"]) == 2
    assert body["retraction"]["event_id"] == gone["event_id"]
    assert body["retraction"]["position"] == gone_at
    assert body["retraction"]["data"]["reason"] == "counted twice"
    assert body["effective"] is None

    untouched = await get_json(client, f"/v1/events/{kept['event_id'].upper()}", keys.admin)
    assert (untouched["corrections"], untouched["retraction"]) == ([], None)
    assert untouched["effective"]["data"] == kept["data"]
    assert untouched["effective"]["region"] == "330203"

    for unknown in ("6f1c3b1e-0000-4000-8000-000000000000", "not-a-uuid", "123"):
        await expect_problem(await client.get(f"/v1/events/{unknown}", headers=keys.auditor), 404, "not-found",
                             unknown)
    await expect_problem(await client.get(f"/v1/events/{original['event_id']}", headers=keys.reporter),
                         403, "forbidden")


# --- who may ask -------------------------------------------------------------------------------------


async def test_every_audit_route_is_for_auditors_and_admins(client: TestClient, keys: Keys) -> None:
    sent = event()
    await post(client, keys.reporter, sent)
    routes = ["/v1/events", f"/v1/events/{sent['event_id']}", "/v1/audit/verify", "/v1/audit/verify?campaign=2017",
              "/v1/audit/head", "/v1/campaigns/2017/figures/dens_busted/events",
              "/v1/campaigns/2017/figures/dens_busted/events?at_position=1", f"{DASHBOARD}?at_position=1"]
    for route in routes:
        for role in ("auditor", "admin"):
            response = await client.get(route, headers=getattr(keys, role))
            assert response.status == 200, f"{role} {route}: {await response.text()}"
        for role in ("viewer", "reporter"):
            await expect_problem(await client.get(route, headers=getattr(keys, role)), 403, "forbidden",
                                 f"{role} {route}")
        await expect_problem(await client.get(route), 401, "unauthenticated", route)
        await expect_problem(await client.get(route, headers={"Authorization": "Bearer qm.nope.nope"}),
                             401, "unauthenticated", route)
    ndjson = await client.get("/v1/events", headers=keys.viewer | {"Accept": "application/x-ndjson"})
    await expect_problem(ndjson, 403, "forbidden")
