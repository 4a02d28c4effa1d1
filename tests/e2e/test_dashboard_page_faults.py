"""Issue 12, the page in headless Chromium: it never says 已是最新 (up to date) while the server is gone or failing, it
names a key of the wrong role, and its breakdown has the own-level row (本级)."""

import json
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient
from playwright.async_api import Route, expect

from tests.conftest import Database, Keys
from tests.e2e.browser import chromium
from tests.e2e.processes import open_campaign, qmstats_children
from tests.e2e.test_dashboard_page import open_dashboard, raid, token_of
from tests.projection_support import post_events, settled

pytestmark = [pytest.mark.slow, pytest.mark.timeout(720)]


async def test_the_page_says_when_the_server_is_gone_and_when_its_figures_are_from(
        database: Database, keys: Keys, tmp_path: Path) -> None:
    async with qmstats_children(database.service_url, database.admin_url, tmp_path) as children:
        api = children.serve()
        await api.start_listening()
        await open_campaign(api.url, keys.admin)
        async with chromium(tmp_path / "chromium") as browser:
            page = await browser.new_page()
            await page.goto(api.url + "/campaigns/2017")
            await page.locator("#token").fill(token_of(keys.viewer))
            await page.locator("#login-submit").click()
            await expect(page.locator("body")).to_have_attribute("data-state", "ready")
            await expect(page.locator("body")).to_have_attribute("data-transport", "sse")
            await expect(page.locator("#freshness")).to_contain_text("已是最新")

            assert await api.terminate(seconds=20) == 0  # the open stream is ended, the process exits
            await expect(page.locator("body")).to_have_attribute("data-link", "reconnecting")
            await expect(page.locator("#transport")).to_have_text("连接中断，正在重连")
            await expect(page.locator("#freshness")).to_contain_text("显示的是 ")
            await expect(page.locator("#freshness")).not_to_contain_text("已是最新")
            await expect(page.locator("body")).to_have_attribute("data-link", "offline", timeout=20_000)
            await expect(page.locator("#transport")).to_have_text("无法连接服务器，正在重试")
            await expect(page.locator("#freshness")).not_to_contain_text("已是最新")

            await api.start_listening()  # back: the page recovers by itself
            await expect(page.locator("body")).to_have_attribute("data-link", "ok", timeout=40_000)
            await expect(page.locator("#freshness")).to_contain_text("已是最新")


@pytest.mark.usefixtures("campaign")
async def test_server_errors_show_as_such_until_the_server_answers_again(client: TestClient, keys: Keys,
                                                                         tmp_path: Path) -> None:
    async def unavailable(route: Route) -> None:
        await route.fulfill(status=503, content_type="application/problem+json", headers={"Retry-After": "2"},
                            body=json.dumps({"type": "urn:qmstats:problem:unavailable", "status": 503,
                                             "title": "Service unavailable", "detail": "database unavailable"}))

    async with chromium(tmp_path / "chromium", locale="en-US") as browser:
        await browser.route("**/v1/stream", lambda route: route.abort())
        page = await browser.new_page()
        await open_dashboard(page, client, token_of(keys.viewer))
        await expect(page.locator("#freshness")).to_contain_text("up to date")
        await browser.route("**/v1/campaigns/2017/dashboard*", unavailable)
        await expect(page.locator("body")).to_have_attribute("data-link", "server-error")
        await expect(page.locator("#transport")).to_have_text("Server error (503), retrying")
        await expect(page.locator("#freshness")).to_contain_text("showing figures from ")
        await expect(page.locator("#freshness")).not_to_contain_text("up to date")
        await browser.unroute("**/v1/campaigns/2017/dashboard*", unavailable)
        await expect(page.locator("body")).to_have_attribute("data-link", "ok")
        await expect(page.locator("#freshness")).to_contain_text("up to date")


@pytest.mark.usefixtures("campaign")
async def test_a_key_of_the_wrong_role_is_named_as_such(client: TestClient, keys: Keys, tmp_path: Path) -> None:
    async with chromium(tmp_path / "chromium") as browser:
        page = await browser.new_page()
        await page.goto(str(client.make_url("/campaigns/2017")))
        await page.locator("#token").fill(token_of(keys.reporter))
        await page.locator("#login-submit").click()
        await expect(page.locator("#login-error")).to_contain_text("这是 reporter 密钥，不能查看仪表盘")
        await expect(page.locator("#login-error")).not_to_contain_text("无效或已被吊销")
        await page.locator("#token").fill("qm.nope.nope")
        await page.locator("#login-submit").click()
        await expect(page.locator("#login-error")).to_have_text("密钥无效或已被吊销。")


@pytest.mark.usefixtures("campaign")
async def test_the_breakdown_shows_the_own_level_row(client: TestClient, keys: Keys, tmp_path: Path) -> None:
    head = await post_events(client, keys.reporter, [raid("330500", 3, "100.00"), raid("330502", 10, "50.00"),
                                                     raid("330521", 7, "25.00")])
    await settled(client, keys.viewer, head)
    async with chromium(tmp_path / "chromium") as browser:
        page = await browser.new_page()
        await open_dashboard(page, client, token_of(keys.viewer), "/campaigns/2017?region=330500")
        own = page.locator("#regions tfoot tr.own-level")
        await expect(own).to_have_attribute("data-region", "330500")
        await expect(own.locator("td.name")).to_contain_text("本级")
        await expect(own.locator('td[data-metric="dens_busted"]')).to_have_attribute("data-value", "3")
        await expect(page.locator('[data-figure="dens_busted"]')).to_have_attribute("data-value", "20")
