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
from services.summary_formats import render_csv, render_html, render_markdown

THEME = "全面提升质量 推动高质量发展"
MAINLAND = sorted(f"{p}0000" for p in (
    "11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33", "34", "35", "36", "37", "41", "42", "43",
    "44", "45", "46", "50", "51", "52", "53", "54", "61", "62", "63", "64", "65"))
HEAD_FINAL = ("2017年全国“质量月”活动以“全面提升质量 推动高质量发展”为主题，于2017年9月1日至2017年9月30日举行"
              "（最终数据，第1次结束活动时冻结）。")

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
        HEAD_FINAL,
        "全国31个省（区、市）中有5个报送了活动数据。",
        "全国共捣毁黑窝点上千个，查获假冒伪劣产品货值3.5亿元，出动执法人员近10万人次，出动执法车辆13000余台次，"
        "立案查处案件13000起。",
        "集中销毁假冒伪劣产品货值近2亿元。",
        "抽查产品20000余批次，其中合格18000余批次，合格率91.5%，涉及受检企业近20000家次。",
        "200多万人次群众参加宣传咨询活动，受理咨询投诉约3.5亿件，发放宣传材料近300万份。",
        "开放实验室35个，接待参观群众10万余人次。",
    ]


def test_a_provisional_head_names_the_position_it_reflects() -> None:
    head, coverage = _sentences(_summary({"dens_busted": 3}, final=False, position=4711).text_zh)[:2]
    assert head == ("2017年全国“质量月”活动以“全面提升质量 推动高质量发展”为主题，于2017年9月1日至2017年9月30日举行"
                    "（临时数据，截至第4711条事件）。")
    assert coverage == "全国31个省（区、市）中有5个报送了活动数据。"
    en = _summary({"dens_busted": 3}, final=False, position=4711).text_en
    assert en.startswith("Quality Month 2017 (theme: 全面提升质量 推动高质量发展) ran from 2017-09-01 to 2017-09-30 "
                         "(provisional figures as of event 4711). 5 of 31 provinces reported. ")


def test_only_expected_provinces_count_toward_coverage() -> None:
    text = _summary({"dens_busted": 3}, reported=("330000", "810000")).text_zh
    assert _sentences(text)[1] == "全国31个省（区、市）中有1个报送了活动数据。"


def test_zero_clauses_and_empty_groups_are_left_out_and_the_first_sentence_says_nationwide() -> None:
    text = _summary({"batches_sampled": 40, "batches_passed": 0, "pledged_enterprises": 25, "awarded_products": 9,
                     "booths": 0}).text_zh
    assert _sentences(text)[2:] == [
        "全国共抽查产品40批次，合格率0%。",
        "25家企业签署质量诚信承诺，名牌产品9个。",
    ]


def test_nothing_reported_gives_the_head_alone_and_no_activity_in_en() -> None:
    summary = _summary({}, reported=())
    assert _sentences(summary.text_zh) == [HEAD_FINAL, "全国31个省（区、市）中有0个报送了活动数据。",
                                           "尚无活动数据报送。"]
    assert summary.text_en.endswith(" 0 of 31 provinces reported. No activity has been reported yet.")
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
        "Quality Month 2017 (theme: 全面提升质量 推动高质量发展) ran from 2017-09-01 to 2017-09-30 "
        "(final figures, frozen at close number 1). "
        "5 of 31 provinces reported. Nationwide, 1,032 dens of counterfeiters were busted; counterfeit and "
        "substandard goods worth 350,000,000.00 yuan were seized; 98,765 enforcement officer deployments were made; "
        "13,150 enforcement vehicle trips were made; 13,000 cases were filed; goods worth 193,500,000.00 yuan were "
        "destroyed; 20,192 product batches were spot-checked; 18,476 batches passed; 19,124 enterprise inspections "
        "were made; members of the public took part 2,030,000 times in publicity and consultation events; "
        "352,400,000 consultations and complaints were handled; 2,968,000 copies of publicity materials were "
        "distributed; 35 laboratories opened their doors; laboratories received 100,500 visits. The spot-check "
        "pass rate was 18,476 of 20,192 batches (0.915).")


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
    assert "PROVISIONAL" in render_markdown(summary, "en")
    assert "临时" in render_html(summary, "zh")
    assert "PROVISIONAL" in render_html(summary, "en")
    rows = list(csv.DictReader(io.StringIO(render_csv(summary))))
    assert {(r["final"].lower(), r["position"]) for r in rows} == {("false", "77")}


def test_the_markdown_province_table_lists_every_expected_province() -> None:
    md = render_markdown(_summary(NATIONAL), "zh")
    codes = re.findall(r"^\| [^|]+ \((\d{6})\) \|", md, flags=re.MULTILINE)
    assert codes == MAINLAND
