"""The summary as one self-contained HTML page: readable on screen, printable on A4. Pure."""

import html
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Final

from events.catalogue import METRICS, label_in
from projections.number_format import display
from projections.summary import CampaignSummary
from services.summary_words import (
    Lang,
    metric_label,
    note,
    province_codes,
    province_name,
    province_rate,
    text_in,
    title,
    unit_in,
)

# The province table's key metrics (the rest go in the tables after it); the pass rate follows them.
KEY_METRICS: Final = ("dens_busted", "seized_value_yuan", "personnel", "cases", "batches_sampled", "participants",
                      "materials_copies")
OTHER_METRICS: Final = tuple(m for m in METRICS if m not in KEY_METRICS)
TEN_THOUSAND: Final = Decimal(10000)

_CSS = """
*{box-sizing:border-box}
body{font-family:"Noto Sans CJK SC","Source Han Sans SC","PingFang SC","Microsoft YaHei",sans-serif;
margin:2rem auto;max-width:64rem;color:#1b1b1b;line-height:1.6;padding:0 1rem}
h1{font-size:1.6rem;margin:0 0 .6rem}h2{font-size:1.15rem;margin:1.6rem 0 .4rem}
.text{font-size:1.05rem}html[lang=zh-CN] .text{text-align:justify}.fig{border-bottom:1px dotted #555;cursor:help}
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
        "10k yuan" if METRICS[metric].kind == "money" else unit_in(METRICS[metric].unit, lang))
    small = f"<br><small>{html.escape(unit)}</small>" if unit else ""
    return f"<th>{html.escape(metric_label(metric, lang))}{small}</th>"


def _province_table(s: CampaignSummary, lang: Lang, metrics: tuple[str, ...], *, with_rate: bool,
                    caption: str) -> str:
    heads = "".join(_column_head(m, lang) for m in metrics)
    if with_rate:
        heads += f"<th>{'合格率' if lang == 'zh' else 'Pass rate'}</th>"
    rows = []
    for code in province_codes(s):
        totals = s.provinces.get(code, {})
        cells = "".join(_cell(_grouped(m, totals.get(m, Decimal(0))),
                              f"{display(m, totals.get(m, Decimal(0)))} 元" if METRICS[m].kind == "money" else None)
                        for m in metrics)
        if with_rate:
            cells += _cell(province_rate(totals) or "—")
        rows.append(f'<tr data-region="{code}"><td>{html.escape(province_name(code, lang))}</td>{cells}</tr>')
    return (f'<div class="wrap"><table class="provinces"><caption>{html.escape(caption)}</caption>'
            f"<thead><tr><th>{'地区' if lang == 'zh' else 'Province'}</th>{heads}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table></div>")


def _markedtext_in(s: CampaignSummary, lang: Lang) -> str:
    """The text, with the exact value on hover over every zh phrase."""
    text = html.escape(text_in(s, lang))
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
        f"<tr data-metric=\"{m}\"><td>{html.escape(metric_label(m, lang))}</td>"
        f'<td><span class="fig" title="{html.escape(str(f.exact))}">{html.escape(f.phrase.text)}</span></td>'
        f"<td>{html.escape(_grouped(m, f.value) if METRICS[m].kind == 'count' else f'{f.value:,.2f}')}</td>"
        f"<td>{html.escape(unit_in(METRICS[m].unit, lang))}</td></tr>"
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
            f"<title>{html.escape(title(s, lang))}</title><style>{_CSS}</style></head><body>"
            f"<h1>{html.escape(title(s, lang))}</h1>"
            f'<p class="text">{_markedtext_in(s, lang)}</p>'
            f'<p class="{note_class}">{html.escape(note(s, lang))}</p>'
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
