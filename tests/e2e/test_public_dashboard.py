"""QMSTATS_PUBLIC_DASHBOARD=true opens the dashboard's reads to anyone; nothing else changes."""

from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient
from playwright.async_api import expect

from services.settings import Settings
from tests.conftest import Keys
from tests.conftest import test_settings as settings_for
from tests.e2e.browser import chromium
from tests.e2e.wire import expect_problem
from tests.factories import CAMPAIGN, event
from tests.projection_support import get_json, post_events, settled

pytestmark = pytest.mark.usefixtures("campaign")

PRIVATE_AND_PUBLIC = pytest.mark.parametrize("settings", [False, True], indirect=True, ids=["private", "public"])
PUBLIC = pytest.mark.parametrize("settings", [True], indirect=True, ids=["public"])

DASHBOARD_READS = ["/v1/campaigns/2017/dashboard", "/v1/campaigns/2017/dashboard?region=330000",
                   "/v1/campaigns/2017/series?metric=dens_busted", "/v1/campaigns/2017/completeness?date=2017-09-08",
                   "/v1/campaigns/2017/summary?format=json", "/v1/campaigns/2017/summary?format=html&lang=en",
                   "/v1/catalogue", "/v1/campaigns", "/v1/campaigns/2017"]
KEYED_READS = ["/v1/events", "/v1/audit/verify", "/v1/audit/head", "/v1/regions",
               "/v1/campaigns/2017/figures/dens_busted/events", "/v1/campaigns/2017/dashboard?at_position=1"]


@pytest.fixture
def settings(request: pytest.FixtureRequest) -> Settings:
    """The service's settings, with the public dashboard on or off as the test asks (off by default)."""
    return settings_for(public_dashboard=getattr(request, "param", False))


def _writes() -> list[tuple[str, object]]:
    return [("/v1/events", event()), ("/v1/events", {"events": [event()]}),
            ("/v1/campaigns", CAMPAIGN | {"id": "2018"}), ("/v1/campaigns/2017/close", {}),
            ("/v1/campaigns/2017/reopen", {"note": "public"})]


@PRIVATE_AND_PUBLIC
async def test_the_dashboard_reads_answer_without_a_key_only_when_the_dashboard_is_public(
        client: TestClient, keys: Keys, settings: Settings) -> None:
    head = await post_events(client, keys.reporter, [event(region="330102")])
    await settled(client, keys.viewer, head)
    for path in DASHBOARD_READS:
        response = await client.get(path)
        if settings.public_dashboard:
            assert response.status == 200, f"{path}: {await response.text()}"
        else:
            await expect_problem(response, 401, "unauthenticated", path)
    if settings.public_dashboard:
        figures = await (await client.get("/v1/campaigns/2017/dashboard")).json()
        assert figures == await get_json(client, "/v1/campaigns/2017/dashboard", keys.viewer)
        assert figures["metrics"]["dens_busted"]["value"] == 3

    async with client.get("/v1/stream") as stream:
        if settings.public_dashboard:
            assert stream.status == 200
            assert stream.content_type == "text/event-stream"
            first = [(await stream.content.readline()).decode().strip() for _ in range(3)]
            assert "event: projection" in first, first
        else:
            await expect_problem(stream, 401, "unauthenticated")


@PRIVATE_AND_PUBLIC
async def test_writes_and_the_other_reads_still_need_a_key(client: TestClient, keys: Keys,
                                                           settings: Settings) -> None:
    before = await get_json(client, "/v1/audit/head", keys.auditor)
    for path, body in _writes():
        await expect_problem(await client.post(path, json=body), 401, "unauthenticated", path)
    for path in KEYED_READS:
        await expect_problem(await client.get(path), 401, "unauthenticated", path)
    assert await get_json(client, "/v1/audit/head", keys.auditor) == before, "a keyless write was stored"


@PUBLIC
async def test_a_key_sent_to_a_public_dashboard_is_still_checked(client: TestClient, keys: Keys) -> None:
    await expect_problem(await client.get("/v1/campaigns/2017/dashboard",
                                          headers={"Authorization": "Bearer qm.revoked.nope"}),
                         401, "unauthenticated")
    reporter_at = await client.get("/v1/campaigns/2017/dashboard?at_position=1", headers=keys.reporter)
    assert reporter_at.status == 403
    auditor_at = await client.get("/v1/campaigns/2017/dashboard?at_position=1", headers=keys.auditor)
    assert auditor_at.status == 200


@PUBLIC
@pytest.mark.slow
@pytest.mark.timeout(720)  # room for installing Chromium on a fresh machine
async def test_the_public_page_needs_no_key(client: TestClient, keys: Keys, tmp_path: Path) -> None:
    head = await post_events(client, keys.reporter, [event(region="330102")])
    national = await settled(client, keys.viewer, head)
    async with chromium(tmp_path / "chromium") as browser:
        page = await browser.new_page()
        await page.goto(str(client.make_url("/")))
        await expect(page.locator("body")).to_have_attribute("data-state", "ready")
        await expect(page.locator("#login")).to_be_hidden()
        await expect(page.locator('[data-figure="dens_busted"]')).to_have_attribute(
            "data-value", str(national["metrics"]["dens_busted"]["value"]))
        await expect(page.locator("body")).to_have_attribute("data-transport", "sse")
        await post_events(client, keys.reporter, [event(region="330203")])
        await expect(page.locator('[data-figure="dens_busted"]')).to_have_attribute("data-value", "6")
        await expect(page.locator("#forget-key")).to_be_hidden()
