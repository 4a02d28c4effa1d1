"""The summary in each format: JSON (the contract), Markdown, one self-contained HTML page, CSV."""

import csv
import html
import io
from decimal import Decimal
from typing import Literal

from events.catalogue import METRICS
from events.regions import PROVINCES
from projections.number_format import display
from projections.summary import CampaignSummary
from schemas.api import Coverage, Summary, SummaryFigureOut, SummaryPassRateOut

Lang = Literal["zh", "en"]


def summary_model(s: CampaignSummary) -> Summary:
    """The JSON form (SPEC §3): every metric's exact value beside its phrase and sentences."""
    return Summary(
        campaign=s.campaign, theme=s.theme, starts_on=s.starts_on, ends_on=s.ends_on, final=s.final,
        position=s.position, close_number=s.close_number,
        coverage=Coverage(reported=len([r for r in s.reported if r in s.expected]), expected=len(s.expected),
                          provinces_reported=s.reported,
                          provinces_missing=[p for p in s.expected if p not in s.reported]),
        figures={m: SummaryFigureOut(
            value=f.exact, unit=METRICS[m].unit, label_zh=METRICS[m].label_zh, label_en=METRICS[m].label_en,
            phrase_zh=f.phrase.text, qualifier=f.phrase.qualifier, interval=[str(f.phrase.low), str(f.phrase.high)],
            sentence_zh=f.sentence_zh, sentence_en=f.sentence_en) for m, f in s.figures.items()},
        pass_rate=SummaryPassRateOut(ratio=s.pass_rate.ratio, percent=s.pass_rate.percent_zh,
                                     passed=s.pass_rate.passed, sampled=s.pass_rate.sampled),
        # Every expected province, as in the md, html and csv tables: which zero rows the read tables happen
        # to hold (a province whose reports were all retracted or corrected away) is not a figure.
        provinces={code: {m: display(m, s.provinces.get(code, {}).get(m, Decimal(0))) for m in METRICS}
                   for code in sorted(set(s.provinces) | set(s.expected))},
        text_zh=s.text_zh, text_en=s.text_en)


def _title(s: CampaignSummary, lang: Lang) -> str:
    if lang == "zh":
        return f"{s.starts_on.year}年全国质量月活动总结" + ("" if s.final else "（临时）")
    return f"National Quality Month {s.starts_on.year}: summary" + ("" if s.final else " (provisional)")


def _status(s: CampaignSummary, lang: Lang) -> str:
    if lang == "zh":
        return (f"最终数据：第{s.close_number}次结束活动时冻结，截至日志第{s.position}条。" if s.final
                else f"临时数据：活动尚未结束，截至日志第{s.position}条，数字仍会变化。")
    return (f"Final figures, frozen at close number {s.close_number} (log position {s.position})." if s.final
            else f"PROVISIONAL: the campaign is open; figures as of log position {s.position} will change.")


def _label(metric: str, lang: Lang) -> str:
    return METRICS[metric].label_zh if lang == "zh" else METRICS[metric].label_en


def render_markdown(s: CampaignSummary, lang: Lang) -> str:
    """Markdown: title, status, text, the metric table and the per-province table."""
    zh = lang == "zh"
    lines = [f"# {_title(s, lang)}", "", f"> {_status(s, lang)}", "", s.text_zh if zh else s.text_en, ""]
    lines += ["| " + " | ".join(["指标", "精确值", "单位", "概数"] if zh else ["metric", "exact", "unit", "phrase"])
              + " |", "|---|---:|---|---|"]
    for m, f in s.figures.items():
        lines.append(f"| {_label(m, lang)} | {f.exact} | {METRICS[m].unit} | {f.phrase.text} |")
    if s.pass_rate.ratio is not None:
        lines.append(f"| {'合格率' if zh else 'pass rate'} | {s.pass_rate.ratio} | "
                     f"{s.pass_rate.passed}/{s.pass_rate.sampled} | {s.pass_rate.percent_zh} |")
    lines += ["", "## " + ("各省（区、市）" if zh else "By province"), ""]
    metrics = list(METRICS)
    lines.append("| " + ("地区" if zh else "region") + " | " + " | ".join(_label(m, lang) for m in metrics) + " |")
    lines.append("|---|" + "---:|" * len(metrics))
    for code in sorted(set(s.provinces) | set(s.expected)):
        totals = s.provinces.get(code, {})
        lines.append(f"| {PROVINCES.get(code, code)} ({code}) | "
                     + " | ".join(str(display(m, totals.get(m, Decimal(0)))) for m in metrics) + " |")
    return "\n".join(lines) + "\n"


_CSS = """
body{font-family:"Noto Sans CJK SC","Source Han Sans SC","PingFang SC","Microsoft YaHei",sans-serif;
margin:2rem auto;max-width:72rem;color:#1b1b1b;line-height:1.6;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem}.status{color:#8a4b00;background:#fff4e0;padding:.4rem .8rem;
border-left:4px solid #d98e00}.final{color:#14532d;background:#ecfdf3;border-left-color:#15803d}
.text{font-size:1.05rem}.fig{border-bottom:1px dotted #555;cursor:help}
table{border-collapse:collapse;width:100%;margin:1rem 0;font-size:.85rem}
th,td{border:1px solid #ccc;padding:.25rem .45rem;text-align:right}th:first-child,td:first-child{text-align:left}
thead th{background:#f3f3f3}tbody tr:nth-child(even){background:#fafafa}
@media print{body{margin:0;max-width:none}.status{border:1px solid #999}table{page-break-inside:auto}
tr{page-break-inside:avoid}.fig{border-bottom:none}}
"""


def render_html(s: CampaignSummary, lang: Lang) -> str:
    """One self-contained page (no external assets) that prints well; hover any phrase for the exact value."""
    zh = lang == "zh"
    text = html.escape(s.text_zh if zh else s.text_en)
    if zh:
        for m, f in s.figures.items():
            if f.value != 0:
                clause = html.escape(f.clause_zh)
                phrase = html.escape(f.phrase.text)
                exact = html.escape(f"精确值：{f.exact} {METRICS[m].unit}")
                marked = clause.replace(phrase, f'<span class="fig" title="{exact}">{phrase}</span>', 1)
                text = text.replace(clause, marked, 1)
    rows = "".join(
        f"<tr><td>{html.escape(_label(m, lang))}</td><td>{f.exact}</td><td>{html.escape(METRICS[m].unit)}</td>"
        f'<td><span class="fig" title="{html.escape(str(f.exact))}">{html.escape(f.phrase.text)}</span></td></tr>'
        for m, f in s.figures.items())
    metrics = list(METRICS)
    province_rows = "".join(
        f"<tr><td>{html.escape(PROVINCES.get(code, code))}</td>"
        + "".join(f"<td>{display(m, s.provinces.get(code, {}).get(m, Decimal(0)))}</td>" for m in metrics)
        + "</tr>" for code in sorted(set(s.provinces) | set(s.expected)))
    heads = "".join(f"<th>{html.escape(_label(m, lang))}</th>" for m in metrics)
    status_class = "status final" if s.final else "status"
    return (f'<!doctype html><html lang="{"zh-CN" if zh else "en"}"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width,initial-scale=1">'
            f"<title>{html.escape(_title(s, lang))}</title><style>{_CSS}</style></head><body>"
            f"<h1>{html.escape(_title(s, lang))}</h1><p class=\"{status_class}\">{html.escape(_status(s, lang))}</p>"
            f'<p class="text">{text}</p>'
            f"<table><thead><tr><th>{'指标' if zh else 'metric'}</th><th>{'精确值' if zh else 'exact'}</th>"
            f"<th>{'单位' if zh else 'unit'}</th><th>{'概数' if zh else 'phrase'}</th></tr></thead>"
            f"<tbody>{rows}</tbody></table>"
            f"<h2>{'各省（区、市）' if zh else 'By province'}</h2>"
            f"<table><thead><tr><th>{'地区' if zh else 'region'}</th>{heads}</tr></thead>"
            f"<tbody>{province_rows}</tbody></table></body></html>\n")


def render_csv(s: CampaignSummary) -> str:
    """CSV: the national rows, the pass rate, then one row per province and metric; exact values."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["scope", "region", "region_name", "metric", "value", "unit", "phrase_zh", "final", "position"])
    for m, f in s.figures.items():
        writer.writerow(["national", "000000", "全国", m, f.exact, METRICS[m].unit, f.phrase.text, s.final,
                         s.position])
    writer.writerow(["national", "000000", "全国", "pass_rate", s.pass_rate.ratio or "", "", s.pass_rate.percent_zh
                     or "", s.final, s.position])
    for code in sorted(set(s.provinces) | set(s.expected)):
        totals = s.provinces.get(code, {})
        for m in METRICS:
            writer.writerow(["province", code, PROVINCES.get(code, code), m, display(m, totals.get(m, Decimal(0))),
                             METRICS[m].unit, "", s.final, s.position])
    return out.getvalue()


CONTENT_TYPES = {"json": "application/json", "md": "text/markdown", "html": "text/html", "csv": "text/csv"}


def render(summary_format: str, lang: str, summary: CampaignSummary) -> str:
    """The summary body in a format (shared by the API and `qmstats report`)."""
    if summary_format == "json":
        return summary_model(summary).model_dump_json()
    if summary_format == "md":
        return render_markdown(summary, "zh" if lang == "zh" else "en")
    if summary_format == "html":
        return render_html(summary, "zh" if lang == "zh" else "en")
    return render_csv(summary)
