"""Request and response models of the HTTP API (v1). Fields may be added, never renamed."""

from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from events.fields import CAMPAIGN_ID_PATTERN
from schemas.log import CheckpointRef


class EventResult(BaseModel):
    """What happened to one posted event."""

    event_id: str
    status: Literal["created", "duplicate"]
    position: int


class AppendResponse(BaseModel):
    """Answer to POST /v1/events: 201 if anything was created, 200 if every event was a duplicate."""

    results: list[EventResult]
    last_position: int = Field(description="the highest position among the results")


class StoredEvent(BaseModel):
    """An event as the log holds it. ``hash`` = sha256(prev_hash ‖ canonical bytes); see docs/canonical-form.md."""

    position: int
    event_id: str
    type: str
    schema_version: int
    campaign: str
    region: str
    occurred_at: str
    recorded_at: str
    recorded_by: str = Field(description="id of the API key that sent it")
    request_id: str
    data: dict[str, Any]
    prev_hash: str
    hash: str


class EventsPage(BaseModel):
    """A page of the log in position order. Pass ``next_after`` as ``after`` to read on."""

    events: list[StoredEvent]
    next_after: int


class OpenCampaign(BaseModel):
    """Body of POST /v1/campaigns."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=CAMPAIGN_ID_PATTERN, examples=["2017"])
    theme: str = Field(min_length=1, max_length=500)
    starts_on: date
    ends_on: date


class CampaignChange(BaseModel):
    """Optional body of POST /v1/campaigns/{c}/close and /reopen."""

    model_config = ConfigDict(extra="forbid")

    event_id: str | None = Field(default=None, description="idempotency key for the lifecycle event")
    note: str | None = Field(default=None, max_length=500)
    force: bool = Field(default=False, description="close although unit_scale or possible_duplicate flags are "
                        "open (needs a note, kept in the log)")


class CampaignView(BaseModel):
    """A campaign and the lifecycle event that last changed it."""

    id: str
    theme: str
    starts_on: date
    ends_on: date
    status: Literal["open", "closed"]
    event: EventResult


class MetricInfo(BaseModel):
    name: str
    field: str
    unit: str
    label_zh: str
    label_en: str
    kind: Literal["count", "money"]


class RatioInfo(BaseModel):
    name: str
    numerator: str
    denominator: str
    label_zh: str
    label_en: str
    by: str | None


class EventTypeInfo(BaseModel):
    name: str
    kind: Literal["fact", "correction", "retraction", "lifecycle", "review"]
    label_zh: str
    label_en: str
    schema_versions: list[int]
    admin_only: bool
    category_field: str | None
    metrics: list[MetricInfo]
    ratios: list[RatioInfo]
    data_schema: dict[str, Any] = Field(description="JSON Schema of data for the latest version")


class StandardLabelInfo(BaseModel):
    """A standard value of a label field, with how it reads in zh and en."""

    code: str
    label_zh: str
    label_en: str


class Catalogue(BaseModel):
    """GET /v1/catalogue: every event type and the metrics it feeds."""

    types: list[EventTypeInfo]
    categories: list[StandardLabelInfo] = Field(
        default_factory=list, description="standard product categories (free text is still accepted)")
    channels: list[StandardLabelInfo] = Field(
        default_factory=list, description="standard media channels (free text is still accepted)")


class RegionInfo(BaseModel):
    code: str
    name: str | None
    level: Literal["nation", "province", "prefecture", "county"]
    parent: str | None


class RegionList(BaseModel):
    """GET /v1/regions?parent=: the children of a region."""

    parent: RegionInfo
    year: int | None = Field(description="the imported list used for names, or null for the built-in list")
    regions: list[RegionInfo]


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    ready: bool
    checks: dict[str, str]
    replicas: dict[str, str] = Field(
        default_factory=dict, description="each read replica (host:port/db) → ok, or why reads skip it; a replica "
                                          "that is skipped does not make the service unready (the primary answers)")


class RegionRef(BaseModel):
    """A region as figures refer to it."""

    code: str
    name: str | None
    level: Literal["nation", "province", "prefecture", "county"]


class MetricFigure(BaseModel):
    """One metric's total: counts are integers, money a two-decimal string."""

    value: int | str
    unit: str
    label_zh: str
    label_en: str
    phrase_zh: str = Field(description="the 概数 phrase of the exact value (SPEC §5): 上千, 近300万, 约3.5亿…")


RATIO_RULE = ("a decimal string: exact when the quotient terminates within 10 decimal places "
              "(18301/20000 → \"0.91505\"), otherwise rounded half-even to 10 decimal places "
              "(2/3 → \"0.6666666667\"); trailing zeros dropped; null when the denominator is 0")


class PassRate(BaseModel):
    """Σbatches_passed ÷ Σbatches_sampled (never an average of rates); null when nothing was sampled."""

    overall: str | None = Field(description="passed ÷ sampled, " + RATIO_RULE)
    passed: int
    sampled: int
    by_category: dict[str, str | None] = Field(description="per product category, the same rule")


class ChildFigures(BaseModel):
    """A child region's totals: metric → value."""

    code: str
    name: str | None
    level: Literal["nation", "province", "prefecture", "county"]
    metrics: dict[str, int | str]


class OwnLevel(BaseModel):
    """本级: what was reported at the region itself (with ``level``: above the rows' level), so that the
    rows of ``children`` plus this one add up to the region's totals."""

    code: str
    name: str | None
    label_zh: str = "本级"
    label_en: str = "own level"
    metrics: dict[str, int | str]


class Dashboard(BaseModel):
    """GET /v1/campaigns/{c}/dashboard."""

    campaign: str
    region: RegionRef
    position: int = Field(description="the projection position these figures reflect")
    updated_at: str | None
    lag_events: int
    lag_seconds: float
    metrics: dict[str, MetricFigure]
    pass_rate: PassRate
    children: list[ChildFigures]
    own_level: OwnLevel = Field(description="本级: reported at the region itself, not in any row of children; "
                                            "children plus own_level add up to metrics")


class SeriesPoint(BaseModel):
    date: date
    value: int | str


class Series(BaseModel):
    """GET /v1/campaigns/{c}/series: one value per day of the campaign window (China Standard Time)."""

    campaign: str
    region: RegionRef
    metric: str
    unit: str
    label_zh: str
    label_en: str
    position: int
    days: list[SeriesPoint]


class ReportingSet(BaseModel):
    """Which expected child regions reported, which did not, and reported ÷ expected."""

    reported: list[RegionRef]
    not_reported: list[RegionRef]
    rate: str | None = Field(description="reported ÷ expected, " + RATIO_RULE)


Day = date  # Completeness has a field named ``date``, which hides the type inside its class body


class Completeness(BaseModel):
    """GET /v1/campaigns/{c}/completeness."""

    campaign: str
    region: RegionRef
    date: date | None
    expected: int | None = Field(description="children in the region registry; null without a list for the year")
    registry_year: int | None
    on_date: ReportingSet | None
    to_date: ReportingSet
    latest_day: Day | None = Field(default=None, description="the latest day (CST) a child region reported on")
    position: int


class Head(BaseModel):
    """GET /v1/audit/head: pin it today, prove later the log was only appended to (verify --since-head)."""

    position: int
    hash: str


class ChainCheck(BaseModel):
    """GET /v1/audit/verify: the hash chain recomputed."""

    ok: bool
    checked: int
    first_bad_position: int | None
    campaign: str | None
    head: Head


class EventHistory(BaseModel):
    """GET /v1/events/{event_id}: the event, what later events did to it, and its effective payload."""

    event: StoredEvent
    corrections: list[StoredEvent]
    retraction: StoredEvent | None
    effective: dict[str, Any] | None = Field(
        description="for a fact: region, day, data after the corrections; null when retracted or not a fact")


class ContributionItem(BaseModel):
    event_id: str
    position: int
    type: str
    region: str
    day: date
    contribution: int | str
    corrected_by: list[str]
    effective_since: int


class Provenance(BaseModel):
    """GET /v1/campaigns/{c}/figures/{metric}/events: the events behind a figure; contributions sum to it."""

    campaign: str
    metric: str
    region: str
    position: int = Field(description="the figure and the contributions are as of this position")
    figure: int | str
    events: list[ContributionItem]
    next_after: int
    complete: bool = Field(description="true on the last page")


class SummaryFigureOut(BaseModel):
    """One metric in the summary: the exact value beside its phrase."""

    value: int | str
    unit: str
    label_zh: str
    label_en: str
    phrase_zh: str = Field(description="the 概数 phrase, e.g. 上千, 3.5亿, 近300万")
    qualifier: str | None
    interval: list[str] = Field(description="[low, high] the phrase promises the exact value lies in")
    sentence_zh: str
    sentence_en: str


class Coverage(BaseModel):
    reported: int
    expected: int
    provinces_reported: list[str]
    provinces_missing: list[str]


PERCENT_RULE = ("the ratio as a percentage, half-even to one decimal (more decimals only where one would state "
                "something false: 99.995%, never 100%)")


class CategoryPassRateOut(BaseModel):
    """The pass rate within one product category; the labels are the standard category's, else the text sent."""

    label_zh: str
    label_en: str
    ratio: str | None = Field(description="passed ÷ sampled, " + RATIO_RULE)
    percent: str | None = Field(description=PERCENT_RULE)
    passed: int
    sampled: int


class SummaryPassRateOut(BaseModel):
    ratio: str | None = Field(description="passed ÷ sampled, " + RATIO_RULE)
    percent: str | None = Field(description=PERCENT_RULE)
    passed: int
    sampled: int
    by_category: dict[str, CategoryPassRateOut] = Field(default_factory=dict)


class Summary(BaseModel):
    """GET /v1/campaigns/{c}/summary?format=json: final after close (frozen), provisional before."""

    campaign: str
    theme: str
    starts_on: date
    ends_on: date
    final: bool
    position: int = Field(description="the log position the figures reflect (the close event when final)")
    close_number: int | None = Field(description="which close this reflects: 1 for the first, 2 after a reopen…")
    reopened: bool = Field(False, description="provisional because the campaign was reopened after a close")
    coverage: Coverage
    figures: dict[str, SummaryFigureOut]
    checkpoint: CheckpointRef | None = Field(
        default=None, description="the first signed log checkpoint whose tree holds `position` (null until signed)")
    pass_rate: SummaryPassRateOut
    provinces: dict[str, dict[str, int | str]]
    text_zh: str = Field(description="the publishable paragraph; status and provenance are in note_zh")
    text_en: str
    note_zh: str = Field("", description="final or provisional, close number and log position, apart from the text")
    note_en: str = ""
    quality: "SummaryQuality | None" = None


# --- data quality (issue 15) ------------------------------------------------------------------------


class FlagReviewOut(BaseModel):
    """The verdict recorded by a flag_reviewed event."""

    verdict: Literal["confirmed", "false_alarm"]
    note: str
    reviewed_by: str = Field(description="id of the key that reviewed")
    event_id: str = Field(description="the flag_reviewed event in the log")
    position: int


class FlagOut(BaseModel):
    """A data-quality flag: what was observed, the baseline it was compared with, and how far off it is."""

    id: str
    code: Literal["unit_scale", "outlier", "possible_duplicate", "relation", "late_report"]
    severity: Literal["error", "warning", "info"]
    campaign: str
    event_id: str
    region: str
    type: str | None
    metric: str | None
    observed: str = Field(description="the value (money, a count, days late, or the event id for a duplicate)")
    expected: str = Field(description="the baseline: a median, the earlier event, the other total, a threshold")
    basis: str = Field(description="own | peers | national | earlier_event | relation | threshold")
    score: float = Field(description="rank: |log10(observed / expected)| for values (4 ≈ a 10⁴ slip)")
    message_zh: str
    message_en: str
    status: Literal["open", "reviewed", "resolved"]
    raised_at: int = Field(description="log position of the event that raised it")
    resolved_at: int | None = Field(default=None, description="position of the correction or retraction that "
                                    "settled it")
    review: FlagReviewOut | None = None


class FlagList(BaseModel):
    """GET /v1/campaigns/{c}/flags: highest score first."""

    campaign: str
    position: int = Field(description="the log position the flags projection has scored up to")
    flags: list[FlagOut]


class DryRunResult(BaseModel):
    event_id: str
    status: Literal["valid", "duplicate"]


class DryRunResponse(BaseModel):
    """POST /v1/events?dry_run=true: the same checks as a real post; nothing is stored."""

    dry_run: Literal[True] = True
    results: list[DryRunResult]
    flags: list[FlagOut] = Field(description="flags these events would raise against today's baselines")


class ReviewFlag(BaseModel):
    """Body of POST /v1/campaigns/{c}/flags/{id}/review."""

    model_config = ConfigDict(extra="forbid")

    verdict: Literal["confirmed", "false_alarm"]
    note: str = Field(min_length=1, max_length=500)
    event_id: str | None = Field(default=None, description="idempotency key for the flag_reviewed event")


class ReviewRecorded(BaseModel):
    """A review recorded in the log; the flag shows it once the flags projection reaches ``event.position``."""

    flag_id: str
    event: EventResult


class SummaryQuality(BaseModel):
    """Data-quality flags open at the summary's position."""

    open_flags: int
    by_code: dict[str, int]
    scored_to: int = Field(description="the position the flags projection had reached (≥ position: complete)")
    sentence_zh: str
    sentence_en: str


Summary.model_rebuild()
