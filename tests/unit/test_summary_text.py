"""The year-end summary's text, built from exact totals without a database: sentences, clauses, pass rate, en."""

import csv
import io
import re
from datetime import date
from decimal import Decimal
from html.parser import HTMLParser

import pytest

from events.catalogue import METRICS
from projections.summary import CLAUSES_EN, CLAUSES_ZH, SENTENCES, CampaignSummary, percent, summarise
from services.summary_csv import render_csv
from services.summary_formats import render_markdown
from services.summary_html import render_html

THEME = "全面提升质量 推动高质量发展"
MAINLAND = sorted(f"{p}0000" for p in (
    "11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33", "34", "35", "36", "37", "41", "42", "43",
    "44", "45", "46", "50", "51", "52", "53", "54", "61", "62", "63", "64", "65"))
HEAD = "2017年全国“质量月”活动以“全面提升质量 推动高质量发展”为主题，于2017年9月1日至9月30日举行。"
# What a status note looks like; the publishable text must not carry one (the note does, apart).
STATUS_WORDS = ("最终数据", "临时数据", "冻结", "日志", "截至第", "事件", "（", "(", "provisional", "final",
                "position", "frozen", "close number")

# National totals that exercise every idiom of SPEC §5 (the sample quote's), with some metrics left at zero.
NATIONAL = {
    "dens_busted": 1032, "seized_value_yuan": Decimal("350000000.00"), "personnel": 98765, "vehicles": 13150,
    "cases": 13000, "destroyed_value_yuan": Decimal("193500000.00"), "batches_sampled": 20192,
    "batches_passed": 18476, "inspected_enterprises": 19124, "participants": 2030000, "consultations": 352400000,
    "materials_copies": 2968000, "labs_opened": 35, "lab_visitors": 100500,
}


def _summary(national: dict[str, int | Decimal], *, final: bool = True, position: int = 120,
             reported: tuple[str, ...] = ("110000", "330000", "440000", "510000", "650000"),
             theme: str = THEME) -> CampaignSummary:
    return summarise(campaign="2017", theme=theme, starts_on=date(2017, 9, 1), ends_on=date(2017, 9, 30),
                     final=final, position=position, close_number=1 if final else None,
                     national={m: Decimal(v) for m, v in national.items()},
                     provinces={"330000": {m: Decimal(v) for m, v in national.items()}},
                     reported=list(reported), expected=MAINLAND)


def _sentences(text: str) -> list[str]:
    parts = text.split("。")
    assert parts[-1] == "", f"the text must end with 。: {text!r}"
    return [p + "。" for p in parts[:-1]]


def test_the_zh_text_reads_like_the_report_sentence_by_sentence() -> None:
    assert _sentences(_summary(NATIONAL).text_zh) == [
        HEAD,
        "全国31个省（区、市）中有5个报送了活动数据。",
        "全国共捣毁黑窝点上千个，查获假冒伪劣产品货值3.5亿元，出动执法人员近10万人次，出动执法车辆13000余台次，"
        "立案查处案件13000起。",
        "集中销毁假冒伪劣产品货值近2亿元。",
        "抽查产品20000余批次，其中合格18000余批次，合格率91.5%，涉及受检企业近20000家次。",
        "200多万人次群众参加宣传咨询活动，受理咨询投诉约3.5亿件，发放宣传材料近300万份。",
        "开放实验室35个，接待参观群众10万余人次。",
    ]


def test_the_status_and_the_position_are_in_the_note_never_in_the_text() -> None:
    final = _summary(NATIONAL, position=19584)
    provisional = _summary({"dens_busted": 3}, final=False, position=4711)
    reopened = summarise(campaign="2017", theme=THEME, starts_on=date(2017, 9, 1), ends_on=date(2017, 9, 30),
                         final=False, position=5000, close_number=None, national={"dens_busted": Decimal(3)},
                         provinces={}, reported=["330000"], expected=MAINLAND, closes=1)
    for summary in (final, provisional, reopened):
        for word in STATUS_WORDS:  # "（区、市）" is part of the phrase for provinces, not a note
            assert word.lower() not in summary.text_zh.replace("（区、市）", "").lower(), word
            assert word.lower() not in summary.text_en.lower(), word
    assert final.note_zh == ("数据说明：最终数据，于活动第1次结束时冻结，依据事件日志第1至19584条记录，此后不再变化；"
                             "每个数字均可由回放事件日志复核。")
    assert "final, frozen at close number 1 (event log positions 1 to 19584)" in final.note_en
    assert provisional.note_zh == "数据说明：临时数据。活动尚未结束，数字还会变化；依据事件日志第1至4711条记录。"
    assert "has not been closed yet" in provisional.note_en
    assert not provisional.reopened
    # Reopened is not "not yet over": it says it was closed once and reopened to correct data.
    assert reopened.reopened
    assert "活动尚未结束" not in reopened.note_zh
    assert "重新开启以更正数据（此前已结束1次）" in reopened.note_zh
    assert "reopened after close number 1" in reopened.note_en


def test_coverage_says_all_reported_as_the_reports_do() -> None:
    everyone = _summary({"dens_busted": 3}, reported=tuple(MAINLAND))
    assert _sentences(everyone.text_zh)[1] == "全国31个省（区、市）均报送了活动数据。"
    assert "All 31 provinces reported." in everyone.text_en
    assert _sentences(_summary({"dens_busted": 3}).text_zh)[1] == "全国31个省（区、市）中有5个报送了活动数据。"
    assert "5 of 31 provinces reported." in _summary({"dens_busted": 3}).text_en


def test_the_window_is_written_as_a_reader_writes_it() -> None:
    across = summarise(campaign="x", theme=THEME, starts_on=date(2017, 8, 25), ends_on=date(2017, 9, 30), final=True,
                       position=1, close_number=1, national={}, provinces={}, reported=[], expected=MAINLAND)
    assert "于2017年8月25日至9月30日举行" in across.text_zh
    assert "ran from 25 August to 30 September 2017." in across.text_en
    years = summarise(campaign="x", theme=THEME, starts_on=date(2017, 12, 1), ends_on=date(2018, 1, 5), final=True,
                      position=1, close_number=1, national={}, provinces={}, reported=[], expected=MAINLAND)
    assert "于2017年12月1日至2018年1月5日举行" in years.text_zh
    assert "ran from 1 December 2017 to 5 January 2018." in years.text_en


def test_zero_clauses_and_empty_groups_are_left_out_and_the_first_sentence_says_nationwide() -> None:
    text = _summary({"batches_sampled": 40, "batches_passed": 0, "pledged_enterprises": 25, "awarded_products": 9,
                     "booths": 0}).text_zh
    assert _sentences(text)[2:] == [
        "全国共抽查产品40批次，合格率0%。",
        "25家企业签署质量诚信承诺，名牌产品9个。",
    ]


def test_nothing_reported_gives_the_head_alone_and_no_activity_in_en() -> None:
    summary = _summary({}, reported=())
    assert _sentences(summary.text_zh) == [HEAD, "各省（区、市）尚未报送活动数据。"]
    assert summary.text_en.endswith(" ran from 1 to 30 September 2017. No province has reported yet.")
    assert summary.pass_rate.ratio is None
    assert summary.pass_rate.percent_zh is None


def test_every_figure_keeps_its_exact_value_beside_the_phrase() -> None:
    figures = _summary(NATIONAL | {"seized_value_yuan": Decimal("152000.50")}).figures
    assert set(figures) == set(METRICS)
    seized = figures["seized_value_yuan"]
    assert (seized.exact, seized.phrase.text, seized.phrase.qualifier) == ("152000.50", "15万余", "余")
    assert seized.sentence_zh == "全国共查获假冒伪劣产品货值15万余元"
    assert seized.sentence_en == "counterfeit and substandard goods worth 152,000.50 yuan were seized"
    dens = figures["dens_busted"]
    assert (dens.exact, dens.phrase.text, dens.clause_zh) == (1032, "上千", "捣毁黑窝点上千个")
    assert figures["booths"].exact == 0
    assert figures["booths"].phrase.text == "0"


def test_the_en_text_states_every_non_zero_figure_exactly_with_thousands_separators() -> None:
    en = _summary(NATIONAL).text_en
    assert en == (
        "Quality Month 2017, on the theme “全面提升质量 推动高质量发展”, ran from 1 to 30 September 2017. "
        "5 of 31 provinces reported. Nationwide, 1,032 dens of counterfeiters were busted; counterfeit and "
        "substandard goods worth 350,000,000.00 yuan were seized; 98,765 enforcement officer deployments were made; "
        "13,150 enforcement vehicle trips were made; 13,000 cases were filed; goods worth 193,500,000.00 yuan were "
        "destroyed; 20,192 product batches were spot-checked; 18,476 batches passed; 19,124 enterprise inspections "
        "were made; members of the public took part 2,030,000 times in publicity and consultation events; "
        "352,400,000 consultations and complaints were handled; 2,968,000 copies of publicity materials were "
        "distributed; 35 laboratories opened their doors; laboratories received 100,500 visits. The spot-check "
        "pass rate was 91.5%.")


def test_the_en_pass_rate_is_a_percentage_like_the_zh_one() -> None:
    en = _summary({"batches_sampled": 10000, "batches_passed": 9162}).text_en
    assert en.endswith("The spot-check pass rate was 91.6%.")
    assert "0.9162" not in en


@pytest.mark.parametrize(("passed", "sampled", "expected"), [
    (18476, 20192, "91.5%"),
    (9125, 10000, "91.2%"),  # 91.25 → half-even
    (9135, 10000, "91.4%"),  # 91.35 → half-even
    (1, 3, "33.3%"),
    (2, 3, "66.7%"),
    (40, 40, "100%"),
    (0, 40, "0%"),
    (37, 40, "92.5%"),
    (19999, 20000, "99.995%"),  # one decimal would say 100% while a batch failed
    (199999, 200000, "99.9995%"),
    (1, 20000, "0.005%"),  # one decimal would say 0% while a batch passed
])
def test_the_pass_rate_is_a_percentage_with_one_decimal(passed: int, sampled: int, expected: str) -> None:
    assert percent(Decimal(passed), Decimal(sampled)) == expected


def test_no_pass_rate_without_samples() -> None:
    assert percent(Decimal(0), Decimal(0)) is None


def test_every_metric_has_one_clause_in_one_sentence_and_the_unit_follows_the_phrase() -> None:
    grouped = [m for group in SENTENCES for m in group]
    assert sorted(grouped) == sorted(METRICS)
    assert len(grouped) == len(set(grouped))
    for metric, spec in METRICS.items():
        assert CLAUSES_ZH[metric].count("{p}") == 1, metric
        assert "{p}" + spec.unit in CLAUSES_ZH[metric], (metric, spec.unit)
        assert CLAUSES_EN[metric].count("{v}") == 1, metric


class _Hover(HTMLParser):
    """The text paragraph's hover elements: (phrase, title) pairs."""

    def __init__(self) -> None:
        super().__init__()
        self.in_text = False
        self.title: str | None = None
        self.hovers: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "p" and attributes.get("class") == "text":
            self.in_text = True
        elif self.in_text and attributes.get("title"):
            self.title = attributes["title"]

    def handle_endtag(self, tag: str) -> None:
        if tag == "p":
            self.in_text = False

    def handle_data(self, data: str) -> None:
        if self.title is not None:
            self.hovers.append((data, self.title))
            self.title = None


def test_the_zh_html_puts_the_exact_value_on_every_phrase_and_escapes_the_theme() -> None:
    summary = _summary(NATIONAL, theme="质量<b>第一</b> & 诚信")
    page = render_html(summary, "zh")
    assert "<b>" not in page
    assert "质量&lt;b&gt;第一&lt;/b&gt; &amp; 诚信" in page
    parser = _Hover()
    parser.feed(page)
    hovers = dict(parser.hovers)
    for metric, figure in summary.figures.items():
        if figure.value:
            assert figure.phrase.text in hovers, metric
            assert str(figure.exact) in hovers[figure.phrase.text], metric
    assert len(parser.hovers) == len([f for f in summary.figures.values() if f.value])


def test_the_provisional_renderings_say_so() -> None:
    summary = _summary({"dens_busted": 3}, final=False, position=77)
    assert "临时" in render_markdown(summary, "zh").splitlines()[0]
    assert "(provisional)" in render_markdown(summary, "en").splitlines()[0]
    assert "> 数据说明：临时数据。" in render_markdown(summary, "zh")
    assert "临时数据" in render_html(summary, "zh")
    assert "About these figures: provisional." in render_html(summary, "en")
    rows = list(csv.DictReader(io.StringIO(render_csv(summary, "en").removeprefix("\ufeff"))))
    assert {(r["status"], r["log position"]) for r in rows} == {("provisional", "77")}


def _csv_rows(text: str) -> list[dict[str, str]]:
    assert text.startswith("\ufeff"), "Excel on Chinese Windows needs the BOM to read UTF-8"
    return list(csv.DictReader(io.StringIO(text.removeprefix("\ufeff"))))


def test_the_csv_is_for_a_spreadsheet_in_the_chosen_language_with_plain_values() -> None:
    summary = summarise(campaign="2017", theme=THEME, starts_on=date(2017, 9, 1), ends_on=date(2017, 9, 30),
                        final=True, position=120, close_number=1,
                        national={"seized_value_yuan": Decimal("1234567.50"), "batches_sampled": Decimal(10000),
                                  "batches_passed": Decimal(9162), "dens_busted": Decimal(1032)},
                        provinces={"330000": {"batches_sampled": Decimal(40), "batches_passed": Decimal(37)}},
                        reported=["330000"], expected=MAINLAND,
                        categories={"batches_sampled": {"liquor": Decimal(100), "手工艺品": Decimal(4)},
                                    "batches_passed": {"liquor": Decimal(93), "手工艺品": Decimal(4)}})
    zh, en = _csv_rows(render_csv(summary, "zh")), _csv_rows(render_csv(summary, "en"))
    assert list(zh[0]) == ["范围", "地区代码", "地区", "指标", "指标代码", "数值", "单位", "概数", "数据状态",
                           "日志位置"]
    assert list(en[0]) == ["scope", "region code", "region", "metric", "metric code", "value", "unit",
                           "round figure (zh)", "status", "log position"]
    assert len(zh) == len(en)
    assert {r["数据状态"] for r in zh} == {"最终"}
    assert {r["status"] for r in en} == {"final"}
    national_zh = {r["指标代码"]: r for r in zh if r["范围"] == "全国"}
    national_en = {r["metric code"]: r for r in en if r["scope"] == "national"}
    assert (national_zh["seized_value_yuan"]["数值"], national_zh["seized_value_yuan"]["单位"]) == ("1234567.50", "元")
    assert (national_en["seized_value_yuan"]["value"], national_en["seized_value_yuan"]["unit"]) == ("1234567.50",
                                                                                                     "yuan")
    assert national_en["seized_value_yuan"]["metric"] == "Value of goods seized"
    assert national_zh["seized_value_yuan"]["指标"] == "查获货值"
    assert national_zh["dens_busted"]["数值"] == "1032"
    assert (national_en["pass_rate"]["value"], national_en["pass_rate"]["round figure (zh)"]) == ("0.9162", "91.6%")
    categories = {r["region"]: r["value"] for r in en if r["scope"] == "product category"}
    assert categories == {"liquor": "0.93", "手工艺品": "1"}
    assert {r["地区"]: r["数值"] for r in zh if r["范围"] == "产品类别"} == {"白酒": "0.93", "手工艺品": "1"}
    zhejiang = {r["metric code"]: r["value"] for r in en if r["region code"] == "330000"}
    assert zhejiang["pass_rate"] == "0.925"
    assert {r["region"] for r in en if r["region code"] == "330000"} == {"Zhejiang"}
    for row in en:
        assert row["value"] not in ("True", "False"), row
        assert "," not in row["value"], row


def test_the_html_gives_national_figures_a_pass_rate_row_and_readable_province_tables() -> None:
    summary = _summary(NATIONAL | {"batches_sampled": 10000, "batches_passed": 9162})
    for lang in ("zh", "en"):
        page = render_html(summary, lang)  # type: ignore[arg-type]
        parsed = _Tables()
        parsed.feed(page)
        national, *provinces = parsed.tables
        assert len(national) == 1 + len(METRICS) + 1  # header, every metric, the pass rate
        assert national[-1][1] == "91.6%"
        for table in provinces:
            assert len(table) == 1 + len(MAINLAND)
            assert max(len(row) for row in table) <= 9, "a province table an A4 page can hold"
        shown = {cell for table in provinces for cell in table[0]}
        assert len(shown) >= len(METRICS), "every metric appears in one of the province tables"
        assert "@page{size:A4" in page
        assert "thead{display:table-header-group}" in page
    assert "Zhejiang" in render_html(summary, "en")


class _Tables(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self.cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self.cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self.cell is not None:
            self.tables[-1][-1].append("".join(self.cell).strip())
            self.cell = None

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell.append(data)


def test_the_markdown_province_table_lists_every_expected_province() -> None:
    md = render_markdown(_summary(NATIONAL), "zh")
    codes = re.findall(r"^\| [^|]+ \((\d{6})\) \|", md, flags=re.MULTILINE)
    assert codes == MAINLAND
