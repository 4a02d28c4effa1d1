"""Which regions report in a simulated month: every expected province and a sample of its prefectures and counties.

Real codes come from an MCA list ('code name' per line, or codes the server lists); without one,
structurally valid codes are made up (``XX0100`` prefectures, ``XX0102`` counties), which a server
without an imported list for the campaign year accepts.
"""

import random
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from events.regions import EXPECTED_PROVINCES, level_of, parent_of

PREFECTURES_PER_PROVINCE: Final = 3
COUNTIES_PER_PROVINCE: Final = 6
_MUNICIPALITIES: Final = frozenset({"110000", "120000", "310000", "500000"})


@dataclass(frozen=True, slots=True)
class ProvinceSample:
    """A province and the prefecture and county codes that report under it."""

    code: str
    prefectures: tuple[str, ...]
    counties: tuple[str, ...]

    @property
    def codes(self) -> tuple[str, ...]:
        """Every reporting code of the province, the province itself first."""
        return (self.code, *self.prefectures, *self.counties)


def read_code_list(text: str) -> list[str]:
    """The codes of an MCA list file ('code name' per line); blank lines are skipped."""
    return [line.split()[0] for line in text.splitlines() if line.strip()]


def synthesized(province: str) -> ProvinceSample:
    """Made-up but structurally valid codes: three prefectures with two counties each (six districts in a
    municipality, whose counties belong to the province itself)."""
    pp = province[:2]
    if province in _MUNICIPALITIES:
        return ProvinceSample(province, (), tuple(f"{pp}01{n:02d}" for n in (1, 2, 5, 6, 12, 13)))
    prefectures = tuple(f"{pp}{n:02d}00" for n in range(1, PREFECTURES_PER_PROVINCE + 1))
    counties = tuple(f"{pp}{n:02d}{c:02d}" for n in range(1, PREFECTURES_PER_PROVINCE + 1) for c in (2, 21))
    return ProvinceSample(province, prefectures, counties)


def sampled(province: str, codes: Iterable[str], rng: random.Random) -> ProvinceSample:
    """A few prefectures of ``province`` from a real list, and counties preferably under them."""
    own = sorted({c for c in codes if c[:2] == province[:2] and c != province})
    prefectures = [c for c in own if level_of(c) == "prefecture"]
    counties = [c for c in own if level_of(c) == "county"]
    chosen = sorted(rng.sample(prefectures, min(PREFECTURES_PER_PROVINCE, len(prefectures))))
    near = [c for c in counties if parent_of(c) in chosen or parent_of(c) == province]
    pool = near if len(near) >= COUNTIES_PER_PROVINCE else counties
    return ProvinceSample(province, tuple(chosen), tuple(sorted(rng.sample(pool, min(COUNTIES_PER_PROVINCE,
                                                                                       len(pool))))))


def sample_regions(rng: random.Random, codes: Iterable[str] | None = None) -> dict[str, ProvinceSample]:
    """The reporting regions of every expected province, from ``codes`` when given, else synthesized."""
    if codes is None:
        return {p: synthesized(p) for p in sorted(EXPECTED_PROVINCES)}
    listed = sorted(set(codes))
    return {p: sampled(p, listed, rng) for p in sorted(EXPECTED_PROVINCES)}
