"""How a month's ``--events`` budget splits into facts, corrections, retractions, resends and invalid events."""

from dataclasses import dataclass
from typing import Final

from services.simulate.profile import CORRECTED_SHARE, INVALID_SHARE, RESENT_SHARE, RETRACTED_SHARE

INVALID_KINDS: Final = ("negative_count", "unknown_field", "outside_window", "money_precision",
                        "passed_exceeds_sampled", "unknown_type", "bad_region", "correction_of_unknown",
                        "bad_replacement", "conflicting_resend")
"""The kinds of invalid event (see ``invalid``); a month sends them in turn, so each appears once its budget allows."""


@dataclass(frozen=True, slots=True)
class Budget:
    """Exact numbers of each kind of submitted event; they add up to ``total``."""

    facts: int
    corrected_once: int
    corrected_twice: int
    corrected_then_retracted: int
    retracted: int
    resent: int
    whole_batch_resent: int
    invalid: int

    @property
    def corrections(self) -> int:
        """Correction events: one, two or one (before a retraction) per corrected fact."""
        return self.corrected_once + 2 * self.corrected_twice + self.corrected_then_retracted

    @property
    def retractions(self) -> int:
        """Retraction events."""
        return self.retracted + self.corrected_then_retracted

    @property
    def total(self) -> int:
        """Every event submitted once (network retries not counted)."""
        return (self.facts + self.corrections + self.retractions + self.resent + self.whole_batch_resent
                + self.invalid)

    @classmethod
    def of(cls, events: int, batch: int, *, mischief: bool = True, corrections: bool = True) -> "Budget":
        """Split ``events``: ~2% corrections, ~0.5% retractions, with ``mischief`` ~1% resent duplicates, one
        whole batch resent (when the month has 20 batches or more) and ~0.1% (at least one of each kind)
        invalid events."""
        n_corrections = round(events * CORRECTED_SHARE) if corrections else 0
        n_retractions = round(events * RETRACTED_SHARE) if corrections else 0
        twice = n_corrections // 10
        then_retracted = n_retractions // 5
        resent = round(events * RESENT_SHARE) if mischief else 0
        whole = batch if mischief and batch > 1 and events >= 20 * batch else 0
        invalid = 0
        if mischief and events >= 100:
            invalid = min(max(len(INVALID_KINDS), round(events * INVALID_SHARE)), events // 10)
        facts = events - n_corrections - n_retractions - resent - whole - invalid
        return cls(facts, n_corrections - 2 * twice - then_retracted, twice, then_retracted,
                   n_retractions - then_retracted, resent, whole, invalid)
