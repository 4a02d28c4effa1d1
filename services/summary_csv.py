"""The summary as CSV for a spreadsheet: UTF-8 with a BOM, words in the chosen language, plain values. Pure."""

import csv
import io
from decimal import Decimal
from typing import Final

from events.catalogue import METRICS, label_in
from projections.number_format import display, ratio
from projections.summary import CampaignSummary
from services.summary_words import (
    Lang,
    metric_label,
    province_codes,
    province_name,
    province_rate,
    quality_sentence,
    unit_in,
)

BOM: Final = "\ufeff"
_CSV_HEADS: Final = {
    "zh": ["范围", "地区代码", "地区", "指标", "指标代码", "数值", "单位", "概数", "数据状态", "日志位置"],
    "en": ["scope", "region code", "region", "metric", "metric code", "value", "unit", "round figure (zh)", "status",
           "log position"],
}
_CSV_WORDS: Final = {
    "zh": {"national": "全国", "category": "产品类别", "province": "省级", "final": "最终", "provisional": "临时",
           "pass_rate": "抽检合格率", "open_flags": "未核实的数据质量提示", "count": "条"},
    "en": {"national": "national", "category": "product category", "province": "province", "final": "final",
           "provisional": "provisional", "pass_rate": "Spot-check pass rate",
           "open_flags": "Open data-quality flags", "count": "flags"},
}


# OWASP "CSV injection": a spreadsheet runs a cell that starts with one of these as a formula
# (=HYPERLINK(…), +cmd|…, @SUM(…)), so such a text cell gets a leading ' and is shown as written.
_FORMULA_STARTS: Final = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(cell: object) -> object:
    """A text cell that a spreadsheet would read as a formula, prefixed with ' (numbers are left as they are)."""
    if isinstance(cell, str) and cell.startswith(_FORMULA_STARTS):
        return "'" + cell
    return cell


def _province_ratio(totals: dict[str, Decimal]) -> str:
    """A province's Σpassed ÷ Σsampled by the one ratio rule (number_format.ratio); empty without samples."""
    return ratio(totals.get("batches_passed", Decimal(0)), totals.get("batches_sampled", Decimal(0))) or ""


def render_csv(s: CampaignSummary, lang: Lang = "zh") -> str:
    """CSV for a spreadsheet: UTF-8 with a BOM (Excel on Chinese Windows), headers and words in ``lang``,
    plain values (no thousands separators, money to the fen, a pass rate as its exact ratio, with the
    report's percentage in the round-figure column); no text cell can run as a formula (reporters'
    free-text categories included)."""
    words = _CSV_WORDS[lang]
    status = words["final" if s.final else "provisional"]
    out = io.StringIO()
    out.write(BOM)
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(_CSV_HEADS[lang])
    nation = "全国" if lang == "zh" else "China"

    def row(scope: str, code: str, name: str, label: str, metric: str, value: object, unit: str, phrase: str) -> None:
        cells = [words[scope], code, name, label, metric, value, unit, phrase, status, s.position]
        writer.writerow([spreadsheet_safe(cell) for cell in cells])

    for m, f in s.figures.items():
        row("national", "000000", nation, metric_label(m, lang), m, f.exact, unit_in(METRICS[m].unit, lang),
            f.phrase.text)
    row("national", "000000", nation, words["pass_rate"], "pass_rate", s.pass_rate.ratio or "", "",
        s.pass_rate.percent_zh or "")
    for c in s.pass_rate.by_category:
        row("category", "000000", label_in(c.category, lang), words["pass_rate"], "pass_rate",
            c.ratio or "", "", c.percent or "")
    if s.quality is not None:
        row("national", "000000", nation, words["open_flags"], "open_quality_flags", s.quality.open_flags,
            words["count"], quality_sentence(s, lang))
    for code in province_codes(s):
        totals = s.provinces.get(code, {})
        name = province_name(code, lang)
        for m in METRICS:
            row("province", code, name, metric_label(m, lang), m, display(m, totals.get(m, Decimal(0))),
                unit_in(METRICS[m].unit, lang), "")
        row("province", code, name, words["pass_rate"], "pass_rate", _province_ratio(totals), "",
            province_rate(totals) or "")
    return out.getvalue()
