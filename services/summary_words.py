"""The summary's words in each language: titles, notes, metric labels, units, province names. Pure."""

from decimal import Decimal
from typing import Final, Literal

from events.catalogue import METRICS
from events.province_names import PROVINCE_NAMES_EN
from events.regions import PROVINCES
from projections.summary import CampaignSummary, percent

Lang = Literal["zh", "en"]

UNITS_EN: Final = {"元": "yuan", "个": "", "人次": "person-times", "台次": "trips", "起": "cases", "批次": "batches",
                   "家次": "inspections", "家": "enterprises", "份": "copies", "篇次": "reports", "件": "items"}


def province_codes(s: CampaignSummary) -> list[str]:
    """Every expected province and any other that has figures, by code."""
    return sorted(set(s.provinces) | set(s.expected))


def province_name(code: str, lang: Lang) -> str:
    """A province's name in ``lang``."""
    return (PROVINCES if lang == "zh" else PROVINCE_NAMES_EN).get(code, code)


def title(s: CampaignSummary, lang: Lang) -> str:
    """The document title; a provisional summary says so."""
    if lang == "zh":
        return f"{s.starts_on.year}年全国质量月活动总结" + ("" if s.final else "（临时）")
    return f"National Quality Month {s.starts_on.year}: summary" + ("" if s.final else " (provisional)")


def text_in(s: CampaignSummary, lang: Lang) -> str:
    """The publishable paragraph in ``lang``."""
    return s.text_zh if lang == "zh" else s.text_en


def note(s: CampaignSummary, lang: Lang) -> str:
    """The status and provenance note in ``lang``, with how many data-quality flags are open when loaded."""
    base = s.note_zh if lang == "zh" else s.note_en
    quality = quality_sentence(s, lang)
    return base if not quality else (base + quality if lang == "zh" else f"{base} {quality}")


def quality_sentence(s: CampaignSummary, lang: Lang) -> str:
    """How many data-quality flags are open at the summary's position (issue 15), "" when not loaded; says how far
    the flags were scored when the flags projection has not yet reached the position."""
    q = s.quality
    if q is None:
        return ""
    sentence = q.sentence_zh() if lang == "zh" else q.sentence_en()
    if q.scored_to >= s.position:
        return sentence
    if lang == "zh":
        return sentence + f"（数据质量检查已进行到日志位置{q.scored_to}）"
    return sentence + f" (flags scored up to log position {q.scored_to})"


def metric_label(metric: str, lang: Lang) -> str:
    """A metric's label in ``lang`` (capitalised in en)."""
    if lang == "zh":
        return METRICS[metric].label_zh
    label = METRICS[metric].label_en
    return label[:1].upper() + label[1:]


def unit_in(unit: str, lang: Lang) -> str:
    """A unit in ``lang`` (counts in en may have none)."""
    return unit if lang == "zh" else UNITS_EN.get(unit, unit)


def province_rate(totals: dict[str, Decimal]) -> str | None:
    """A region's pass rate as a percentage, None without samples."""
    return percent(totals.get("batches_passed", Decimal(0)), totals.get("batches_sampled", Decimal(0)))
