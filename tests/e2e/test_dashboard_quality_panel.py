"""The dashboard page's 数据质量 panel in headless Chromium: open flags by region, drill-down, figure marks."""

from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient
from playwright.async_api import expect

from services.settings import Settings
from tests.conftest import Keys
from tests.conftest import test_settings as app_settings
from tests.e2e.browser import chromium
from tests.e2e.test_dashboard_page import open_dashboard, token_of
from tests.e2e.wire import eventually
from tests.factories import event
from tests.projection_support import post_events, settled

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("campaign"), pytest.mark.timeout(720)]


@pytest.fixture
def settings() -> Settings:
    # 2017 reported today is years late for every event; late_report is left to its unit tests here.
    return app_settings(flag_late_after_days=36500)


def _raid(day: int, seized: str) -> dict[str, object]:
    return event(region="330102", occurred_at=f"2017-09-{day:02d}T10:00:00+08:00",
                 data={"dens_busted": 2, "personnel": 40, "vehicles": 5, "cases": 1, "seized_value_yuan": seized,
                       "category": "liquor"})


async def test_the_panel_lists_open_flags_by_region_and_marks_the_figure(client: TestClient, keys: Keys,
                                                                          tmp_path: Path) -> None:
    history = [_raid(day, f"{80000 + 1000 * day}.00") for day in range(1, 11)]
    slip = _raid(12, "8.20")  # 8.2 万元 typed as yuan
    head = await post_events(client, keys.reporter, [*history, slip])
    await settled(client, keys.viewer, head)

    async def flagged() -> bool:
        body = await (await client.get("/v1/campaigns/2017/flags", headers=keys.viewer)).json()
        return bool(body["position"] >= head)

    await eventually(flagged, seconds=10)
    async with chromium(tmp_path / "chromium") as browser:
        page = await browser.new_page()
        await open_dashboard(page, client, token_of(keys.viewer))
        panel = page.locator("#quality-panel")
        await expect(panel).to_be_visible()
        await expect(panel).to_have_attribute("data-open", "1")
        await expect(panel.locator('.chip.flagged[data-region="330000"]')).to_have_attribute("data-open", "1")
        await expect(panel.locator('.quality-flag[data-code="unit_scale"]')).to_have_count(1)
        await expect(page.locator('[data-figure="seized_value_yuan"] .quality-mark')).to_have_count(1)
        await expect(page.locator('[data-figure="dens_busted"] .quality-mark')).to_have_count(0)
        await panel.locator('.chip.flagged[data-region="330000"]').click()  # drill down to Zhejiang
        await expect(page.locator("#region-name")).to_have_attribute("data-region", "330000")
        await expect(panel.locator('.chip.flagged[data-region="330100"]')).to_have_attribute("data-open", "1")
