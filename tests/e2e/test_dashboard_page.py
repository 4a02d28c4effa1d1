"""The dashboard page in a real headless Chromium: the figures it shows are the API's, it follows new events
without a reload (stream, or polling when the stream is unavailable), drills down and back, speaks zh and en."""

import random
import time
import uuid
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient
from playwright.async_api import Page, expect

from projections.summary import percent as summary_percent
from tests.conftest import Keys
from tests.e2e.browser import artifact, chromium
from tests.e2e.wire import expect_problem
from tests.projection_support import (
    CST,
    MAINLAND,
    get_json,
    import_registry,
    post_events,
    registry_names,
    settled,
)

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("campaign"),
              pytest.mark.timeout(720)]  # room for installing Chromium on a fresh machine

CAMPAIGN = "/v1/campaigns/2017"
LAST_DAY = 18                       # the latest day with data; four provinces are silent on it
SILENT_ON_LAST_DAY = {"540000", "630000", "650000", "460000"}
CATEGORIES = ("白酒", "月饼", "家用电器", "儿童玩具", "纺织服装", "建筑材料")
CHANNELS = ("电视", "报纸", "网络", "广播")
LIVE_SECONDS = 10.0


def _money(rng: random.Random, high: int) -> str:
    return f"{rng.randint(high // 20, high)}.{rng.randint(0, 99):02d}"


def _payload(rng: random.Random, kind: str) -> dict[str, Any]:
    if kind == "raid_conducted":
        return {"dens_busted": rng.randint(0, 12), "personnel": rng.randint(20, 600), "vehicles": rng.randint(2, 60),
                "cases": rng.randint(0, 15), "seized_value_yuan": _money(rng, 2_000_000),
                "category": rng.choice(CATEGORIES)}
    if kind == "goods_destroyed":
        return {"destroyed_value_yuan": _money(rng, 800_000), "category": rng.choice(CATEGORIES)}
    if kind == "inspection_completed":
        sampled = rng.randint(20, 200)
        return {"batches_sampled": sampled, "batches_passed": sampled - rng.randint(0, sampled // 8),
                "enterprises": rng.randint(5, 80), "category": rng.choice(CATEGORIES)}
    if kind == "publicity_held":
        return {"participants": rng.randint(500, 30000), "quality_workers": rng.randint(10, 400),
                "booths": rng.randint(5, 80), "consultations": rng.randint(20, 1200)}
    if kind == "materials_distributed":
        return {"copies": rng.randint(1000, 50000)}
    if kind == "media_reported":
        return {"reports": rng.randint(1, 40), "channel": rng.choice(CHANNELS)}
    if kind == "lab_open_day_held":
        return {"labs": rng.randint(1, 10), "visitors": rng.randint(50, 3000)}
    if kind == "pledge_signed":
        return {"enterprises": rng.randint(5, 300)}
    return {"enterprises": rng.randint(1, 20), "products": rng.randint(1, 40)}


KINDS = ("raid_conducted", "raid_conducted", "goods_destroyed", "inspection_completed", "inspection_completed",
         "publicity_held", "materials_distributed", "media_reported", "lab_open_day_held", "pledge_signed",
         "brand_awarded")


def nationwide(seed: int = 2017) -> list[dict[str, Any]]:
    """A few hundred events from every mainland province, at county, prefecture and province level, on days
    1..LAST_DAY of September 2017 (four provinces silent on the last day)."""
    rng = random.Random(seed)
    names = registry_names(2017)
    events: list[dict[str, Any]] = []
    for province in MAINLAND:
        below = sorted(c for c in names if c[:2] == province[:2] and c != province)
        for _ in range(rng.randint(12, 30)):
            day = LAST_DAY if rng.random() < 0.25 else rng.randint(1, LAST_DAY - 1)
            if day == LAST_DAY and province in SILENT_ON_LAST_DAY:
                day -= 1
            region = rng.choice(below) if below and rng.random() < 0.9 else province
            kind = rng.choice(KINDS)
            moment = datetime(2017, 9, day, rng.randint(8, 20), rng.randint(0, 59), tzinfo=CST)
            events.append({"event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)), "type": kind,
                           "schema_version": 1, "campaign": "2017", "region": region,
                           "occurred_at": moment.isoformat(), "data": _payload(rng, kind)})
    return events


async def post_nationwide(client: TestClient, keys: Keys) -> int:
    events = nationwide()
    head = 0
    for start in range(0, len(events), 250):
        head = await post_events(client, keys.admin, events[start:start + 250])
    return head


def raid(region: str, dens: int, seized: str, day: int = LAST_DAY) -> dict[str, Any]:
    return {"event_id": str(uuid.uuid4()), "type": "raid_conducted", "schema_version": 1, "campaign": "2017",
            "region": region, "occurred_at": datetime(2017, 9, day, 15, 0, tzinfo=CST).isoformat(),
            "data": {"dens_busted": dens, "personnel": 40, "vehicles": 6, "cases": 1, "seized_value_yuan": seized,
                     "category": "白酒"}}


def token_of(headers: dict[str, str]) -> str:
    return headers["Authorization"].removeprefix("Bearer ")


def grouped(value: int | str) -> str:
    whole, dot, fraction = str(value).partition(".")
    return f"{int(whole):,}{dot}{fraction}"


def percent(passed: int, sampled: int) -> str:
    """The page shows the summary's precision: half-even to one decimal (more only where one would be false)."""
    shown = summary_percent(Decimal(passed), Decimal(sampled))
    assert shown is not None
    return shown


async def open_dashboard(page: Page, client: TestClient, token: str | None, path: str = "/") -> None:
    """Open the page; paste the viewer key into its form when one is given."""
    await page.goto(str(client.make_url(path)))
    if token is not None:
        await expect(page.locator("#login")).to_be_visible()
        await page.locator("#token").fill(token)
        await page.locator("#login-submit").click()
    await expect(page.locator("body")).to_have_attribute("data-state", "ready")


async def figure_of(page: Page, metric: str) -> str | None:
    return await page.locator(f'#figures [data-figure="{metric}"], #more-figures [data-figure="{metric}"]') \
        .get_attribute("data-value")


async def test_the_page_shows_the_api_figures_follows_events_drills_down_and_speaks_two_languages(
        client: TestClient, keys: Keys, admin_conn: asyncpg.Connection, areacodes: Path, tmp_path: Path) -> None:
    await import_registry(admin_conn)
    head = await post_nationwide(client, keys)
    national = await settled(client, keys.viewer, head)
    summary = await get_json(client, f"{CAMPAIGN}/summary", keys.viewer, format="json")
    completeness = await get_json(client, f"{CAMPAIGN}/completeness", keys.viewer)
    latest = completeness["latest_day"]
    assert latest == date(2017, 9, LAST_DAY).isoformat()
    on_latest = await get_json(client, f"{CAMPAIGN}/completeness", keys.viewer, date=latest)

    async with chromium(tmp_path / "chromium") as browser:
        page = await browser.new_page()
        origin = str(client.make_url("/")).rstrip("/")
        requested: list[str] = []
        page.on("request", lambda request: requested.append(request.url))
        await open_dashboard(page, client, token_of(keys.viewer))
        body = page.locator("body")
        await expect(body).to_have_attribute("data-position", str(national["position"]))
        await expect(page.locator("html")).to_have_attribute("lang", "zh-CN")

        # National totals: exact value, unit and the 概数 phrase, equal to the dashboard and summary APIs.
        for metric in ("dens_busted", "seized_value_yuan", "personnel", "participants", "materials_copies",
                       "batches_sampled", "lab_visitors"):
            figure = national["metrics"][metric]
            card = page.locator(f'[data-figure="{metric}"]')
            await expect(card).to_have_attribute("data-value", str(figure["value"]))
            await expect(card.locator(".number")).to_have_text(grouped(figure["value"]))
            await expect(card.locator(".unit")).to_have_text(figure["unit"])
            assert figure["phrase_zh"] == summary["figures"][metric]["phrase_zh"], metric
            await expect(card.locator(".phrase")).to_have_text(figure["phrase_zh"] + figure["unit"])

        # A province row equals the API's child figures; the pass rate equals Σpassed ÷ Σsampled from the API.
        zhejiang = next(c for c in national["children"] if c["code"] == "330000")
        row = page.locator('#regions tbody tr[data-region="330000"]')
        await expect(row.locator("td.name")).to_have_text("浙江省")
        for metric in ("dens_busted", "cases", "seized_value_yuan", "personnel"):
            await expect(row.locator(f'td[data-metric="{metric}"]')).to_have_attribute(
                "data-value", str(zhejiang["metrics"][metric]))
        assert await page.locator("#regions tbody tr").count() == len(national["children"])
        rate = national["pass_rate"]["overall"]
        await expect(page.locator("#pass-rate")).to_have_attribute("data-value", rate)
        await expect(page.locator("#pass-rate")).to_have_text(
            percent(national["pass_rate"]["passed"], national["pass_rate"]["sampled"]))
        for category, ratio in national["pass_rate"]["by_category"].items():
            await expect(page.locator(f'#pass-rate-panel [data-category="{category}"]')).to_have_attribute(
                "data-value", ratio or "")

        # "Today" is the latest day with data (2017 is over), and the page says so.
        box = page.locator("#completeness")
        await expect(box).to_have_attribute("data-basis", "latest")
        await expect(box).to_have_attribute("data-day", latest)
        await expect(box).to_have_attribute("data-reported", str(len(on_latest["on_date"]["reported"])))
        assert len(on_latest["on_date"]["reported"]) == 31 - len(SILENT_ON_LAST_DAY)
        for code in SILENT_ON_LAST_DAY:
            await expect(box.locator(f'.chip[data-region="{code}"]')).to_have_attribute("data-status", "earlier")
        await expect(page.locator("#completeness-day")).to_contain_text("最近报送日")

        # The sort is by any metric: choose one, the rows follow it.
        await page.locator("#sort-metric").select_option("participants")
        first = max(national["children"], key=lambda c: (c["metrics"]["participants"], -int(c["code"])))
        await expect(page.locator("#regions tbody tr").first).to_have_attribute("data-region", first["code"])

        # Live: a new event shows without a reload, within about a second (bounded at LIVE_SECONDS).
        await expect(body).to_have_attribute("data-transport", "sse")
        await page.evaluate("window.qmstatsSameDocument = true")
        dens = national["metrics"]["dens_busted"]["value"] + 7
        zhejiang_dens = zhejiang["metrics"]["dens_busted"] + 7
        started = time.monotonic()
        await post_events(client, keys.reporter, [raid("330102", 7, "1000.00")])
        await expect(page.locator('[data-figure="dens_busted"]')).to_have_attribute(
            "data-value", str(dens), timeout=LIVE_SECONDS * 1000)
        seen_after = time.monotonic() - started
        await expect(row.locator('td[data-metric="dens_busted"]')).to_have_attribute("data-value", str(zhejiang_dens))
        assert await page.evaluate("window.qmstatsSameDocument") is True, "the page reloaded"
        assert seen_after < LIVE_SECONDS
        print(f"a posted event reached the page in {seen_after:.2f} s (stream)")

        # Drill down: province → prefecture, then back twice with the browser's back button.
        await row.click()
        await expect(page).to_have_url(f"{origin}/campaigns/2017?region=330000")
        await expect(page.locator("#region-name")).to_have_text("浙江省")
        province = await get_json(client, f"{CAMPAIGN}/dashboard", keys.viewer, region="330000")
        await expect(page.locator('[data-figure="dens_busted"]')).to_have_attribute(
            "data-value", str(province["metrics"]["dens_busted"]["value"]))
        hangzhou = page.locator('#regions tbody tr[data-region="330100"]')
        await expect(hangzhou.locator("td.name")).to_have_text("杭州市")
        await hangzhou.click()
        await expect(page).to_have_url(f"{origin}/campaigns/2017?region=330100")
        await expect(page.locator("#region-name")).to_have_text("杭州市")
        await expect(page.locator('#regions tbody tr[data-region="330102"]')).to_be_visible()
        await expect(page.locator("#crumbs")).to_contain_text("全国")
        await page.go_back()
        await expect(page).to_have_url(f"{origin}/campaigns/2017?region=330000")
        await expect(page.locator("#region-name")).to_have_text("浙江省")
        await page.go_back()
        await expect(page).to_have_url(f"{origin}/")
        await expect(page.locator("#region-name")).to_have_text("全国")
        await expect(page.locator('[data-figure="dens_busted"]')).to_have_attribute("data-value", str(dens))
        assert await page.evaluate("window.qmstatsSameDocument") is True, "drilling reloaded the page"

        # zh ⇄ en.
        await expect(page.locator("#regions-title")).to_have_text("各省（区、市）")
        await page.locator("#lang-toggle").click()
        await expect(page.locator("html")).to_have_attribute("lang", "en")
        await expect(page.locator("#regions-title")).to_have_text("Provinces")
        await expect(page.locator('[data-figure="dens_busted"] .figure-label')).to_have_text("Dens busted")
        await expect(page.locator("#completeness-day")).to_contain_text("Latest reporting day")
        await expect(page.locator('[data-figure="dens_busted"]')).to_have_attribute("data-value", str(dens))
        await page.screenshot(path=str(artifact("dashboard-en.png")), full_page=True)
        await page.set_viewport_size({"width": 420, "height": 900})
        await page.screenshot(path=str(artifact("dashboard-narrow.png")), full_page=True)
        await page.set_viewport_size({"width": 1600, "height": 1000})
        await page.locator("#lang-toggle").click()
        await expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
        await expect(page.locator('[data-figure="dens_busted"] .figure-label')).to_have_text("捣毁窝点")

        await page.screenshot(path=str(artifact("dashboard.png")), full_page=True)
        outside = [url for url in requested if not url.startswith((origin + "/", "data:"))]
        assert outside == [], f"the page asked for something outside qmstats: {outside}"


async def test_without_the_stream_the_page_polls_and_still_updates_within_seconds(
        client: TestClient, keys: Keys, tmp_path: Path) -> None:
    head = await post_events(client, keys.reporter, [raid("330102", 3, "500.00", day=9)])
    await settled(client, keys.viewer, head)
    async with chromium(tmp_path / "chromium", locale="en-US") as browser:
        await browser.route("**/v1/stream", lambda route: route.abort())
        page = await browser.new_page()
        await open_dashboard(page, client, token_of(keys.viewer))
        await expect(page.locator("html")).to_have_attribute("lang", "en")  # from navigator.language
        await expect(page.locator('[data-figure="dens_busted"]')).to_have_attribute("data-value", "3")
        await expect(page.locator("body")).to_have_attribute("data-transport", "polling")
        await page.evaluate("window.qmstatsSameDocument = true")
        started = time.monotonic()
        await post_events(client, keys.reporter, [raid("330203", 4, "250.50", day=10)])
        await expect(page.locator('[data-figure="dens_busted"]')).to_have_attribute(
            "data-value", "7", timeout=LIVE_SECONDS * 1000)
        await expect(page.locator('[data-figure="seized_value_yuan"]')).to_have_attribute("data-value", "750.50")
        print(f"a posted event reached the page in {time.monotonic() - started:.2f} s (polling)")
        assert await page.evaluate("window.qmstatsSameDocument") is True
        # The key is kept: a reload needs no second paste.
        await page.reload()
        await expect(page.locator("body")).to_have_attribute("data-state", "ready")
        await expect(page.locator("#login")).to_be_hidden()


async def test_a_revoked_or_wrong_key_brings_back_the_key_form(client: TestClient, keys: Keys,
                                                               tmp_path: Path) -> None:
    async with chromium(tmp_path / "chromium") as browser:
        page = await browser.new_page()
        await page.goto(str(client.make_url("/campaigns/2017")))
        await expect(page.locator("#login")).to_be_visible()
        await page.locator("#token").fill("qm.nope.nope")
        await page.locator("#login-submit").click()
        await expect(page.locator("#login-error")).to_have_text("密钥无效或已被吊销。")
        await page.locator("#token").fill(token_of(keys.viewer))
        await page.locator("#login-submit").click()
        await expect(page.locator("body")).to_have_attribute("data-state", "ready")
        await expect(page.locator("#region-name")).to_have_text("全国")



async def test_the_page_and_its_two_assets_are_served_by_qmstats_without_a_key(client: TestClient) -> None:
    for path in ("/", "/campaigns/2017", "/campaigns/2017?region=330000"):
        response = await client.get(path)
        assert response.status == 200, path
        assert response.content_type == "text/html"
        policy = response.headers["Content-Security-Policy"]
        assert "connect-src 'self'" in policy
        assert "default-src 'none'" in policy
        html = await response.text()
        assert '<script type="module" src="/static/dashboard.js">' in html
        assert "http://" not in html
        assert "https://" not in html
    for name, kind in (("dashboard.js", "text/javascript"), ("dashboard.css", "text/css")):
        response = await client.get(f"/static/{name}")
        assert response.status == 200
        assert response.content_type == kind
        assert "://" not in (await response.text()).replace("http://www.w3.org/2000/svg", "")
        again = await client.get(f"/static/{name}", headers={"If-None-Match": response.headers["ETag"]})
        assert again.status == 304
    await expect_problem(await client.get("/static/../settings.py"), 404, "not-found")
    await expect_problem(await client.get("/static/dashboard.html.bak"), 404, "not-found")
