"""The catalogue (v1): every event type, the payload model per version, and the metrics it feeds.

Projections are driven by these declarations alone, so adding a type here needs no projection code.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final, Literal

from events.payloads import (
    BrandAwarded,
    CampaignClosed,
    CampaignOpened,
    CampaignReopened,
    EventCorrected,
    EventRetracted,
    FlagReviewed,
    GoodsDestroyed,
    InspectionCompleted,
    LabOpenDayHeld,
    MaterialsDistributed,
    MediaReported,
    Payload,
    PledgeSigned,
    PublicityHeld,
    RaidConducted,
)
from events.rules import FlagRule, InEventRule

Kind = Literal["fact", "correction", "retraction", "lifecycle", "review"]
MetricKind = Literal["count", "money"]


@dataclass(frozen=True, slots=True)
class Metric:
    """One figure a fact type feeds: ``field`` of its payload summed into metric ``name``."""

    name: str
    field: str
    unit: str
    label_zh: str
    label_en: str
    kind: MetricKind = "count"


@dataclass(frozen=True, slots=True)
class Ratio:
    """A ratio reported as Σnumerator ÷ Σdenominator (never an average of ratios)."""

    name: str
    numerator: str
    denominator: str
    label_zh: str
    label_en: str
    by: str | None = None


@dataclass(frozen=True, slots=True)
class EventType:
    """A type in the catalogue: who may send it, its payload model per schema version, its metrics."""

    name: str
    kind: Kind
    label_zh: str
    label_en: str
    versions: dict[int, type[Payload]]
    metrics: tuple[Metric, ...] = ()
    ratios: tuple[Ratio, ...] = ()
    category_field: str | None = None
    admin_only: bool = False
    rules: tuple[InEventRule, ...] = ()
    """Certain impossibilities within one event: refused at ingest (422) with the rule's code."""
    latest_version: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "latest_version", max(self.versions))


def _passed_within_sampled(data: Mapping[str, Any]) -> bool:
    # A named function, not a lambda: drafts (which hold their EventType) are pickled to worker processes.
    return bool(data["batches_passed"] <= data["batches_sampled"])


_RAID = EventType(
    "raid_conducted", "fact", "执法打假行动", "enforcement raid", {1: RaidConducted},
    metrics=(
        Metric("dens_busted", "dens_busted", "个", "捣毁窝点", "dens busted"),
        Metric("personnel", "personnel", "人次", "出动执法人员", "enforcement personnel deployed"),
        Metric("vehicles", "vehicles", "台次", "出动执法车辆", "enforcement vehicles deployed"),
        Metric("cases", "cases", "起", "立案查处", "cases filed"),
        Metric("seized_value_yuan", "seized_value_yuan", "元", "查获货值", "value of goods seized", "money"),
    ),
    category_field="category",
)
_DESTROYED = EventType(
    "goods_destroyed", "fact", "集中销毁", "goods destroyed", {1: GoodsDestroyed},
    metrics=(Metric("destroyed_value_yuan", "destroyed_value_yuan", "元", "销毁货值",
                    "value of goods destroyed", "money"),),
    category_field="category",
)
_INSPECTION = EventType(
    "inspection_completed", "fact", "监督抽查", "product spot check", {1: InspectionCompleted},
    metrics=(
        Metric("batches_sampled", "batches_sampled", "批次", "抽查批次", "batches sampled"),
        Metric("batches_passed", "batches_passed", "批次", "合格批次", "batches passed"),
        Metric("inspected_enterprises", "enterprises", "家次", "受检企业", "enterprises inspected"),
    ),
    ratios=(Ratio("pass_rate", "batches_passed", "batches_sampled", "合格率", "pass rate", by="category"),),
    category_field="category",
    rules=(InEventRule("passed_exceeds_sampled", "batches_passed", _passed_within_sampled,
                       "合格批次不能多于抽查批次", "batches_passed cannot exceed batches_sampled"),),
)
_PUBLICITY = EventType(
    "publicity_held", "fact", "宣传咨询活动", "publicity and consultation day", {1: PublicityHeld},
    metrics=(
        Metric("participants", "participants", "人次", "参加群众", "members of the public taking part"),
        Metric("quality_workers", "quality_workers", "人次", "质量工作者", "quality workers taking part"),
        Metric("booths", "booths", "个", "摊位", "booths set up"),
        Metric("consultations", "consultations", "件", "咨询投诉", "consultations and complaints"),
    ),
)
_MATERIALS = EventType(
    "materials_distributed", "fact", "发放宣传材料", "publicity materials distributed",
    {1: MaterialsDistributed},
    metrics=(Metric("materials_copies", "copies", "份", "宣传材料", "copies of publicity materials"),),
)
_MEDIA = EventType(
    "media_reported", "fact", "新闻报道", "media coverage", {1: MediaReported},
    metrics=(Metric("media_reports", "reports", "篇次", "新闻报道", "news reports"),),
    category_field="channel",
)
_LAB = EventType(
    "lab_open_day_held", "fact", "实验室开放日", "laboratory open day", {1: LabOpenDayHeld},
    metrics=(
        Metric("labs_opened", "labs", "个", "开放实验室", "laboratories opened"),
        Metric("lab_visitors", "visitors", "人次", "接待群众", "visitors received"),
    ),
)
_PLEDGE = EventType(
    "pledge_signed", "fact", "质量诚信承诺", "quality pledge", {1: PledgeSigned},
    metrics=(Metric("pledged_enterprises", "enterprises", "家", "质量诚信承诺企业",
                    "enterprises signing quality pledges"),),
)
_BRAND = EventType(
    "brand_awarded", "fact", "名牌表彰", "brand award", {1: BrandAwarded},
    metrics=(
        Metric("awarded_enterprises", "enterprises", "家", "获奖企业", "enterprises awarded"),
        Metric("awarded_products", "products", "个", "名牌产品", "brand products awarded"),
    ),
)

CATALOGUE: Final[dict[str, EventType]] = {
    t.name: t
    for t in (
        _RAID, _DESTROYED, _INSPECTION, _PUBLICITY, _MATERIALS, _MEDIA, _LAB, _PLEDGE, _BRAND,
        EventType("event_corrected", "correction", "更正", "correction", {1: EventCorrected}),
        EventType("event_retracted", "retraction", "撤回", "retraction", {1: EventRetracted}),
        EventType("campaign_opened", "lifecycle", "活动开启", "campaign opened", {1: CampaignOpened},
                  admin_only=True),
        EventType("campaign_closed", "lifecycle", "活动结束", "campaign closed", {1: CampaignClosed},
                  admin_only=True),
        EventType("campaign_reopened", "lifecycle", "活动重新开启", "campaign reopened",
                  {1: CampaignReopened}, admin_only=True),
        # A reviewer's verdict on a data-quality flag: in the log for the audit trail, never in a figure.
        EventType("flag_reviewed", "review", "数据质量核实", "data-quality flag reviewed", {1: FlagReviewed}),
    )
}

METRICS: Final[dict[str, Metric]] = {m.name: m for t in CATALOGUE.values() for m in t.metrics}
RATIOS: Final[dict[str, Ratio]] = {r.name: r for t in CATALOGUE.values() for r in t.ratios}



@dataclass(frozen=True, slots=True)
class StandardLabel:
    """A standard value of a free-text label field (product category, media channel), with zh/en labels."""

    code: str
    label_zh: str
    label_en: str


# The categories the national spot checks and raids report most (SAMR's product classes, simplified).
# Free text is still accepted; a standard code is shown as its label in the reader's language.
PRODUCT_CATEGORIES: Final[tuple[StandardLabel, ...]] = (
    StandardLabel("mooncake", "月饼", "mooncakes"),
    StandardLabel("liquor", "白酒", "liquor"),
    StandardLabel("food", "食品", "food"),
    StandardLabel("infant_formula", "婴幼儿配方乳粉", "infant formula"),
    StandardLabel("fertilizer", "化肥", "fertilizer"),
    StandardLabel("agricultural_inputs", "农资（种子、农药）", "seeds and pesticides"),
    StandardLabel("building_materials", "建筑材料", "building materials"),
    StandardLabel("wires_cables", "电线电缆", "wires and cables"),
    StandardLabel("auto_parts", "汽车配件", "auto parts"),
    StandardLabel("electrical_appliances", "家用电器", "household appliances"),
    StandardLabel("toys", "儿童玩具", "toys"),
    StandardLabel("children_products", "儿童用品", "children's products"),
    StandardLabel("cosmetics", "化妆品", "cosmetics"),
    StandardLabel("textiles", "纺织服装", "textiles and clothing"),
    StandardLabel("footwear", "鞋类", "footwear"),
    StandardLabel("fire_safety", "消防产品", "fire safety products"),
    StandardLabel("daily_goods", "日用消费品", "everyday consumer goods"),
    StandardLabel("other", "其他", "other"),
)
MEDIA_CHANNELS: Final[tuple[StandardLabel, ...]] = (
    StandardLabel("television", "电视", "television"),
    StandardLabel("newspaper", "报纸", "newspapers"),
    StandardLabel("radio", "广播", "radio"),
    StandardLabel("online", "网络", "online"),
    StandardLabel("wechat", "微信", "WeChat"),
    StandardLabel("weibo", "微博", "Weibo"),
    StandardLabel("short_video", "短视频", "short video"),
)
_STANDARD_LABELS: Final = {key: s for s in (*PRODUCT_CATEGORIES, *MEDIA_CHANNELS)
                           for key in (s.code, s.label_zh, s.label_en)}


def label_in(value: str, lang: Literal["zh", "en"]) -> str:
    """How a category or channel reads in ``lang``: a standard code (or label) as its label, free text as sent."""
    standard = _STANDARD_LABELS.get(value)
    if standard is None:
        return value
    return standard.label_zh if lang == "zh" else standard.label_en


def _check_unique_metric_names() -> None:
    names = [m.name for t in CATALOGUE.values() for m in t.metrics]
    duplicated = {n for n in names if names.count(n) > 1}
    if duplicated:
        raise RuntimeError(f"metric names must be unique across the catalogue: {sorted(duplicated)}")


_check_unique_metric_names()


# Tier 2: plausibility flags (issue 15). They never block an event and never change a figure; the flags
# projection (projections/quality.py) applies them with these thresholds. README "Data quality" says why.
FLAG_RULES: Final[dict[str, FlagRule]] = {r.code: r for r in (
    FlagRule("unit_scale", "error",
             "{region}{metric}为{observed},约为基准{expected}的{fold},疑似单位错误(元/万元或千位)",
             "{region} {metric} is {observed}, about {fold} times the baseline {expected}: "
             "a unit slip (yuan/10,000 yuan or a factor of 1,000)?",
             {"band_log10": Decimal("0.5"), "min_history": 8, "min_peers": 2, "history_window": 40,
              "peer_window": 48}, name_zh="疑似单位错误", name_en="possible unit slip"),
    FlagRule("outlier", "warning",
             "{region}{metric}为{observed},远离基准{expected}(稳健z分数{z})",
             "{region} {metric} is {observed}, far from the baseline {expected} (robust z {z})",
             {"z": Decimal("3.5"), "min_fold": Decimal("10"), "min_fold_peers": Decimal("100"),
              "mad_floor": Decimal("0.1"),
              "min_volume_count": 100, "min_volume_money": 10000}, name_zh="异常值", name_en="outlier"),
    FlagRule("possible_duplicate", "error",
             "{region}的这条报告与之前的事件{expected}类型、时间和数据完全相同,疑似重复上报",
             "{region}: same type, time and data as the earlier event {expected}: reported twice?",
             {"score": Decimal("3")}, name_zh="疑似重复上报", name_en="possible duplicate"),
    FlagRule("relation", "warning",
             "{region}{metric}累计{observed},超过查获货值累计{expected}",
             "{region} {metric} totals {observed}, more than the value seized, {expected}",
             {"left": "destroyed_value_yuan", "right": "seized_value_yuan", "min_volume_money": 100000,
              "min_reports": 10, "tolerance": Decimal("1.5")}, name_zh="数据关系不符", name_en="relation"),
    FlagRule("late_report", "info",
             "{region}的报告在发生{observed}天后才上报(阈值{expected}天)",
             "{region}: reported {observed} days after it happened (threshold {expected} days)",
             name_zh="迟报", name_en="late report"),
)}
"""Tier-2 rules by code. Severity ``error`` marks the flags that block closing a campaign without force."""
