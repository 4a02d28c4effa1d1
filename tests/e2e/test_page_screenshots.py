"""The simulator's month as the national office sees it: the dashboard page in zh and en on a 1400 px screen and
a 390 px phone, and the HTML summary on screen and on A4, in headless Chromium. Nothing may overflow (no table cut
off, no sideways scrolling), every screenshot is saved under test-artifacts/, and the summary's text reads without
status notes inside its sentences."""

import re
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient
from playwright.async_api import Page, expect

from events.catalogue import PRODUCT_CATEGORIES
from services.simulate.run import SimulationOptions, simulate
from tests.conftest import Keys
from tests.e2e.browser import artifact, chromium
from tests.projection_support import get_json, import_registry, settled

pytestmark = [pytest.mark.slow, pytest.mark.timeout(720)]

CAMPAIGN = "/v1/campaigns/2017"
SCREENS = {"wide": (1400, 900), "phone": (390, 844)}
A4_CONTENT_PX = 703  # 210 mm less 2 × 12 mm margins, at 96 px per inch
STATUS_WORDS = ("最终数据", "临时数据", "冻结", "日志", "截至第", "事件", "provisional", "final", "position",
                "frozen", "close number")
LABELS = {c.code: c for c in PRODUCT_CATEGORIES}

# Every visible element that sticks out of the viewport, and every box whose content is wider than the box
# (a table cut off or scrolling sideways, a label clipped); the screen-reader-only heading is exempt.
OVERFLOWS = """(limit) => {
  const width = limit || document.documentElement.clientWidth;
  const name = (el) => el.tagName.toLowerCase() + (el.id ? "#" + el.id : "")
    + (el.className && typeof el.className === "string" ? "." + el.className.trim().split(/\\s+/).join(".") : "");
  const found = [];
  if (document.documentElement.scrollWidth > document.documentElement.clientWidth + 1)
    found.push(`the page scrolls sideways: ${document.documentElement.scrollWidth} > ${width}`);
  for (const el of document.querySelectorAll("body *")) {
    if (el.closest(".sr-only, [hidden], svg, title, style, script")) continue;
    const style = getComputedStyle(el);
    if (style.display === "none" || style.visibility === "hidden") continue;
    const box = el.getBoundingClientRect();
    if (!box.width || !box.height) continue;
    if (box.right > width + 1 || box.left < -1)
      found.push(`${name(el)} sticks out: ${Math.round(box.left)}..${Math.round(box.right)} of ${width}`);
    if (el.scrollWidth > el.clientWidth + 1 && style.display !== "inline")
      found.push(`${name(el)} content is cut off or scrolls: ${el.scrollWidth} > ${el.clientWidth}`);
  }
  return found;
}"""


def token_of(headers: dict[str, str]) -> str:
    return headers["Authorization"].removeprefix("Bearer ")


async def overflows(page: Page, limit: int | None = None) -> list[str]:
    found: list[str] = await page.evaluate(OVERFLOWS, limit)
    return found


@pytest.fixture
async def month(client: TestClient, keys: Keys, admin_conn: asyncpg.Connection, areacodes: Path) -> dict[str, Any]:
    """A simulated month of 2017 (the simulator's categories and channels), projected; returns the dashboard."""
    await import_registry(admin_conn)
    report = await simulate(SimulationOptions(url=str(client.make_url("/")), token=token_of(keys.admin),
                                              campaign="2017", seed=17, events=1200, batch=200, open_campaign=True))
    assert report.complete
    return await settled(client, keys.viewer, report.tally.last_position, within=30)


def assert_publishable(text: str) -> None:
    """Sentences only: no status note or log position inside them."""
    for word in STATUS_WORDS:
        assert word.lower() not in text.replace("（区、市）", "").lower(), (word, text)
    assert not re.search(r"[（(][^）)]*[）)]", text.replace("（区、市）", "")), text


async def test_the_simulators_month_reads_without_status_notes_in_its_sentences(
        client: TestClient, keys: Keys, month: dict[str, Any]) -> None:
    provisional = await get_json(client, f"{CAMPAIGN}/summary", keys.viewer)
    assert_publishable(provisional["text_zh"])
    assert_publishable(provisional["text_en"])
    assert "均报送了活动数据" in provisional["text_zh"]  # the simulator's month has every province reporting
    assert "All 31 provinces reported." in provisional["text_en"]
    assert re.search(r"pass rate was \d+(\.\d)?%\.", provisional["text_en"])
    assert f"第1至{provisional['position']}条" in provisional["note_zh"]
    closed = await client.post(f"{CAMPAIGN}/close", headers=keys.admin)
    assert closed.status == 201, await closed.text()
    final = await get_json(client, f"{CAMPAIGN}/summary", keys.viewer)
    assert final["final"] is True
    assert_publishable(final["text_zh"])
    assert_publishable(final["text_en"])
    assert "最终数据" in final["note_zh"]
    # The pass rate by category comes with the standard labels of the simulator's category codes.
    by_category = final["pass_rate"]["by_category"]
    assert by_category
    for code, rate in by_category.items():
        assert (rate["label_zh"], rate["label_en"]) == (LABELS[code].label_zh, LABELS[code].label_en)


async def open_page(page: Page, client: TestClient, token: str, lang: str) -> None:
    await page.add_init_script(f"localStorage.setItem('qmstats.lang', '{lang}')")
    await page.goto(str(client.make_url("/")))
    await expect(page.locator("#login")).to_be_visible()
    await page.locator("#token").fill(token)
    await page.locator("#login-submit").click()
    await expect(page.locator("body")).to_have_attribute("data-state", "ready")
    await expect(page.locator("html")).to_have_attribute("lang", "zh-CN" if lang == "zh" else "en")


@pytest.mark.parametrize("lang", ["zh", "en"])
async def test_the_page_fits_a_1400px_screen_and_a_phone_in_both_languages(
        client: TestClient, keys: Keys, month: dict[str, Any], tmp_path: Path, lang: str) -> None:
    async with chromium(tmp_path / "chromium") as browser:
        page = await browser.new_page()
        await page.set_viewport_size({"width": SCREENS["wide"][0], "height": SCREENS["wide"][1]})
        await open_page(page, client, token_of(keys.viewer), lang)
        await expect(page.locator("body")).to_have_attribute("data-position", str(month["position"]))
        # Every province row and every table column is on screen at 1400 px: nothing cut off.
        await expect(page.locator("#regions tbody tr")).to_have_count(len(month["children"]))
        status = await page.locator("#freshness").inner_text()
        for jargon in ("投影", "Position", str(month["position"])):
            assert jargon not in status, status
        # One precision for the pass rate: one decimal (more only where one would be false), as in the summary.
        rates = await page.locator("#pass-rate-panel .rate-value, #pass-rate").all_inner_texts()
        assert rates
        for text in rates:
            assert re.fullmatch(r"\d{1,3}(\.\d)?%", text), text
        await expect(page.locator('#regions tbody tr[data-region="330000"] td.name')).to_have_text(
            "浙江省" if lang == "zh" else "Zhejiang")
        # Standard category codes read as their label in the page's language.
        names = await page.locator("#pass-rate-panel .rate-name").all_inner_texts()
        expected = {getattr(LABELS[c], f"label_{lang}") for c in month["pass_rate"]["by_category"]}
        assert set(names) == expected
        problems: dict[str, list[str]] = {}
        for name, (width, height) in SCREENS.items():
            await page.set_viewport_size({"width": width, "height": height})
            await page.wait_for_timeout(200)
            await page.screenshot(path=str(artifact(f"page-{lang}-{name}.png")), full_page=True)
            problems[f"{lang} at {width} px"] = await overflows(page)
        assert problems == {f"{lang} at {width} px": [] for width, _ in SCREENS.values()}


async def test_a_server_error_shows_in_the_pages_language(client: TestClient, keys: Keys, tmp_path: Path,
                                                          month: dict[str, Any]) -> None:
    async with chromium(tmp_path / "chromium") as browser:
        page = await browser.new_page()
        await page.add_init_script("localStorage.setItem('qmstats.lang', 'zh')")
        await page.goto(str(client.make_url("/campaigns/2099")))
        await page.locator("#token").fill(token_of(keys.viewer))
        await page.locator("#login-submit").click()
        banner = page.locator("#error-banner")
        await expect(banner).to_contain_text("找不到“2099”")
        assert "no campaign" not in await banner.inner_text()
        await page.locator("#lang-toggle").click()
        await expect(banner).to_contain_text("“2099” was not found")


async def test_the_html_summary_fits_the_screen_and_an_a4_page(
        client: TestClient, keys: Keys, month: dict[str, Any], tmp_path: Path) -> None:
    assert (await client.post(f"{CAMPAIGN}/close", headers=keys.admin)).status == 201
    async with chromium(tmp_path / "chromium") as browser:
        page = await browser.new_page()
        for lang in ("zh", "en"):
            response = await client.get(f"{CAMPAIGN}/summary", params={"format": "html", "lang": lang},
                                        headers=keys.viewer)
            assert response.status == 200
            await page.set_content(await response.text())
            for width in (1400, 1000):  # on a phone the province tables scroll sideways in their box
                await page.set_viewport_size({"width": width, "height": 900})
                assert await overflows(page) == [], f"summary {lang} on a {width} px screen"
            await page.set_viewport_size({"width": 1000, "height": 900})
            await page.screenshot(path=str(artifact(f"summary-{lang}.png")), full_page=True)
            await page.screenshot(path=str(artifact(f"summary-{lang}-top.png")))
            # Printed on A4 (portrait): every table fits the printable width.
            await page.emulate_media(media="print")
            await page.set_viewport_size({"width": A4_CONTENT_PX, "height": 1000})
            assert await overflows(page) == [], f"summary {lang} on A4"
            await page.pdf(path=str(artifact(f"summary-{lang}.pdf")), format="A4")
            await page.emulate_media(media="screen")
            rows = page.locator("table.national tr[data-metric='pass_rate'] td")
            await expect(rows.nth(1)).to_have_text(re.compile(r"^\d{1,3}(\.\d)?%$"))
