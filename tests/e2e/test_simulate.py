"""``qmstats simulate`` against the real service: the dashboard shows exactly the totals the simulator expects,
also when answers are lost on the way back and the simulator has to retry."""

import asyncio
import itertools
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from typer.testing import CliRunner

from events.catalogue import METRICS
from events.region_store import import_region_list
from events.regions import EXPECTED_PROVINCES
from services.cli import app
from services.regionlists import read_region_list
from services.simulate.budget import Budget
from services.simulate.client import RetryPolicy
from services.simulate.ledger import Expected
from services.simulate.run import SimulationOptions, SimulationReport, simulate
from tests.conftest import Keys

DASHBOARD = "/v1/campaigns/2017/dashboard"


def token(headers: dict[str, str]) -> str:
    return headers["Authorization"].removeprefix("Bearer ")


async def settled_dashboard(client: TestClient, keys: Keys, position: int) -> dict[str, Any]:
    """The national dashboard once the projection has caught up with ``position`` (at most 20 s)."""
    body: dict[str, Any] = {}
    async with asyncio.timeout(20):
        while True:
            response = await client.get(DASHBOARD, headers=keys.viewer)
            assert response.status == 200, await response.text()
            body = await response.json()
            if body["position"] >= position:
                return body
            await asyncio.sleep(0.05)


def assert_dashboard_shows(dashboard: dict[str, Any], expected: Expected) -> None:
    assert {m: f["value"] for m, f in dashboard["metrics"].items()} == expected.national
    children = {c["code"]: c["metrics"] for c in dashboard["children"]}
    assert set(children) == EXPECTED_PROVINCES == set(expected.provinces)
    for code, figures in expected.provinces.items():
        assert children[code] == figures, code
    assert dashboard["pass_rate"]["overall"] == expected.pass_rate
    assert int(expected.national["dens_busted"]) > 0
    assert set(expected.national) == set(METRICS)


def assert_counts(report: SimulationReport, budget: Budget) -> None:
    tally = report.tally
    assert tally.problems == []
    assert tally.failed == 0
    assert report.complete
    assert tally.sent == budget.total
    assert tally.accepted == budget.facts + budget.corrections + budget.retractions
    assert tally.rejected == budget.invalid
    assert tally.duplicates == budget.resent + budget.whole_batch_resent + tally.retried_duplicates


async def test_the_dashboard_equals_the_simulators_expected_totals(
        client: TestClient, keys: Keys, admin_conn: asyncpg.Connection, areacodes: Path) -> None:
    codes = read_region_list((areacodes / "2017.txt").read_text("utf-8-sig"))
    await import_region_list(admin_conn, 2017, codes, source="2017.txt")
    options = SimulationOptions(url=str(client.make_url("/")), token=token(keys.admin), campaign="2017", seed=3,
                                events=1500, batch=100, open_campaign=True, check=True, check_seconds=20)
    report = await simulate(options)

    assert report.regions == "the service's list"  # the service checks codes against its 2017 list
    assert str(report.days[0]) == "2017-09-01"
    assert str(report.days[1]) == "2017-09-30"
    assert_counts(report, Budget.of(1500, 100))
    assert report.tally.retried_duplicates == 0
    assert report.check == []
    assert_dashboard_shows(await settled_dashboard(client, keys, report.tally.last_position), report.expected)

    again = await simulate(options)  # the same seed again: every event is already in the log
    assert again.tally.already_stored == again.tally.accepted == report.tally.accepted
    assert again.expected == report.expected
    assert again.check == []


@pytest.fixture
async def lossy_proxy(client: TestClient) -> AsyncIterator[tuple[str, dict[str, int]]]:
    """A proxy in front of the service that loses answers: some requests reach the service but the client gets
    502 or nothing in time; others get 503 without reaching it."""
    upstream = str(client.make_url("/")).rstrip("/")
    posts = itertools.count(1)
    faults = {"lost_answer": 0, "unavailable": 0, "slow_answer": 0, "stored_but_unanswered": 0}

    async def forward(request: web.Request) -> web.Response:
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() in ("authorization", "content-type")}
        n = next(posts) if request.method == "POST" and request.path == "/v1/events" else 0
        if n and n % 7 == 0:
            faults["unavailable"] += 1
            return web.Response(status=503, text="upstream busy")
        async with session.request(request.method, upstream + request.path_qs, data=body, headers=headers) as r:
            payload, status, ctype = await r.read(), r.status, r.headers.get("Content-Type")
        stored = json.loads(payload)["results"] if n and status in (200, 201) else []
        created = sum(r["status"] == "created" for r in stored)
        if n and n % 4 == 0:
            faults["lost_answer"] += 1
            faults["stored_but_unanswered"] += created
            return web.Response(status=502, text="connection reset by upstream")
        if n == 6:
            faults["slow_answer"] += 1
            faults["stored_but_unanswered"] += created
            await asyncio.sleep(1.5)  # longer than the client waits (1 s)
        return web.Response(status=status, body=payload, headers={"Content-Type": ctype or "application/json"})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", forward)
    async with aiohttp.ClientSession() as session, TestServer(app) as server:
        yield str(server.make_url("/")), faults


async def test_retries_after_lost_answers_come_back_as_duplicates_and_count_once(
        client: TestClient, keys: Keys, campaign: dict[str, str],
        lossy_proxy: tuple[str, dict[str, int]]) -> None:
    url, faults = lossy_proxy
    options = SimulationOptions(url=url, token=token(keys.admin), campaign="2017", seed=9, events=600, batch=25,
                                concurrency=4, retry=RetryPolicy(attempts=10, first_wait=0.01, max_wait=0.05,
                                                                 timeout_seconds=1.0))
    report = await simulate(options)

    assert faults["lost_answer"] > 3
    assert faults["unavailable"] > 1
    assert faults["slow_answer"] == 1
    assert report.tally.retries >= faults["lost_answer"] + faults["unavailable"] + faults["slow_answer"]
    # Each event the service stored but whose answer was lost comes back once as a duplicate of the retry.
    assert faults["stored_but_unanswered"] >= 25
    assert report.tally.retried_duplicates == faults["stored_but_unanswered"]
    assert_counts(report, Budget.of(600, 25))
    assert report.regions == "synthesized codes"
    assert_dashboard_shows(await settled_dashboard(client, keys, report.tally.last_position), report.expected)


async def test_the_command_prints_the_totals_and_writes_them_as_json(
        client: TestClient, keys: Keys, campaign: dict[str, str], tmp_path: Path) -> None:
    expect = tmp_path / "expect.json"
    args = ["simulate", "--campaign", "2017", "--url", str(client.make_url("/")), "--token", token(keys.admin),
            "--events", "400", "--batch", "50", "--seed", "4", "--expect-json", str(expect), "--check"]
    # In a thread: the command runs its own event loop while this one keeps serving it.
    result = await asyncio.to_thread(CliRunner().invoke, app, args, env={"COLUMNS": "200", "NO_COLOR": "1"})

    assert result.exit_code == 0, result.output
    assert "Expected national totals" in result.stdout
    budget = Budget.of(400, 50)
    accepted = budget.facts + budget.corrections + budget.retractions
    assert f"events sent 400, accepted {accepted}, duplicates {budget.resent}" in result.stdout
    written = json.loads(expect.read_text("utf-8"))
    assert (written["campaign"], written["events_sent"], written["events_accepted"], written["duplicates"],
            written["rejected"]) == ("2017", 400, accepted, budget.resent, budget.invalid)
    assert written["check"] == []
    dashboard = await settled_dashboard(client, keys, written["last_position"])
    assert {m: f["value"] for m, f in dashboard["metrics"].items()} == written["national"]
    assert dashboard["pass_rate"]["overall"] == written["pass_rate"]
    assert {c["code"]: c["metrics"] for c in dashboard["children"]} == written["provinces"]


def test_the_command_refuses_a_remote_host_without_allow_remote() -> None:
    result = CliRunner().invoke(app, ["simulate", "--campaign", "2017", "--url", "http://192.0.2.10:8080",
                                      "--token", "t"])
    assert result.exit_code == 2
    assert "refusing to send load to 192.0.2.10" in result.output
