"""The summary as CSV for a spreadsheet: UTF-8 with a BOM, words in the chosen language, plain values. Pure."""

import csv
import io
from decimal import Decimal
from typing import Final

from events.catalogue import METRICS, label_in
from projections.number_format import display, ratio
from projections.summary import CampaignSummary
from services.summary_words import Lang, metric_label, province_codes, province_name, province_rate, unit_in

BOM: Final = "\ufeff"
_CSV_HEADS: Final = {
    "zh": ["范围", "地区代码", "地区", "指标", "指标代码", "数值", "单位", "概数", "数据状态", "日志位置"],
    "en": ["scope", "region code", "region", "metric", "metric code", "value", "unit", "round figure (zh)", "status",
           "log position"],
}
_CSV_WORDS: Final = {
    "zh": {"national": "全国", "category": "产品类别", "province": "省级", "final": "最终", "provisional": "临时",
           "pass_rate": "抽检合格率"},
    "en": {"national": "national", "category": "product category", "province": "province", "final": "final",
           "provisional": "provisional", "pass_rate": "Spot-check pass rate"},
}


def _province_ratio(totals: dict[str, Decimal]) -> str:
    """A province's Σpassed ÷ Σsampled by the one ratio rule (number_format.ratio); empty without samples."""
    return ratio(totals.get("batches_passed", Decimal(0)), totals.get("batches_sampled", Decimal(0))) or ""


def render_csv(s: CampaignSummary, lang: Lang = "zh") -> str:
    """CSV for a spreadsheet: UTF-8 with a BOM (Excel on Chinese Windows), headers and words in ``lang``,
    plain values (no thousands separators, money to the fen, a pass rate as its exact ratio, with the
    report's percentage in the round-figure column)."""
    words = _CSV_WORDS[lang]
    status = words["final" if s.final else "provisional"]
    out = io.StringIO()
    out.write(BOM)
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(_CSV_HEADS[lang])
    nation = "全国" if lang == "zh" else "China"

    def row(scope: str, code: str, name: str, label: str, metric: str, value: object, unit: str, phrase: str) -> None:
        writer.writerow([words[scope], code, name, label, metric, value, unit, phrase, status, s.position])

    for m, f in s.figures.items():
        row("national", "000000", nation, metric_label(m, lang), m, f.exact, unit_in(METRICS[m].unit, lang),
            f.phrase.text)
    row("national", "000000", nation, words["pass_rate"], "pass_rate", s.pass_rate.ratio or "", "",
        s.pass_rate.percent_zh or "")
    for c in s.pass_rate.by_category:
        row("category", "000000", label_in(c.category, lang), words["pass_rate"], "pass_rate",
            c.ratio or "", "", c.percent or "")
    for code in province_codes(s):
        totals = s.provinces.get(code, {})
        name = province_name(code, lang)
        for m in METRICS:
            row("province", code, name, metric_label(m, lang), m, display(m, totals.get(m, Decimal(0))),
                unit_in(METRICS[m].unit, lang), "")
        row("province", code, name, words["pass_rate"], "pass_rate", _province_ratio(totals), "",
            province_rate(totals) or "")
    return out.getvalue()
