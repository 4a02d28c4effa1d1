"""The summary in each format: JSON (the contract), Markdown, HTML (summary_html), CSV (summary_csv)."""

from decimal import Decimal
from typing import Final

from events.catalogue import METRICS, label_in
from projections.number_format import display
from projections.summary import CampaignSummary
from schemas.api import CategoryPassRateOut, Coverage, Summary, SummaryFigureOut, SummaryPassRateOut
from services.summary_csv import render_csv
from services.summary_html import render_html
from services.summary_words import Lang, metric_label, note, province_codes, province_name, text_in, title, unit_in


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
                   for code in province_codes(s)},
        text_zh=s.text_zh, text_en=s.text_en, note_zh=s.note_zh, note_en=s.note_en)


def render_markdown(s: CampaignSummary, lang: Lang) -> str:
    """Markdown: title, the status note, the text, the metric table and the per-province table."""
    zh = lang == "zh"
    lines = [f"# {title(s, lang)}", "", f"> {note(s, lang)}", "", text_in(s, lang), ""]
    lines += ["| " + " | ".join(["指标", "精确值", "单位", "概数"] if zh else ["metric", "exact", "unit", "phrase"])
              + " |", "|---|---:|---|---|"]
    for m, f in s.figures.items():
        lines.append(f"| {metric_label(m, lang)} | {f.exact} | {unit_in(METRICS[m].unit, lang)} | {f.phrase.text} |")
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
    heads = " | ".join(metric_label(m, lang) for m in metrics)
    lines.append("| " + ("地区" if zh else "region") + " | " + heads + " |")
    lines.append("|---|" + "---:|" * len(metrics))
    for code in province_codes(s):
        totals = s.provinces.get(code, {})
        lines.append(f"| {province_name(code, lang)} ({code}) | "
                     + " | ".join(str(display(m, totals.get(m, Decimal(0)))) for m in metrics) + " |")
    return "\n".join(lines) + "\n"


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
