"""Data quality over HTTP: dry runs, flags, reviews in the log, and closing over open flags."""

import asyncio
import csv
import io
import random
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from services.keyring import create_key
from services.settings import Settings
from tests.audit_support import qmstats
from tests.conftest import Database, Keys
from tests.conftest import test_settings as app_settings
from tests.e2e.wire import answers, eventually, expect_problem, read_log
from tests.factories import event
from tests.projection_support import settled
from tests.quality_support import raid

pytestmark = pytest.mark.usefixtures("campaign")

COUNTY = "330106"  # 西湖区, Hangzhou


@pytest.fixture
def settings() -> Settings:
    # Campaign 2017 is reported in the test's present: every event would be years late (late_report has
    # its unit tests); here the threshold is beyond that so the other flags are seen alone.
    return app_settings(flag_late_after_days=36500)


def _history(rng: random.Random, county: str = COUNTY, days: int = 12) -> list[dict[str, Any]]:
    return [event(region=county, occurred_at=f"2017-09-{day:02d}T10:00:00+08:00", data=raid(rng, 1.0))
            for day in range(1, days + 1)]


def _slip(rng: random.Random, county: str = COUNTY) -> dict[str, Any]:
    data = raid(rng, 1.0) | {"seized_value_yuan": "15.20"}  # 15.2 万元 typed as yuan
    return event(region=county, occurred_at="2017-09-20T10:00:00+08:00", data=data)


async def _post(client: TestClient, keys: Keys, events: list[dict[str, Any]]) -> int:
    response = await client.post("/v1/events", json={"events": events}, headers=keys.reporter)
    assert response.status == 201, await response.text()
    last: int = (await response.json())["last_position"]
    return last


async def _flags(client: TestClient, headers: dict[str, str], head: int, **query: str) -> dict[str, Any]:
    """GET flags once the flags projection has scored up to ``head``."""
    body: dict[str, Any] = {}

    async def scored() -> bool:
        nonlocal body
        response = await client.get("/v1/campaigns/2017/flags", params=query, headers=headers)
        assert response.status == 200, await response.text()
        body = await response.json()
        return bool(body["position"] >= head)

    await eventually(scored, seconds=10)
    return body


async def test_a_dry_run_checks_everything_and_stores_nothing(client: TestClient, keys: Keys) -> None:
    rng = random.Random(1)
    head = await _post(client, keys, _history(rng))
    before = await read_log(client, keys)
    await _flags(client, keys.viewer, head)
    slip, fine = _slip(rng), event(region=COUNTY, occurred_at="2017-09-21T10:00:00+08:00", data=raid(rng, 1.0))
    response = await client.post("/v1/events?dry_run=true", json={"events": [slip, fine]}, headers=keys.reporter)
    assert response.status == 200, await response.text()
    body = await response.json()
    assert body["dry_run"] is True
    assert body["results"] == [{"event_id": slip["event_id"], "status": "valid"},
                               {"event_id": fine["event_id"], "status": "valid"}]
    assert [(f["code"], f["event_id"], f["metric"], f["status"]) for f in body["flags"]] == [
        ("unit_scale", slip["event_id"], "seized_value_yuan", "open")]
    assert await read_log(client, keys) == before  # the head did not move
    assert (await _flags(client, keys.viewer, head))["flags"] == []

    # A resend of a stored event is answered as it would be: a duplicate.
    again = await client.post("/v1/events?dry_run=true", json=before[-1] | {"position": None}, headers=keys.reporter)
    assert again.status == 422  # (the log form is not an envelope: extra members are refused as in a real post)
    stored = {k: before[-1][k] for k in ("event_id", "type", "schema_version", "campaign", "region", "data")}
    stored["occurred_at"] = "2017-09-12T10:00:00+08:00"
    response = await client.post("/v1/events?dry_run=true", json=stored, headers=keys.reporter)
    assert (await response.json())["results"] == [{"event_id": stored["event_id"], "status": "duplicate"}]


async def test_a_dry_run_answers_the_same_errors_as_a_real_post(client: TestClient, keys: Keys) -> None:
    bad = event("inspection_completed", data={"batches_sampled": 10, "batches_passed": 12, "enterprises": 3,
                                              "category": "toys"})
    for url in ("/v1/events?dry_run=true", "/v1/events"):
        problem = await expect_problem(await client.post(url, json=bad, headers=keys.reporter), 422,
                                       "validation-failed", url)
        [error] = problem["errors"]
        assert (error["code"], error["loc"]) == ("passed_exceeds_sampled", ["data", "batches_passed"])
    outside = event(region="440103")
    await expect_problem(await client.post("/v1/events?dry_run=true", json=outside, headers=keys.reporter), 403,
                         "forbidden")
    late = event(occurred_at="2017-10-03T10:00:00+08:00")
    problem = await expect_problem(await client.post("/v1/events?dry_run=true", json=late, headers=keys.reporter),
                                   422, "validation-failed")
    assert problem["errors"][0]["loc"] == ["occurred_at"]
    sent = event()
    assert (await client.post("/v1/events", json=sent, headers=keys.reporter)).status == 201
    reused = sent | {"data": dict(sent["data"]) | {"personnel": 999}}
    await expect_problem(await client.post("/v1/events?dry_run=true", json=reused, headers=keys.reporter), 409,
                         "event-id-conflict")
    assert len(await read_log(client, keys)) == 2


@pytest.mark.parametrize("query", ["dryrun=true", "dry_run=yes", "dry_run=true&region=330000", "foo="])
async def test_an_unknown_or_malformed_parameter_on_a_write_is_refused_not_ignored(
        client: TestClient, keys: Keys, query: str) -> None:
    response = await client.post(f"/v1/events?{query}", json=event(), headers=keys.reporter)
    await expect_problem(response, 422, "invalid-parameter", query)
    assert len(await read_log(client, keys)) == 1  # only campaign_opened


async def test_flags_list_rank_review_and_scope(client: TestClient, keys: Keys, admin_conn: asyncpg.Connection) -> None:
    rng = random.Random(2)
    history = _history(rng) + _history(rng, "330204", days=8)  # Hangzhou and Ningbo counties
    slip = _slip(rng)
    twice = event(region="330204", occurred_at="2017-09-22T10:00:00+08:00", data=raid(rng, 1.0))
    head = await _post(client, keys, [*history, slip, twice, twice | {"event_id": event()["event_id"]}])
    body = await _flags(client, keys.viewer, head)
    assert [(f["code"], f["region"]) for f in body["flags"]] == [("unit_scale", COUNTY), ("possible_duplicate",
                                                                                           "330204")]
    top = body["flags"][0]
    assert set(top) >= {"id", "code", "severity", "event_id", "region", "metric", "observed", "expected", "score",
                        "message_zh", "message_en", "status"}
    assert (top["event_id"], top["observed"], top["severity"], top["status"]) == (slip["event_id"], "15.20",
                                                                                  "error", "open")
    assert top["score"] > body["flags"][1]["score"]
    assert "单位" in top["message_zh"]

    csv_response = await client.get("/v1/campaigns/2017/flags?format=csv", headers=keys.auditor)
    assert csv_response.content_type == "text/csv"
    rows = list(csv.DictReader(io.StringIO(await csv_response.text())))
    assert [r["id"] for r in rows] == [f["id"] for f in body["flags"]]

    _, token = await create_key(admin_conn, name="Hangzhou gateway", role="reporter", region="330100")
    hangzhou = {"Authorization": f"Bearer {token}"}
    await eventually(answers(client, hangzhou, 200))
    own = await _flags(client, hangzhou, head)
    assert [f["id"] for f in own["flags"]] == [top["id"]]
    await expect_problem(await client.get("/v1/campaigns/2017/flags?region=330200", headers=hangzhou), 403,
                         "forbidden")
    duplicate = body["flags"][1]
    review = {"verdict": "confirmed", "note": "宁波重复上报"}
    await expect_problem(await client.post(f"/v1/campaigns/2017/flags/{duplicate['id']}/review", json=review,
                                           headers=hangzhou), 403, "forbidden")

    response = await client.post(f"/v1/campaigns/2017/flags/{top['id']}/review",
                                 json={"verdict": "false_alarm", "note": "确为小额查获"}, headers=hangzhou)
    assert response.status == 201, await response.text()
    recorded = (await response.json())["event"]
    [logged] = [e for e in await read_log(client, keys) if e["event_id"] == recorded["event_id"]]
    assert (logged["type"], logged["region"], logged["data"]) == (
        "flag_reviewed", COUNTY, {"flag_id": top["id"], "verdict": "false_alarm", "note": "确为小额查获"})
    reviewed = await _flags(client, keys.viewer, recorded["position"], status="reviewed")
    assert [(f["id"], f["review"]["verdict"], f["review"]["note"]) for f in reviewed["flags"]] == [
        (top["id"], "false_alarm", "确为小额查获")]
    still_open = await _flags(client, keys.viewer, recorded["position"])
    assert [f["id"] for f in still_open["flags"]] == [duplicate["id"]]

    # Figures never change because of a flag: the slip still counts until someone corrects it.
    dashboard = await (await client.get(f"/v1/campaigns/2017/dashboard?region={COUNTY}", headers=keys.viewer)).json()
    expected = sum(float(e["data"]["seized_value_yuan"]) for e in [*history, slip] if e["region"] == COUNTY)
    assert float(dashboard["metrics"]["seized_value_yuan"]["value"]) == pytest.approx(expected)
    await expect_problem(await client.get("/v1/campaigns/2017/flags?status=closed", headers=keys.viewer), 422,
                         "invalid-parameter")
    await expect_problem(await client.get("/v1/campaigns/nosuch/flags", headers=keys.viewer), 404, "not-found")


async def test_closing_over_open_blocking_flags_needs_force_and_a_note(client: TestClient, keys: Keys) -> None:
    rng = random.Random(3)
    twice = event(region=COUNTY, occurred_at="2017-09-22T10:00:00+08:00", data=raid(rng, 1.0))
    head = await _post(client, keys, [twice, twice | {"event_id": event()["event_id"]}])
    [duplicate] = (await _flags(client, keys.viewer, head))["flags"]
    problem = await expect_problem(await client.post("/v1/campaigns/2017/close", headers=keys.admin), 409,
                                   "open-quality-flags")
    assert problem["flags"] == [{"id": duplicate["id"], "code": "possible_duplicate", "region": COUNTY,
                                 "event_id": duplicate["event_id"]}]
    await expect_problem(await client.post("/v1/campaigns/2017/close", json={"force": True}, headers=keys.admin),
                         422, "validation-failed")
    closed = await client.post("/v1/campaigns/2017/close", json={"force": True, "note": "省里已核实,年后更正"},
                               headers=keys.admin)
    assert closed.status == 201, await closed.text()
    [closing] = [e for e in await read_log(client, keys) if e["type"] == "campaign_closed"]
    assert closing["data"] == {"id": "2017", "note": "省里已核实,年后更正", "force": True}

    async def complete() -> bool:
        summary = await (await client.get("/v1/campaigns/2017/summary", headers=keys.viewer)).json()
        return bool(summary["quality"]["scored_to"] == summary["position"])

    await eventually(complete, seconds=10)
    summary = await (await client.get("/v1/campaigns/2017/summary", headers=keys.viewer)).json()
    assert summary["quality"]["open_flags"] == 1
    assert summary["quality"]["by_code"] == {"possible_duplicate": 1}
    assert summary["quality"]["sentence_zh"] == "数据质量：尚有1条数据质量提示未核实（疑似重复上报1条）。"
    assert summary["quality"]["sentence_en"] == "Data quality: 1 data-quality flag(s) are open (1 possible duplicate)."
    # Every format of the published summary states it: the note of md and html, a row of the CSV.
    for lang, sentence in (("zh", summary["quality"]["sentence_zh"]), ("en", summary["quality"]["sentence_en"])):
        for fmt in ("md", "html"):
            text = await (await client.get(f"/v1/campaigns/2017/summary?format={fmt}&lang={lang}",
                                           headers=keys.viewer)).text()
            assert sentence in text, (fmt, lang)
    table = await (await client.get("/v1/campaigns/2017/summary?format=csv&lang=en", headers=keys.viewer)).text()
    [flags_row] = [row for row in csv.DictReader(io.StringIO(table.lstrip("\ufeff")))
                   if row["metric code"] == "open_quality_flags"]
    assert (flags_row["value"], flags_row["round figure (zh)"]) == ("1", summary["quality"]["sentence_en"])


async def test_the_command_line_close_refuses_over_blocking_flags_as_http_does(
        client: TestClient, keys: Keys, database: Database) -> None:
    rng = random.Random(4)
    twice = event(region=COUNTY, occurred_at="2017-09-22T10:00:00+08:00", data=raid(rng, 1.0))
    head = await _post(client, keys, [twice, twice | {"event_id": event()["event_id"]}])
    [duplicate] = (await _flags(client, keys.viewer, head))["flags"]

    code, _, err = await qmstats(database.admin_url, "campaigns", "close", "--id", "2017")
    assert code == 1
    assert "1 open data-quality flag(s) block it" in err
    assert f"possible_duplicate {COUNTY} event {duplicate['event_id']} (flag {duplicate['id']})" in err
    code, _, err = await qmstats(database.admin_url, "campaigns", "close", "--id", "2017", "--force")
    assert code == 1
    assert "say why the campaign is closed over open data-quality flags" in err
    assert [e["type"] for e in await read_log(client, keys)].count("campaign_closed") == 0

    code, _, err = await qmstats(database.admin_url, "campaigns", "close", "--id", "2017", "--force",
                                 "--note", "省里已核实")
    assert code == 0, err
    [closing] = [e for e in await read_log(client, keys) if e["type"] == "campaign_closed"]
    assert closing["data"] == {"id": "2017", "note": "省里已核实", "force": True}


async def test_a_summary_asked_while_the_flags_are_a_moment_behind_states_them_caught_up(
        client: TestClient, keys: Keys, admin_conn: asyncpg.Connection) -> None:
    # The summary waits (bounded) for the flags projection to reach its position, so it states the flags as of
    # that position. Inside one repeatable-read snapshot that wait could never see the flags move: it sat out
    # its whole bound and then answered "scored up to position N-1".
    first = await _post(client, keys, [event()])
    await _flags(client, keys.viewer, first)
    async with admin_conn.transaction():
        await admin_conn.execute("SELECT 1 FROM quality_checkpoint FOR UPDATE")  # the flags cannot commit
        head = await _post(client, keys, [event()])
        await settled(client, keys.viewer, head)  # the figures reach head; the flags stay at head - 1
        asked = asyncio.ensure_future(client.get("/v1/campaigns/2017/summary", headers=keys.viewer))
        await asyncio.sleep(0.3)  # the summary is being computed while the flags are still behind
    response = await asked  # the lock is gone: the flags projector commits head
    assert response.status == 200, await response.text()
    body = await response.json()
    assert body["position"] == head
    assert body["quality"]["scored_to"] == head
