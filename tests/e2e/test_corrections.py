"""Fixing mistakes without rewriting history: corrections, retractions, and closed campaigns."""

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import Keys
from tests.e2e.wire import expect_problem, read_log, stored_ids
from tests.factories import SAMPLE_DATA, correction, event, retraction

pytestmark = pytest.mark.usefixtures("campaign")


async def _posted(client: TestClient, headers: dict[str, str], *sent: dict[str, Any]) -> list[int]:
    response = await client.post("/v1/events", json={"events": list(sent)}, headers=headers)
    assert response.status == 201, await response.text()
    return [r["position"] for r in (await response.json())["results"]]


async def _refused(client: TestClient, keys: Keys, sent: dict[str, Any], status: int, slug: str,
                   headers: dict[str, str] | None = None) -> dict[str, Any]:
    response = await client.post("/v1/events", json=sent, headers=headers or keys.reporter)
    body = await expect_problem(response, status, slug, sent["type"])
    assert sent["event_id"] not in await stored_ids(client, keys)
    return body


async def test_a_correction_and_a_retraction_are_appended_not_rewritten(client: TestClient, keys: Keys) -> None:
    original, mistaken = event(), event("publicity_held")
    await _posted(client, keys.reporter, original, mistaken)
    fixed = SAMPLE_DATA["raid_conducted"] | {"dens_busted": 5, "seized_value_yuan": 160000}
    fix = correction(original["event_id"], fixed, region="330106")
    withdraw = retraction(mistaken["event_id"], reason="held in 2016")
    assert await _posted(client, keys.reporter, fix, withdraw) == [4, 5]
    log = await read_log(client, keys)
    assert [e["type"] for e in log] == ["campaign_opened", "raid_conducted", "publicity_held", "event_corrected",
                                        "event_retracted"]
    assert log[1]["data"] == original["data"]  # the original is untouched
    assert log[3]["region"] == "330106"
    assert log[3]["data"] == {"corrects": original["event_id"],
                              "replacement": fixed | {"seized_value_yuan": "160000.00"}}
    assert log[4]["data"] == {"retracts": mistaken["event_id"], "reason": "held in 2016"}


async def test_a_correction_of_an_event_in_the_same_batch_is_accepted(client: TestClient, keys: Keys) -> None:
    original = event("pledge_signed")
    fix = correction(original["event_id"], {"enterprises": 26})
    assert await _posted(client, keys.reporter, original, fix) == [2, 3]


async def test_correcting_or_retracting_an_unknown_event_is_422(client: TestClient, keys: Keys) -> None:
    ghost = "00000000-0000-4000-8000-000000000000"
    body = await _refused(client, keys, correction(ghost, SAMPLE_DATA["raid_conducted"]), 422, "validation-failed")
    assert [e["loc"] for e in body["errors"]] == [["data", "corrects"]]
    body = await _refused(client, keys, retraction(ghost), 422, "validation-failed")
    assert [e["loc"] for e in body["errors"]] == [["data", "retracts"]]


async def test_retracting_twice_is_422(client: TestClient, keys: Keys) -> None:
    original = event()
    await _posted(client, keys.reporter, original, retraction(original["event_id"]))
    body = await _refused(client, keys, retraction(original["event_id"], reason="again"), 422, "validation-failed")
    assert [(e["index"], e["loc"]) for e in body["errors"]] == [(0, ["data", "retracts"])]
    assert "retracted" in body["errors"][0]["msg"]


async def test_retracting_twice_in_one_batch_is_422_and_stores_neither(client: TestClient, keys: Keys) -> None:
    original = event()
    await _posted(client, keys.reporter, original)
    first, second = retraction(original["event_id"]), retraction(original["event_id"], reason="again")
    response = await client.post("/v1/events", json={"events": [first, second]}, headers=keys.reporter)
    body = await expect_problem(response, 422, "validation-failed")
    assert [e["index"] for e in body["errors"]] == [1]
    assert await stored_ids(client, keys) & {first["event_id"], second["event_id"]} == set()


async def test_correcting_a_retracted_event_is_422(client: TestClient, keys: Keys) -> None:
    original = event()
    await _posted(client, keys.reporter, original, retraction(original["event_id"]))
    body = await _refused(client, keys, correction(original["event_id"], SAMPLE_DATA["raid_conducted"]), 422,
                          "validation-failed")
    assert [e["loc"] for e in body["errors"]] == [["data", "corrects"]]


async def test_a_replacement_must_fit_the_original_type(client: TestClient, keys: Keys) -> None:
    original = event("inspection_completed")
    await _posted(client, keys.reporter, original)
    wrong = correction(original["event_id"], SAMPLE_DATA["raid_conducted"])
    body = await _refused(client, keys, wrong, 422, "validation-failed")
    assert all(e["loc"][:2] == ["data", "replacement"] for e in body["errors"])
    impossible = correction(original["event_id"], SAMPLE_DATA["inspection_completed"] | {"batches_passed": 41})
    await _refused(client, keys, impossible, 422, "validation-failed")


async def test_a_correction_cannot_be_corrected(client: TestClient, keys: Keys) -> None:
    original = event()
    fix = correction(original["event_id"], SAMPLE_DATA["raid_conducted"] | {"cases": 3})
    await _posted(client, keys.reporter, original, fix)
    body = await _refused(client, keys, correction(fix["event_id"], SAMPLE_DATA["raid_conducted"]), 422,
                          "validation-failed")
    assert [e["loc"] for e in body["errors"]] == [["data", "corrects"]]


async def test_a_reporter_may_not_correct_another_provinces_event(client: TestClient, keys: Keys) -> None:
    guangdong = event(region="440103")
    await _posted(client, keys.admin, guangdong)
    # The correction itself is placed inside the reporter's scope; the event it corrects is not.
    for sent in (correction(guangdong["event_id"], SAMPLE_DATA["raid_conducted"], region="330102"),
                 retraction(guangdong["event_id"], region="330102")):
        body = await _refused(client, keys, sent, 403, "forbidden")
        assert "440103" in body["detail"]
    fix = correction(guangdong["event_id"], SAMPLE_DATA["raid_conducted"] | {"cases": 1}, region="440103")
    assert await _posted(client, keys.admin, fix) == [3]


async def test_a_closed_campaign_refuses_events_until_it_is_reopened(client: TestClient, keys: Keys) -> None:
    original = event()
    await _posted(client, keys.reporter, original)
    closed = await client.post("/v1/campaigns/2017/close", json={"note": "final figures"}, headers=keys.admin)
    assert closed.status == 201
    assert (await closed.json())["status"] == "closed"

    late = event()
    body = await _refused(client, keys, late, 409, "campaign-closed")
    assert "2017" in body["detail"]
    await _refused(client, keys, correction(original["event_id"], SAMPLE_DATA["raid_conducted"]), 409,
                   "campaign-closed")
    await _refused(client, keys, retraction(original["event_id"]), 409, "campaign-closed")
    await _refused(client, keys, event(), 409, "campaign-closed", headers=keys.admin)
    # A retry of an event stored before the close is still answered as a duplicate.
    retry = await client.post("/v1/events", json=original, headers=keys.reporter)
    assert retry.status == 200

    reopened = await client.post("/v1/campaigns/2017/reopen", json={"note": "Zhejiang reported late"},
                                 headers=keys.admin)
    assert reopened.status == 201
    assert (await reopened.json())["status"] == "open"
    assert (await client.post("/v1/events", json=late, headers=keys.reporter)).status == 201
    fix = correction(original["event_id"], SAMPLE_DATA["raid_conducted"] | {"cases": 9})
    assert (await client.post("/v1/events", json=fix, headers=keys.reporter)).status == 201
    types = [e["type"] for e in await read_log(client, keys)]
    assert types == ["campaign_opened", "raid_conducted", "campaign_closed", "campaign_reopened", "raid_conducted",
                     "event_corrected"]
    reopen_event = (await read_log(client, keys, type="campaign_reopened"))[0]
    assert reopen_event["data"]["reason"] == "Zhejiang reported late"
