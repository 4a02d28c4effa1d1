"""Random payloads of a realistic size for each fact type. Pure; all randomness from the caller's ``Random``.

A value is drawn from a log-normal around the field's mean per event and rounded stochastically,
so the expected total is exactly mean × events while single reports vary as real ones do.
"""

import math
import random
from bisect import bisect
from collections.abc import Callable
from itertools import accumulate
from typing import Any, Final

from services.simulate.budget import Budget
from services.simulate.profile import CATEGORIES, DEFAULT_EVENTS, FACT_PROFILES, MEDIA_CHANNELS

Payload = dict[str, Any]
_COUNT_SIGMA: Final = 0.6
_MONEY_SIGMA: Final = 1.0
# The facts of a default month (the rest of its submissions are corrections, retractions, resends and
# invalid events), so that a default month's totals land on the profile's monthly figures.
REFERENCE_FACTS: Final = Budget.of(DEFAULT_EVENTS, 200).facts
MEANS: Final = {p.name: {f: total / (p.share * REFERENCE_FACTS) for f, total in p.monthly.items()}
                for p in FACT_PROFILES}
_CATEGORY_NAMES: Final = tuple(CATEGORIES)
_CATEGORY_CUM: Final = tuple(accumulate(w for w, _ in CATEGORIES.values()))
_CHANNEL_NAMES: Final = tuple(MEDIA_CHANNELS)
_CHANNEL_CUM: Final = tuple(accumulate(MEDIA_CHANNELS.values()))


def count(rng: random.Random, mean: float) -> int:
    """A non-negative count whose expectation is ``mean``."""
    # exp(gauss) rather than lognormvariate: gauss() makes its normals in pairs, twice as fast.
    return int(mean * math.exp(_COUNT_SIGMA * rng.gauss() - _COUNT_SIGMA ** 2 / 2) + rng.random())


def money(rng: random.Random, mean_yuan: float) -> str:
    """Yuan as an exact two-decimal string whose expectation is ``mean_yuan``."""
    fen = int(mean_yuan * 100 * math.exp(_MONEY_SIGMA * rng.gauss() - _MONEY_SIGMA ** 2 / 2) + rng.random())
    return f"{fen // 100}.{fen % 100:02d}"


def weighted(rng: random.Random, names: tuple[str, ...], cum: tuple[float, ...]) -> str:
    """One of ``names``, chosen by cumulative weights ``cum`` (a faster ``choices(k=1)``)."""
    return names[min(bisect(cum, rng.random() * cum[-1]), len(names) - 1)]


def category(rng: random.Random) -> str:
    """A product category, weighted by how often it is reported."""
    return weighted(rng, _CATEGORY_NAMES, _CATEGORY_CUM)


def passed(rng: random.Random, sampled: int, rate: float) -> int:
    """Batches that pass out of ``sampled``, each with probability ``rate`` (binomial)."""
    if sampled <= 40:
        return sum(rng.random() < rate for _ in range(sampled))
    spread = math.sqrt(sampled * rate * (1 - rate))
    return min(sampled, max(0, round(rng.gauss(sampled * rate, spread))))


def _raid(rng: random.Random, kind: str | None = None) -> Payload:
    m = MEANS["raid_conducted"]
    return {"dens_busted": count(rng, m["dens_busted"]), "personnel": count(rng, m["personnel"]),
            "vehicles": count(rng, m["vehicles"]), "cases": count(rng, m["cases"]),
            "seized_value_yuan": money(rng, m["seized_value_yuan"]), "category": kind or category(rng)}


def _destroyed(rng: random.Random, kind: str | None = None) -> Payload:
    return {"destroyed_value_yuan": money(rng, MEANS["goods_destroyed"]["destroyed_value_yuan"]),
            "category": kind or category(rng)}


def _inspection(rng: random.Random, kind: str | None = None) -> Payload:
    m = MEANS["inspection_completed"]
    kind = kind or category(rng)
    sampled = count(rng, m["batches_sampled"])
    return {"batches_sampled": sampled, "batches_passed": passed(rng, sampled, CATEGORIES[kind][1]),
            "enterprises": count(rng, m["enterprises"]), "category": kind}


def _publicity(rng: random.Random, kind: str | None = None) -> Payload:
    m = MEANS["publicity_held"]
    return {"participants": count(rng, m["participants"]), "quality_workers": count(rng, m["quality_workers"]),
            "booths": count(rng, m["booths"]), "consultations": count(rng, m["consultations"])}


def _materials(rng: random.Random, kind: str | None = None) -> Payload:
    return {"copies": count(rng, MEANS["materials_distributed"]["copies"])}


def _media(rng: random.Random, kind: str | None = None) -> Payload:
    return {"reports": count(rng, MEANS["media_reported"]["reports"]),
            "channel": kind or weighted(rng, _CHANNEL_NAMES, _CHANNEL_CUM)}


def _lab(rng: random.Random, kind: str | None = None) -> Payload:
    m = MEANS["lab_open_day_held"]
    return {"labs": count(rng, m["labs"]), "visitors": count(rng, m["visitors"])}


def _pledge(rng: random.Random, kind: str | None = None) -> Payload:
    return {"enterprises": count(rng, MEANS["pledge_signed"]["enterprises"])}


def _brand(rng: random.Random, kind: str | None = None) -> Payload:
    m = MEANS["brand_awarded"]
    enterprises = count(rng, m["enterprises"])
    return {"enterprises": enterprises, "products": enterprises + count(rng, m["products"] - m["enterprises"])}


DRAW: Final[dict[str, Callable[[random.Random, str | None], Payload]]] = {
    "raid_conducted": _raid, "goods_destroyed": _destroyed, "inspection_completed": _inspection,
    "publicity_held": _publicity, "materials_distributed": _materials, "media_reported": _media,
    "lab_open_day_held": _lab, "pledge_signed": _pledge, "brand_awarded": _brand,
}
"""type → draw(rng, category or channel to keep, or None) → a valid payload of that type."""


def envelope(event_id: str, type_: str, campaign: str, region: str, occurred_at: str,
             data: dict[str, Any]) -> dict[str, Any]:
    """An event as a regional system sends it."""
    return {"event_id": event_id, "type": type_, "schema_version": 1, "campaign": campaign, "region": region,
            "occurred_at": occurred_at, "data": data}
