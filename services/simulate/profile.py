"""What a realistic National Quality Month looks like: how often each kind of report comes, how large it is.

The monthly totals are the national magnitudes of research/domain.md §4 (the year-end quote
"上千 dens, 3.5亿元 seized, 约10万人次, 13000余台次, 200多万 participants, 近300万 copies" and the
2017 national spot check: 20192 batches from 19124 enterprises, pass rate 91.5%). A month of
``DEFAULT_EVENTS`` events lands near them; the size of one event is fixed, so the totals grow
linearly with the number of events.
"""

from dataclasses import dataclass
from typing import Final

DEFAULT_EVENTS: Final = 20_000


@dataclass(frozen=True, slots=True)
class TypeProfile:
    """One fact type: its share of the month's fact events and the national monthly total of each field."""

    name: str
    share: float
    monthly: dict[str, int]


FACT_PROFILES: Final = (
    TypeProfile("raid_conducted", 0.24, {"dens_busted": 1_300, "personnel": 100_000, "vehicles": 13_000,
                                         "cases": 2_600, "seized_value_yuan": 350_000_000}),
    TypeProfile("goods_destroyed", 0.05, {"destroyed_value_yuan": 190_000_000}),
    TypeProfile("inspection_completed", 0.22, {"batches_sampled": 20_200, "enterprises": 19_100}),
    TypeProfile("publicity_held", 0.15, {"participants": 2_100_000, "quality_workers": 60_000, "booths": 15_000,
                                         "consultations": 120_000}),
    TypeProfile("materials_distributed", 0.12, {"copies": 2_900_000}),
    TypeProfile("media_reported", 0.11, {"reports": 25_000}),
    TypeProfile("lab_open_day_held", 0.05, {"labs": 1_800, "visitors": 150_000}),
    TypeProfile("pledge_signed", 0.04, {"enterprises": 5_000}),
    TypeProfile("brand_awarded", 0.02, {"enterprises": 300, "products": 800}),
)

# Product categories with their weight among reports and their spot-check pass rate; the weighted
# mean pass rate is 0.915, the 2017 national figure.
CATEGORIES: Final[dict[str, tuple[float, float]]] = {
    "mooncake": (0.14, 0.945),
    "liquor": (0.10, 0.92),
    "fertilizer": (0.10, 0.865),
    "building_materials": (0.12, 0.89),
    "auto_parts": (0.10, 0.93),
    "toys": (0.10, 0.90),
    "cosmetics": (0.10, 0.95),
    "electrical_appliances": (0.14, 0.905),
    "infant_formula": (0.05, 0.985),
    "textiles": (0.05, 0.87),
}

MEDIA_CHANNELS: Final[dict[str, float]] = {
    "television": 0.2, "newspaper": 0.2, "radio": 0.1, "online": 0.3, "wechat": 0.2,
}

# Rough population (millions) of the 31 reporting provinces: larger provinces report more.
PROVINCE_WEIGHTS: Final[dict[str, float]] = {
    "110000": 22, "120000": 16, "130000": 75, "140000": 37, "150000": 25, "210000": 44, "220000": 27,
    "230000": 38, "310000": 24, "320000": 80, "330000": 56, "340000": 62, "350000": 39, "360000": 46,
    "370000": 100, "410000": 95, "420000": 59, "430000": 68, "440000": 110, "450000": 49, "460000": 9,
    "500000": 31, "510000": 83, "520000": 36, "530000": 48, "540000": 3.5, "610000": 38, "620000": 26,
    "630000": 6, "640000": 7, "650000": 24,
}

# Shares of the submissions that are not plain facts (of the --events budget).
CORRECTED_SHARE: Final = 0.02
RETRACTED_SHARE: Final = 0.005
RESENT_SHARE: Final = 0.01
INVALID_SHARE: Final = 0.001
