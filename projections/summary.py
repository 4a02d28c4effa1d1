"""The year-end summary: exact totals first, phrased last. Pure.

Each metric has a zh clause template (after the national office's reports) and an en
sentence that states the exact number. The zh text groups the clauses into sentences;
the exact value is always kept beside each phrase.
"""

from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Final

from events.catalogue import FLAG_RULES, METRICS, RATIOS
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

# metric → zh sentence standing alone (a figure's ``sentence_zh``), where "全国共" + its clause would not read:
# "其中合格…" needs the sampled batches before it, and a clause without its own verb needs "有" or one.
STANDALONE_ZH: Final[dict[str, str]] = {
    "batches_passed": "全国共有{p}批次产品抽查合格",
    "participants": "全国共有{p}人次群众参加宣传咨询活动",
    "quality_workers": "全国共有质量工作者{p}人次参与",
    "pledged_enterprises": "全国共有{p}家企业签署质量诚信承诺",
    "awarded_products": "全国共评出名牌产品{p}个",
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
class CategoryPassRate:
    """Σpassed ÷ Σsampled within one product category."""

    category: str
    ratio: str | None
    percent: str | None
    passed: int
    sampled: int


@dataclass(frozen=True, slots=True)
class SummaryPassRate:
    """Σpassed ÷ Σsampled, exact and as the report's percentage, overall and by product category."""

    ratio: str | None
    percent_zh: str | None
    passed: int
    sampled: int
    by_category: tuple[CategoryPassRate, ...] = ()


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
    note_zh: str = ""
    """Status and provenance (final or provisional, close number, log position): kept out of the text."""
    note_en: str = ""
    reopened: bool = False
    """Provisional because the campaign was reopened after a close (not because it never closed)."""
    quality: "QualityNote | None" = None
    """Data-quality flags open at ``position`` (issue 15); None when not loaded."""



@dataclass(frozen=True, slots=True)
class QualityNote:
    """How many data-quality flags were open at the summary's position, and how far flags were scored."""

    by_code: dict[str, int]
    scored_to: int
    """min(position, the flags checkpoint): equal to position once every event up to it was scored."""

    @property
    def open_flags(self) -> int:
        """All open flags."""
        return sum(self.by_code.values())

    def sentence_zh(self) -> str:
        """The statement the summary makes about them, in Chinese."""
        if not self.open_flags:
            return "数据质量：没有未核实的数据质量提示。"
        parts = "、".join(f"{FLAG_RULES[code].name_zh if code in FLAG_RULES else code}{n}条"
                         for code, n in sorted(self.by_code.items()))
        return f"数据质量：尚有{self.open_flags}条数据质量提示未核实（{parts}）。"

    def sentence_en(self) -> str:
        """The statement in English."""
        if not self.open_flags:
            return "Data quality: no data-quality flags are open."
        parts = ", ".join(f"{n} {FLAG_RULES[code].name_en if code in FLAG_RULES else code}"
                          for code, n in sorted(self.by_code.items()))
        return f"Data quality: {self.open_flags} data-quality flag(s) are open ({parts})."


def _date_zh(day: date) -> str:
    return f"{day.year}年{day.month}月{day.day}日"


def _window_zh(starts_on: date, ends_on: date) -> str:
    """"2017年9月1日至9月30日": the year is not repeated within one year."""
    end = f"{ends_on.month}月{ends_on.day}日" if ends_on.year == starts_on.year else _date_zh(ends_on)
    return f"{_date_zh(starts_on)}至{end}"


_MONTHS_EN: Final = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
                     "October", "November", "December")


def _window_en(starts_on: date, ends_on: date) -> str:
    """"1 to 30 September 2017", "25 August to 30 September 2017", "1 December 2017 to 5 January 2018"."""
    def day(d: date, *, year: bool = True, month: bool = True) -> str:
        return " ".join([str(d.day)] + ([_MONTHS_EN[d.month - 1]] if month else []) + ([str(d.year)] if year else []))
    if starts_on.year != ends_on.year:
        return f"{day(starts_on)} to {day(ends_on)}"
    return f"{day(starts_on, year=False, month=starts_on.month != ends_on.month)} to {day(ends_on)}"


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
    standalone = STANDALONE_ZH[metric].format(p=phrase.text) if metric in STANDALONE_ZH else "全国共" + clause
    return SummaryFigure(metric, value, exact, phrase, clause, standalone, CLAUSES_EN[metric].format(v=shown))


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
    return "".join(sentences)


def _text_en(figures: dict[str, SummaryFigure], rate: SummaryPassRate, head: str) -> str:
    parts = [figures[m].sentence_en for group in SENTENCES for m in group if figures[m].value != 0]
    if not parts:
        return head  # the coverage sentence already says nothing was reported
    body = "Nationwide, " + "; ".join(parts) + "."
    if rate.percent_zh is not None:
        body += f" The spot-check pass rate was {rate.percent_zh}."
    return head + " " + body


def _coverage_zh(reported: int, expected: int) -> str:
    if reported == 0:
        return "各省（区、市）尚未报送活动数据。"
    if reported == expected:
        return f"全国{expected}个省（区、市）均报送了活动数据。"
    return f"全国{expected}个省（区、市）中有{reported}个报送了活动数据。"


def _coverage_en(reported: int, expected: int) -> str:
    if reported == 0:
        return "No province has reported yet."
    if reported == expected:
        return f"All {expected} provinces reported."
    return f"{reported} of {expected} provinces reported."


def status_notes(*, final: bool, reopened: bool, position: int, close_number: int | None,
                 closes: int) -> tuple[str, str]:
    """The note beside the text (zh, en): whether the figures are final, and which log position they reflect."""
    if final:
        return (f"数据说明：最终数据，于活动第{close_number}次结束时冻结，依据事件日志第1至{position}条记录，"
                "此后不再变化；每个数字均可由回放事件日志复核。",
                f"About these figures: final, frozen at close number {close_number} (event log positions 1 to "
                f"{position}); they no longer change, and every figure can be re-derived by replaying the log.")
    if reopened:
        return (f"数据说明：临时数据。活动结束后已重新开启以更正数据（此前已结束{closes}次），"
                f"数字在再次结束前仍可能变化；依据事件日志第1至{position}条记录。",
                f"About these figures: provisional. The campaign was reopened after close number {closes} to "
                f"correct data, so the figures may change until it is closed again (event log positions 1 to "
                f"{position}).")
    return (f"数据说明：临时数据。活动尚未结束，数字还会变化；依据事件日志第1至{position}条记录。",
            f"About these figures: provisional. The campaign has not been closed yet and the figures will change "
            f"(event log positions 1 to {position}).")


def _category_rates(categories: dict[str, dict[str, Decimal]]) -> tuple[CategoryPassRate, ...]:
    spec = RATIOS["pass_rate"]
    passed, sampled = categories.get(spec.numerator, {}), categories.get(spec.denominator, {})
    rates = [CategoryPassRate(c, ratio(passed.get(c, Decimal(0)), n), percent(passed.get(c, Decimal(0)), n),
                              int(passed.get(c, Decimal(0))), int(n))
             for c, n in sampled.items() if n > 0]
    return tuple(sorted(rates, key=lambda r: (-r.sampled, r.category)))


def summarise(*, campaign: str, theme: str, starts_on: date, ends_on: date, final: bool, position: int,
              close_number: int | None, national: dict[str, Decimal], provinces: dict[str, dict[str, Decimal]],
              reported: list[str], expected: list[str], closes: int | None = None,
              categories: dict[str, dict[str, Decimal]] | None = None) -> CampaignSummary:
    """Build the summary from exact national and per-province totals at one position.

    ``closes`` is how often the campaign has been closed so far (a provisional summary after a close is a
    reopened campaign's); ``categories`` is metric → category → national value, for the pass rate by category.
    """
    figures = {m: _figure(m, national.get(m, Decimal(0))) for m in METRICS}
    spec = RATIOS["pass_rate"]
    passed, sampled = national.get(spec.numerator, Decimal(0)), national.get(spec.denominator, Decimal(0))
    rate = SummaryPassRate(ratio(passed, sampled), percent(passed, sampled), int(passed), int(sampled),
                           _category_rates(categories or {}))
    times_closed = closes if closes is not None else (close_number or 0)
    reopened = not final and times_closed > 0
    note_zh, note_en = status_notes(final=final, reopened=reopened, position=position, close_number=close_number,
                                    closes=times_closed)
    count = len([r for r in reported if r in expected])
    head_zh = (f"{starts_on.year}年全国“质量月”活动以“{theme}”为主题，于{_window_zh(starts_on, ends_on)}举行。"
               + _coverage_zh(count, len(expected)))
    head_en = (f"Quality Month {starts_on.year}, on the theme “{theme}”, ran from {_window_en(starts_on, ends_on)}. "
               + _coverage_en(count, len(expected)))
    return CampaignSummary(campaign, theme, starts_on, ends_on, final, position, close_number, reported, expected,
                           figures, rate, provinces, _text_zh(figures, rate, head_zh), _text_en(figures, rate, head_en),
                           note_zh, note_en, reopened)
