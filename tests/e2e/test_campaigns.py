"""The campaign lifecycle as an admin drives it: open (idempotently), close, reopen, read."""

from typing import Any

from aiohttp.test_utils import TestClient

from tests.conftest import Keys
from tests.e2e.wire import expect_problem, read_log
from tests.factories import CAMPAIGN

NEXT_YEAR = {"id": "2018", "theme": "全面提升质量 推动高质量发展 2018", "starts_on": "2018-09-01",
             "ends_on": "2018-09-30"}


async def _open(client: TestClient, keys: Keys, body: dict[str, Any] = CAMPAIGN) -> dict[str, Any]:
    response = await client.post("/v1/campaigns", json=body, headers=keys.admin)
    assert response.status == 201, await response.text()
    view: dict[str, Any] = await response.json()
    return view


async def test_opening_a_campaign_appends_campaign_opened(client: TestClient, keys: Keys) -> None:
    view = await _open(client, keys)
    assert view == {"id": "2017", "theme": CAMPAIGN["theme"], "starts_on": "2017-09-01", "ends_on": "2017-09-30",
                    "status": "open", "event": {"event_id": view["event"]["event_id"], "status": "created",
                                                "position": 1}}
    (opened,) = await read_log(client, keys)
    assert opened["type"] == "campaign_opened"
    assert opened["event_id"] == view["event"]["event_id"]
    assert opened["campaign"] == "2017"
    assert opened["region"] == "000000"
    assert opened["data"] == CAMPAIGN
    assert opened["recorded_by"] == keys.ids["admin"]


async def test_opening_the_same_campaign_again_is_200_and_appends_nothing(client: TestClient, keys: Keys) -> None:
    first = await _open(client, keys)
    again = await client.post("/v1/campaigns", json=CAMPAIGN, headers=keys.admin)
    assert again.status == 200
    body = await again.json()
    assert body["event"] == first["event"] | {"status": "duplicate"}
    assert len(await read_log(client, keys)) == 1


async def test_opening_it_again_with_another_theme_or_window_is_409(client: TestClient, keys: Keys) -> None:
    await _open(client, keys)
    for change in ({"theme": "质量月 另一个主题"}, {"ends_on": "2017-10-31"}):
        response = await client.post("/v1/campaigns", json=CAMPAIGN | change, headers=keys.admin)
        await expect_problem(response, 409, "campaign-conflict", change)
    assert len(await read_log(client, keys)) == 1


async def test_only_an_admin_manages_campaigns(client: TestClient, keys: Keys) -> None:
    for role in ("reporter", "viewer", "auditor"):
        headers = getattr(keys, role)
        await expect_problem(await client.post("/v1/campaigns", json=CAMPAIGN, headers=headers), 403, "forbidden",
                             role)
    await _open(client, keys)
    for role in ("reporter", "viewer", "auditor"):
        headers = getattr(keys, role)
        await expect_problem(await client.post("/v1/campaigns/2017/close", headers=headers), 403, "forbidden", role)
        await expect_problem(await client.post("/v1/campaigns/2017/reopen", json={"note": "x"}, headers=headers),
                             403, "forbidden", role)
    await expect_problem(await client.post("/v1/campaigns", json=CAMPAIGN), 401, "unauthenticated")
    assert len(await read_log(client, keys)) == 1


async def test_an_invalid_campaign_body_is_422(client: TestClient, keys: Keys) -> None:
    cases: list[tuple[str, dict[str, Any]]] = [
        ("ends before it starts", CAMPAIGN | {"starts_on": "2017-09-30", "ends_on": "2017-09-01"}),
        ("extra field", CAMPAIGN | {"budget": 100}),
        ("missing theme", {k: v for k, v in CAMPAIGN.items() if k != "theme"}),
        ("empty theme", CAMPAIGN | {"theme": ""}),
        ("bad id", CAMPAIGN | {"id": "2017/../x"}),
        ("bad date", CAMPAIGN | {"starts_on": "September"}),
        ("longer than a year", CAMPAIGN | {"ends_on": "2019-09-30"}),
        ("blank theme", CAMPAIGN | {"theme": "   "}),
        ("control character in theme", CAMPAIGN | {"theme": "质量\x01月"}),
    ]
    for case, body in cases:
        response = await client.post("/v1/campaigns", json=body, headers=keys.admin)
        problem = await expect_problem(response, 422, "validation-failed", case)
        assert problem["errors"], case
        assert all(e["index"] is None and e["event_id"] is None for e in problem["errors"]), (case, problem)
    # One voice with the events route: the same stable codes, and a body is not "an event type".
    response = await client.post("/v1/campaigns", json=CAMPAIGN | {"budget": 100, "theme": ""}, headers=keys.admin)
    errors = {tuple(e["loc"]): e for e in (await expect_problem(response, 422, "validation-failed"))["errors"]}
    assert (errors[("budget",)]["code"], errors[("theme",)]["code"]) == ("extra_forbidden", "string_too_short")
    assert "event type" not in errors[("budget",)]["msg"]
    assert errors[("budget",)]["msg"].startswith("is not a field")
    response = await client.post("/v1/campaigns/2017/close", json={"note": 5}, headers=keys.admin)
    assert [e["code"] for e in (await expect_problem(response, 422, "validation-failed"))["errors"]] == ["string_type"]
    await expect_problem(await client.post("/v1/campaigns", data=b"{", headers=keys.admin | {
        "Content-Type": "application/json"}), 400, "malformed-json")
    await expect_problem(await client.post("/v1/campaigns", data=b"{}", headers=keys.admin | {
        "Content-Type": "text/plain"}), 415, "unsupported-media-type")
    assert await read_log(client, keys) == []


async def test_close_and_reopen(client: TestClient, keys: Keys) -> None:
    await _open(client, keys)
    closed = await client.post("/v1/campaigns/2017/close", headers=keys.admin)
    assert closed.status == 201
    view = await closed.json()
    assert view["status"] == "closed"
    assert view["event"]["status"] == "created"
    assert view["event"]["position"] == 2

    again = await client.post("/v1/campaigns/2017/close", headers=keys.admin)
    await expect_problem(again, 409, "campaign-conflict")

    no_reason = await client.post("/v1/campaigns/2017/reopen", headers=keys.admin)
    body = await expect_problem(no_reason, 422, "validation-failed")
    assert body["errors"][0]["loc"] == ["note"]

    reopened = await client.post("/v1/campaigns/2017/reopen", json={"note": "a province reported late"},
                                 headers=keys.admin)
    assert reopened.status == 201
    assert (await reopened.json())["status"] == "open"
    await expect_problem(await client.post("/v1/campaigns/2017/reopen", json={"note": "again"}, headers=keys.admin),
                         409, "campaign-conflict")
    assert [e["type"] for e in await read_log(client, keys)] == ["campaign_opened", "campaign_closed",
                                                                 "campaign_reopened"]


async def test_a_close_retried_with_its_event_id_is_200(client: TestClient, keys: Keys) -> None:
    await _open(client, keys)
    body = {"event_id": "8d7f7c1e-0d7a-4f43-9c55-0f3e5d1f7a10", "note": "final"}
    first = await client.post("/v1/campaigns/2017/close", json=body, headers=keys.admin)
    assert first.status == 201
    retry = await client.post("/v1/campaigns/2017/close", json=body, headers=keys.admin)
    assert retry.status == 200
    assert (await retry.json())["event"] == {"event_id": body["event_id"], "status": "duplicate", "position": 2}
    assert len(await read_log(client, keys)) == 2


async def test_closing_or_reopening_an_unknown_campaign_is_404(client: TestClient, keys: Keys) -> None:
    await _open(client, keys)
    for path, body in (("/v1/campaigns/1999/close", None), ("/v1/campaigns/1999/reopen", {"note": "x"})):
        response = await client.post(path, json=body, headers=keys.admin)
        problem = await expect_problem(response, 404, "not-found", path)
        assert "1999" in problem["detail"]
    assert len(await read_log(client, keys)) == 1


async def test_reading_campaigns(client: TestClient, keys: Keys) -> None:
    empty = await client.get("/v1/campaigns", headers=keys.viewer)
    assert await empty.json() == {"campaigns": []}
    await _open(client, keys)
    await _open(client, keys, NEXT_YEAR)
    await client.post("/v1/campaigns/2017/close", headers=keys.admin)
    for role in ("viewer", "auditor", "reporter", "admin"):
        response = await client.get("/v1/campaigns", headers=getattr(keys, role))
        assert response.status == 200, role
    listed = (await response.json())["campaigns"]
    assert [(c["id"], c["status"], c["theme"], c["starts_on"], c["ends_on"]) for c in listed] == [
        ("2017", "closed", CAMPAIGN["theme"], "2017-09-01", "2017-09-30"),
        ("2018", "open", NEXT_YEAR["theme"], "2018-09-01", "2018-09-30")]
    one = await client.get("/v1/campaigns/2017", headers=keys.viewer)
    assert one.status == 200
    assert await one.json() == listed[0]
    assert listed[0]["closed_at_positions"] == [3]
    await expect_problem(await client.get("/v1/campaigns/1999", headers=keys.viewer), 404, "not-found")
    await expect_problem(await client.get("/v1/campaigns"), 401, "unauthenticated")
