"""The year-end summary: exact totals first, phrased last. Pure.

Each metric has a zh clause template (after the national office's reports) and an en
sentence that states the exact number. The zh text groups the clauses into sentences;
the exact value is always kept beside each phrase.
"""

from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Final

from events.catalogue import METRICS, RATIOS
from projections.number_format import display, ratio
from projections.phrasing import Phrase, phrase_approx

# metric → zh clause with {p} for the phrased number (the unit follows the phrase).
CLAUSES_ZH: Final[dict[str, str]] = {
    "dens_busted": "捣毁黑窝点{p}个",
    "seized_value_yuan": "查获假冒伪劣产品货值{p}元",
    "personnel": "出动执法人员{p}人次",
    "vehicles": "出动执法车辆{p}台次",
    "cases": "立案查处案件{p}起",
    "destroyed_value_yuan": "集中销毁假冒伪劣产品货值{p}元",
    "batches_sampled": "抽查产品{p}批次",
    "batches_passed": "其中合格{p}批次",
    "inspected_enterprises": "涉及受检企业{p}家次",
    "participants": "{p}人次群众参加宣传咨询活动",
    "quality_workers": "质量工作者{p}人次参与",
    "booths": "设立咨询台{p}个",
    "consultations": "受理咨询投诉{p}件",
    "materials_copies": "发放宣传材料{p}份",
    "media_reports": "新闻媒体报道{p}篇次",
    "labs_opened": "开放实验室{p}个",
    "lab_visitors": "接待参观群众{p}人次",
    "pledged_enterprises": "{p}家企业签署质量诚信承诺",
    "awarded_enterprises": "表彰获奖企业{p}家",
    "awarded_products": "名牌产品{p}个",
}

# metric → en sentence fragment with {v} for the exact number.
CLAUSES_EN: Final[dict[str, str]] = {
    "dens_busted": "{v} dens of counterfeiters were busted",
    "seized_value_yuan": "counterfeit and substandard goods worth {v} yuan were seized",
    "personnel": "{v} enforcement officer deployments were made",
    "vehicles": "{v} enforcement vehicle trips were made",
    "cases": "{v} cases were filed",
    "destroyed_value_yuan": "goods worth {v} yuan were destroyed",
    "batches_sampled": "{v} product batches were spot-checked",
    "batches_passed": "{v} batches passed",
    "inspected_enterprises": "{v} enterprise inspections were made",
    "participants": "members of the public took part {v} times in publicity and consultation events",
    "quality_workers": "quality workers took part {v} times",
    "booths": "{v} consultation booths were set up",
    "consultations": "{v} consultations and complaints were handled",
    "materials_copies": "{v} copies of publicity materials were distributed",
    "media_reports": "{v} news reports appeared",
    "labs_opened": "{v} laboratories opened their doors",
    "lab_visitors": "laboratories received {v} visits",
    "pledged_enterprises": "{v} enterprises signed quality pledges",
    "awarded_enterprises": "{v} enterprises received awards",
    "awarded_products": "{v} products were named brand products",
}

# How the zh text groups clauses into sentences (the first clause of the text starts with 全国共).
SENTENCES: Final[tuple[tuple[str, ...], ...]] = (
    ("dens_busted", "seized_value_yuan", "personnel", "vehicles", "cases"),
    ("destroyed_value_yuan",),
    ("batches_sampled", "batches_passed", "inspected_enterprises"),
    ("participants", "quality_workers", "booths", "consultations", "materials_copies", "media_reports"),
    ("labs_opened", "lab_visitors"),
    ("pledged_enterprises", "awarded_enterprises", "awarded_products"),
)
PERCENT: Final = Decimal("0.1")


@dataclass(frozen=True, slots=True)
class SummaryFigure:
    """One metric: its exact total and how the report phrases it."""

    metric: str
    value: Decimal
    exact: int | str
    phrase: Phrase
    clause_zh: str
    sentence_zh: str
    sentence_en: str


@dataclass(frozen=True, slots=True)
class SummaryPassRate:
    """Σpassed ÷ Σsampled, exact and as the report's percentage."""

    ratio: str | None
    percent_zh: str | None
    passed: int
    sampled: int


@dataclass(frozen=True, slots=True)
class CampaignSummary:
    """Everything a summary states, in every format."""

    campaign: str
    theme: str
    starts_on: date
    ends_on: date
    final: bool
    position: int
    close_number: int | None
    """Which close this reflects (1 for the first close; None when provisional)."""
    reported: list[str]
    expected: list[str]
    figures: dict[str, SummaryFigure]
    pass_rate: SummaryPassRate
    provinces: dict[str, dict[str, Decimal]]
    text_zh: str
    text_en: str


def _date_zh(day: date) -> str:
    return f"{day.year}年{day.month}月{day.day}日"


def percent(numerator: Decimal, denominator: Decimal) -> str | None:
    """A ratio as a percentage, half-even to one decimal ("91.5%").

    More decimals are shown only where one decimal would state something false: 19999 of 20000
    passing is "99.995%", never "100%", and 1 of 20000 is "0.005%", never "0%".
    """
    if denominator == 0:
        return None
    exact = numerator * 100 / denominator
    places = PERCENT
    value = exact.quantize(places, rounding=ROUND_HALF_EVEN)
    while (value == 100 and numerator < denominator) or (value == 0 and numerator > 0):
        places = places / 10
        value = exact.quantize(places, rounding=ROUND_HALF_EVEN)
    return f"{value.normalize():f}%"


def _figure(metric: str, value: Decimal) -> SummaryFigure:
    phrase = phrase_approx(value)
    clause = CLAUSES_ZH[metric].format(p=phrase.text)
    exact = display(metric, value)
    shown = f"{value:,.2f}" if METRICS[metric].kind == "money" else f"{int(value):,}"
    return SummaryFigure(metric, value, exact, phrase, clause, "全国共" + clause,
                         CLAUSES_EN[metric].format(v=shown))


def _text_zh(figures: dict[str, SummaryFigure], rate: SummaryPassRate, head: str) -> str:
    sentences = [head]
    opened = False
    for group in SENTENCES:
        shown = [m for m in group if figures[m].value != 0]
        clauses = [figures[m].clause_zh for m in shown]
        if group[0] == "batches_sampled" and rate.percent_zh is not None and clauses:
            # "抽查产品…批次，其中合格…批次，合格率91.5%": the rate follows the counts it is made of.
            after = shown.index("batches_passed") if "batches_passed" in shown else shown.index("batches_sampled")
            clauses.insert(after + 1, f"合格率{rate.percent_zh}")
        if not clauses:
            continue
        sentences.append(("全国共" if not opened else "") + "，".join(clauses) + "。")
        opened = True
    if not opened:
        sentences.append("尚无活动数据报送。")
    return "".join(sentences)


def _text_en(figures: dict[str, SummaryFigure], rate: SummaryPassRate, head: str) -> str:
    parts = [figures[m].sentence_en for group in SENTENCES for m in group if figures[m].value != 0]
    body = ("Nationwide, " + "; ".join(parts) + ".") if parts else "No activity has been reported yet."
    if rate.ratio is not None:
        body += f" The spot-check pass rate was {rate.passed:,} of {rate.sampled:,} batches ({rate.ratio})."
    return head + " " + body


def summarise(*, campaign: str, theme: str, starts_on: date, ends_on: date, final: bool, position: int,
              close_number: int | None, national: dict[str, Decimal], provinces: dict[str, dict[str, Decimal]],
              reported: list[str], expected: list[str]) -> CampaignSummary:
    """Build the summary from exact national and per-province totals at one position."""
    figures = {m: _figure(m, national.get(m, Decimal(0))) for m in METRICS}
    spec = RATIOS["pass_rate"]
    passed, sampled = national.get(spec.numerator, Decimal(0)), national.get(spec.denominator, Decimal(0))
    rate = SummaryPassRate(ratio(passed, sampled), percent(passed, sampled), int(passed), int(sampled))
    status_zh = f"最终数据，第{close_number}次结束活动时冻结" if final else f"临时数据，截至第{position}条事件"
    head_zh = (f"{starts_on.year}年全国“质量月”活动以“{theme}”为主题，于{_date_zh(starts_on)}至"
               f"{_date_zh(ends_on)}举行（{status_zh}）。全国{len(expected)}个省（区、市）中有"
               f"{len([r for r in reported if r in expected])}个报送了活动数据。")
    status_en = (f"final figures, frozen at close number {close_number}" if final
                 else f"provisional figures as of event {position}")
    head_en = (f"Quality Month {starts_on.year} (theme: {theme}) ran from {starts_on} to {ends_on} ({status_en}). "
               f"{len([r for r in reported if r in expected])} of {len(expected)} provinces reported.")
    return CampaignSummary(campaign, theme, starts_on, ends_on, final, position, close_number, reported, expected,
                           figures, rate, provinces, _text_zh(figures, rate, head_zh), _text_en(figures, rate, head_en))
