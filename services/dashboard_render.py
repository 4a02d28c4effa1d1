"""Rendering a dashboard from exact figures: one function for the live view, at_position and replay."""

from datetime import datetime
from decimal import Decimal

from events.catalogue import METRICS, RATIOS
from events.regions import level_of
from projections.number_format import display, ratio
from projections.phrasing import phrase_approx
from schemas.api import ChildFigures, Dashboard, MetricFigure, OwnLevel, PassRate, RegionRef

Totals = dict[str, Decimal]
Categories = dict[str, dict[str, Decimal]]


def region_ref(code: str, names: dict[str, str]) -> RegionRef:
    """A region with its name when known."""
    return RegionRef(code=code, name=names.get(code), level=level_of(code))


def metric_figures(totals: Totals) -> dict[str, MetricFigure]:
    """Every catalogue metric's total (0 when nothing was reported) with unit and labels."""
    return {name: MetricFigure(value=display(name, totals.get(name, Decimal(0))), unit=m.unit, label_zh=m.label_zh,
                               label_en=m.label_en, phrase_zh=phrase_approx(totals.get(name, Decimal(0))).text)
            for name, m in METRICS.items()}


def pass_rate(totals: Totals, categories: Categories) -> PassRate:
    """Σpassed ÷ Σsampled overall and per category."""
    spec = RATIOS["pass_rate"]
    passed = totals.get(spec.numerator, Decimal(0))
    sampled = totals.get(spec.denominator, Decimal(0))
    by_num = categories.get(spec.numerator, {})
    by_den = categories.get(spec.denominator, {})
    return PassRate(overall=ratio(passed, sampled), passed=int(passed), sampled=int(sampled),
                    by_category={c: ratio(by_num.get(c, Decimal(0)), den) for c, den in sorted(by_den.items())})


def render_dashboard(*, campaign: str, region: str, position: int, updated_at: datetime | None, lag_events: int,
                     lag_seconds: float, totals: Totals, categories: Categories,
                     children: dict[str, Totals], expected: list[str], names: dict[str, str]) -> Dashboard:
    """The dashboard body: the region's totals, pass rates, and every child (expected or reporting)."""
    codes = sorted(set(children) | set(expected))
    own = {m: totals.get(m, Decimal(0)) - sum((row.get(m, Decimal(0)) for row in children.values()), Decimal(0))
           for m in METRICS}
    return Dashboard(
        campaign=campaign, region=region_ref(region, names), position=position,
        updated_at=updated_at.isoformat() if updated_at else None, lag_events=lag_events,
        lag_seconds=round(lag_seconds, 3), metrics=metric_figures(totals), pass_rate=pass_rate(totals, categories),
        children=[ChildFigures(code=c, name=names.get(c), level=level_of(c),
                               metrics={m: display(m, children.get(c, {}).get(m, Decimal(0))) for m in METRICS})
                  for c in codes],
        own_level=OwnLevel(code=region, name=names.get(region), metrics={m: display(m, v) for m, v in own.items()}))
