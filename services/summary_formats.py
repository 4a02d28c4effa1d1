"""The summary in each format: JSON (the contract), Markdown, one self-contained HTML page, CSV."""

import csv
import html
import io
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Final, Literal

from events.catalogue import METRICS, label_in
from events.province_names import PROVINCE_NAMES_EN
from events.regions import PROVINCES
from projections.number_format import display
from projections.summary import CampaignSummary, percent
from schemas.api import CategoryPassRateOut, Coverage, Summary, SummaryFigureOut, SummaryPassRateOut

Lang = Literal["zh", "en"]

# The province table's key metrics (the rest go in the tables after it); the pass rate follows batches_sampled.
KEY_METRICS: Final = ("dens_busted", "seized_value_yuan", "personnel", "cases", "batches_sampled", "participants",
                      "materials_copies")
OTHER_METRICS: Final = tuple(m for m in METRICS if m not in KEY_METRICS)
UNITS_EN: Final = {"元": "yuan", "个": "", "人次": "person-times", "台次": "trips", "起": "cases", "批次": "batches",
                   "家次": "inspections", "家": "enterprises", "份": "copies", "篇次": "reports", "件": "items"}
TEN_THOUSAND: Final = Decimal(10000)
BOM: Final = "\ufeff"


def summary_model(s: CampaignSummary) -> Summary:
    """The JSON form (SPEC §3): every metric's exact value beside its phrase and sentences."""
    return Summary(
        campaign=s.campaign, theme=s.theme, starts_on=s.starts_on, ends_on=s.ends_on, final=s.final,
        position=s.position, close_number=s.close_number, reopened=s.reopened,
        coverage=Coverage(reported=len([r for r in s.reported if r in s.expected]), expected=len(s.expected),
                          provinces_reported=s.reported,
                          provinces_missing=[p for p in s.expected if p not in s.reported]),
        figures={m: SummaryFigureOut(
            value=f.exact, unit=METRICS[m].unit, label_zh=METRICS[m].label_zh, label_en=METRICS[m].label_en,
            phrase_zh=f.phrase.text, qualifier=f.phrase.qualifier, interval=[str(f.phrase.low), str(f.phrase.high)],
            sentence_zh=f.sentence_zh, sentence_en=f.sentence_en) for m, f in s.figures.items()},
        pass_rate=SummaryPassRateOut(
            ratio=s.pass_rate.ratio, percent=s.pass_rate.percent_zh, passed=s.pass_rate.passed,
            sampled=s.pass_rate.sampled,
            by_category={c.category: CategoryPassRateOut(
                label_zh=label_in(c.category, "zh"), label_en=label_in(c.category, "en"), ratio=c.ratio,
                percent=c.percent, passed=c.passed, sampled=c.sampled) for c in s.pass_rate.by_category}),
        # Every expected province, as in the md, html and csv tables: which zero rows the read tables happen
        # to hold (a province whose reports were all retracted or corrected away) is not a figure.
        provinces={code: {m: display(m, s.provinces.get(code, {}).get(m, Decimal(0))) for m in METRICS}
                   for code in _province_codes(s)},
        text_zh=s.text_zh, text_en=s.text_en, note_zh=s.note_zh, note_en=s.note_en)


def _province_codes(s: CampaignSummary) -> list[str]:
    return sorted(set(s.provinces) | set(s.expected))


def _province_name(code: str, lang: Lang) -> str:
    return (PROVINCES if lang == "zh" else PROVINCE_NAMES_EN).get(code, code)


def _title(s: CampaignSummary, lang: Lang) -> str:
    if lang == "zh":
        return f"{s.starts_on.year}年全国质量月活动总结" + ("" if s.final else "（临时）")
    return f"National Quality Month {s.starts_on.year}: summary" + ("" if s.final else " (provisional)")


def _text(s: CampaignSummary, lang: Lang) -> str:
    return s.text_zh if lang == "zh" else s.text_en


def _note(s: CampaignSummary, lang: Lang) -> str:
    return s.note_zh if lang == "zh" else s.note_en


def _label(metric: str, lang: Lang) -> str:
    if lang == "zh":
        return METRICS[metric].label_zh
    label = METRICS[metric].label_en
    return label[:1].upper() + label[1:]


def _unit(unit: str, lang: Lang) -> str:
    return unit if lang == "zh" else UNITS_EN.get(unit, unit)


def _province_rate(totals: dict[str, Decimal]) -> str | None:
    return percent(totals.get("batches_passed", Decimal(0)), totals.get("batches_sampled", Decimal(0)))


def render_markdown(s: CampaignSummary, lang: Lang) -> str:
    """Markdown: title, the status note, the text, the metric table and the per-province table."""
    zh = lang == "zh"
    lines = [f"# {_title(s, lang)}", "", f"> {_note(s, lang)}", "", _text(s, lang), ""]
    lines += ["| " + " | ".join(["指标", "精确值", "单位", "概数"] if zh else ["metric", "exact", "unit", "phrase"])
              + " |", "|---|---:|---|---|"]
    for m, f in s.figures.items():
        lines.append(f"| {_label(m, lang)} | {f.exact} | {_unit(METRICS[m].unit, lang)} | {f.phrase.text} |")
    if s.pass_rate.ratio is not None:
        lines.append(f"| {'合格率' if zh else 'Pass rate'} | {s.pass_rate.ratio} | "
                     f"{s.pass_rate.passed}/{s.pass_rate.sampled} | {s.pass_rate.percent_zh} |")
    if s.pass_rate.by_category:
        lines += ["", "## " + ("按产品类别的抽检合格率" if zh else "Pass rate by product category"), "",
                  "| " + " | ".join(["类别", "抽查批次", "合格批次", "合格率"] if zh
                                   else ["category", "sampled", "passed", "pass rate"]) + " |",
                  "|---|---:|---:|---:|"]
        lines += [f"| {label_in(c.category, lang)} | {c.sampled} | {c.passed} | {c.percent} |"
                  for c in s.pass_rate.by_category]
    lines += ["", "## " + ("各省（区、市）" if zh else "By province"), ""]
    metrics = list(METRICS)
    lines.append("| " + ("地区" if zh else "region") + " | " + " | ".join(_label(m, lang) for m in metrics) + " |")
    lines.append("|---|" + "---:|" * len(metrics))
    for code in _province_codes(s):
        totals = s.provinces.get(code, {})
        lines.append(f"| {_province_name(code, lang)} ({code}) | "
                     + " | ".join(str(display(m, totals.get(m, Decimal(0)))) for m in metrics) + " |")
    return "\n".join(lines) + "\n"


_CSS = """
*{box-sizing:border-box}
body{font-family:"Noto Sans CJK SC","Source Han Sans SC","PingFang SC","Microsoft YaHei",sans-serif;
margin:2rem auto;max-width:64rem;color:#1b1b1b;line-height:1.6;padding:0 1rem}
h1{font-size:1.6rem;margin:0 0 .6rem}h2{font-size:1.15rem;margin:1.6rem 0 .4rem}
.text{font-size:1.05rem;text-align:justify}.fig{border-bottom:1px dotted #555;cursor:help}
.note{color:#5b4200;background:#fff7e6;padding:.4rem .8rem;border-left:4px solid #d98e00;font-size:.9rem}
.note.final{color:#14532d;background:#ecfdf3;border-left-color:#15803d}
.wrap{overflow-x:auto}
table{border-collapse:collapse;width:100%;margin:.4rem 0 1rem;font-size:.85rem;font-variant-numeric:tabular-nums}
th,td{border:1px solid #ccc;padding:.25rem .45rem;text-align:right}
th:first-child,td:first-child{text-align:left}thead th{background:#f3f3f3;font-weight:600}
tbody tr:nth-child(even){background:#fafafa}tr.rate td{font-weight:600;background:#f0f7f2}
table.national,table.categories{width:auto;min-width:50%}table.national td:last-child{text-align:left}
td small,th small{color:#666;font-weight:400}caption{text-align:left;color:#555;font-size:.85rem;padding:.2rem 0}
@page{size:A4;margin:14mm 12mm}
@media print{body{margin:0;max-width:none;padding:0;font-size:10pt}h1{font-size:15pt}h2{font-size:11.5pt;
break-after:avoid;page-break-after:avoid}.text{font-size:10.5pt}table{font-size:8.5pt;break-inside:auto}
thead{display:table-header-group}tr{break-inside:avoid;page-break-inside:avoid}.fig{border-bottom:none}
.note{border:1px solid #999;background:none}.wrap{overflow:visible}tbody tr:nth-child(even){background:none}}
"""


def _cell(value: int | str, exact: str | None = None) -> str:
    title = f' title="{html.escape(exact)}"' if exact else ""
    return f"<td{title}>{html.escape(str(value))}</td>"


def _grouped(metric: str, value: Decimal) -> str:
    """A table value: counts with thousands separators, money in 万元 to two places (the exact yuan on hover)."""
    if METRICS[metric].kind == "money":
        return f"{(value / TEN_THOUSAND).quantize(Decimal('0.01'), rounding=ROUND_HALF_EVEN):,}"
    return f"{int(value):,}"


def _column_head(metric: str, lang: Lang) -> str:
    unit = "万元" if METRICS[metric].kind == "money" and lang == "zh" else (
        "10k yuan" if METRICS[metric].kind == "money" else _unit(METRICS[metric].unit, lang))
    small = f"<br><small>{html.escape(unit)}</small>" if unit else ""
    return f"<th>{html.escape(_label(metric, lang))}{small}</th>"


def _province_table(s: CampaignSummary, lang: Lang, metrics: tuple[str, ...], *, with_rate: bool,
                    caption: str) -> str:
    heads = "".join(_column_head(m, lang) for m in metrics)
    if with_rate:
        heads += f"<th>{'合格率' if lang == 'zh' else 'Pass rate'}</th>"
    rows = []
    for code in _province_codes(s):
        totals = s.provinces.get(code, {})
        cells = "".join(_cell(_grouped(m, totals.get(m, Decimal(0))),
                              f"{display(m, totals.get(m, Decimal(0)))} 元" if METRICS[m].kind == "money" else None)
                        for m in metrics)
        if with_rate:
            cells += _cell(_province_rate(totals) or "—")
        rows.append(f'<tr data-region="{code}"><td>{html.escape(_province_name(code, lang))}</td>{cells}</tr>')
    return (f'<div class="wrap"><table class="provinces"><caption>{html.escape(caption)}</caption>'
            f"<thead><tr><th>{'地区' if lang == 'zh' else 'Province'}</th>{heads}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table></div>")


def _marked_text(s: CampaignSummary, lang: Lang) -> str:
    """The text, with the exact value on hover over every zh phrase."""
    text = html.escape(_text(s, lang))
    if lang == "zh":
        for m, f in s.figures.items():
            if f.value != 0:
                clause = html.escape(f.clause_zh)
                phrase = html.escape(f.phrase.text)
                exact = html.escape(f"精确值：{f.exact} {METRICS[m].unit}")
                marked = clause.replace(phrase, f'<span class="fig" title="{exact}">{phrase}</span>', 1)
                text = text.replace(clause, marked, 1)
    return text


def _national_table(s: CampaignSummary, lang: Lang) -> str:
    zh = lang == "zh"
    rows = "".join(
        f"<tr data-metric=\"{m}\"><td>{html.escape(_label(m, lang))}</td>"
        f'<td><span class="fig" title="{html.escape(str(f.exact))}">{html.escape(f.phrase.text)}</span></td>'
        f"<td>{html.escape(_grouped(m, f.value) if METRICS[m].kind == 'count' else f'{f.value:,.2f}')}</td>"
        f"<td>{html.escape(_unit(METRICS[m].unit, lang))}</td></tr>"
        for m, f in s.figures.items())
    rate = s.pass_rate
    if rate.percent_zh is not None:
        detail = (f"合格{rate.passed:,}批次 / 抽查{rate.sampled:,}批次" if zh
                  else f"{rate.passed:,} of {rate.sampled:,} batches passed")
        rows += (f'<tr class="rate" data-metric="pass_rate"><td>{"抽检合格率" if zh else "Spot-check pass rate"}</td>'
                 f'<td>{html.escape(rate.percent_zh)}</td><td>{html.escape(detail)}</td><td>%</td></tr>')
    heads = ["指标", "概数", "精确值", "单位"] if zh else ["Metric", "Round figure (zh)", "Exact", "Unit"]
    return ('<div class="wrap"><table class="national"><thead><tr>'
            + "".join(f"<th>{h}</th>" for h in heads) + f"</tr></thead><tbody>{rows}</tbody></table></div>")


def _category_table(s: CampaignSummary, lang: Lang) -> str:
    if not s.pass_rate.by_category:
        return ""
    zh = lang == "zh"
    heads = ["产品类别", "抽查批次", "合格批次", "合格率"] if zh else ["Product category", "Sampled", "Passed",
                                                                     "Pass rate"]
    rows = "".join(f'<tr data-category="{html.escape(c.category)}"><td>{html.escape(label_in(c.category, lang))}</td>'
                   f"<td>{c.sampled:,}</td><td>{c.passed:,}</td><td>{html.escape(c.percent or '—')}</td></tr>"
                   for c in s.pass_rate.by_category)
    return (f"<h2>{'按产品类别的抽检合格率' if zh else 'Spot-check pass rate by product category'}</h2>"
            '<div class="wrap"><table class="categories"><thead><tr>'
            + "".join(f"<th>{h}</th>" for h in heads) + f"</tr></thead><tbody>{rows}</tbody></table></div>")


def render_html(s: CampaignSummary, lang: Lang) -> str:
    """One self-contained page (no external assets) that prints on A4; hover any phrase for the exact value."""
    zh = lang == "zh"
    half = (len(OTHER_METRICS) + 1) // 2
    note_class = "note final" if s.final else "note"
    return (f'<!doctype html><html lang="{"zh-CN" if zh else "en"}"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width,initial-scale=1">'
            f"<title>{html.escape(_title(s, lang))}</title><style>{_CSS}</style></head><body>"
            f"<h1>{html.escape(_title(s, lang))}</h1>"
            f'<p class="text">{_marked_text(s, lang)}</p>'
            f'<p class="{note_class}">{html.escape(_note(s, lang))}</p>'
            f"<h2>{'全国主要数据' if zh else 'National figures'}</h2>{_national_table(s, lang)}"
            f"{_category_table(s, lang)}"
            f"<h2>{'各省（区、市）主要数据' if zh else 'Key figures by province'}</h2>"
            + _province_table(s, lang, KEY_METRICS, with_rate=True,
                              caption="金额单位为万元，悬停可见精确到分的数值。" if zh
                              else "Money in 10,000 yuan; hover for the exact amount.")
            + f"<h2>{'各省（区、市）其他数据' if zh else 'Other figures by province'}</h2>"
            + _province_table(s, lang, OTHER_METRICS[:half], with_rate=False, caption="")
            + _province_table(s, lang, OTHER_METRICS[half:], with_rate=False, caption="")
            + "</body></html>\n")


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


def _percent_number(text: str | None) -> str:
    """"91.5%" as the plain number 91.5 (Excel reads it as a number; the unit column says %)."""
    return text.removesuffix("%") if text else ""


def render_csv(s: CampaignSummary, lang: Lang = "zh") -> str:
    """CSV for a spreadsheet: UTF-8 with a BOM (Excel on Chinese Windows), headers and words in ``lang``,
    plain values (no thousands separators, money to the fen, the pass rate in percent)."""
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
        row("national", "000000", nation, _label(m, lang), m, f.exact, _unit(METRICS[m].unit, lang), f.phrase.text)
    row("national", "000000", nation, words["pass_rate"], "pass_rate", _percent_number(s.pass_rate.percent_zh), "%",
        "")
    for c in s.pass_rate.by_category:
        row("category", "000000", label_in(c.category, lang), words["pass_rate"], "pass_rate",
            _percent_number(c.percent), "%", "")
    for code in _province_codes(s):
        totals = s.provinces.get(code, {})
        name = _province_name(code, lang)
        for m in METRICS:
            row("province", code, name, _label(m, lang), m, display(m, totals.get(m, Decimal(0))),
                _unit(METRICS[m].unit, lang), "")
        row("province", code, name, words["pass_rate"], "pass_rate", _percent_number(_province_rate(totals)), "%", "")
    return out.getvalue()


CONTENT_TYPES: Final = {"json": "application/json", "md": "text/markdown", "html": "text/html", "csv": "text/csv"}


def render(summary_format: str, lang: str, summary: CampaignSummary) -> str:
    """The summary body in a format (shared by the API and `qmstats report`)."""
    if summary_format == "json":
        return summary_model(summary).model_dump_json()
    if summary_format == "md":
        return render_markdown(summary, "zh" if lang == "zh" else "en")
    if summary_format == "html":
        return render_html(summary, "zh" if lang == "zh" else "en")
    return render_csv(summary, "zh" if lang == "zh" else "en")
