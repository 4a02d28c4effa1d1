"""Offline replay of an exported log: verify the file's chain and recompute every figure. No database."""

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson

from events.chain_check import ChainReport, ChainVerifier
from events.records import RecordedEvent, from_exported
from projections.fold import Deltas, Fold


@dataclass(frozen=True, slots=True)
class Replayed:
    """The result of replaying a file: its chain report, whether it is the whole log, and the folded figures."""

    chain: ChainReport
    complete: bool
    deltas: Deltas
    campaigns: list[str]
    last_position: int
    unresolved: int = 0
    """Corrections and retractions of facts the file does not hold (a --region export), left out of the figures."""


def read_export(path: Path) -> Iterator[RecordedEvent]:
    """Events of an NDJSON export, in file order."""
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                try:
                    yield from_exported(orjson.loads(line))
                except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                    raise ValueError(f"line {number} is not an exported qmstats event: {exc}") from None


def _targets(events: Iterable[RecordedEvent]) -> set[str]:
    return {t for e in events if (t := e.target) is not None}


def replay(path: Path) -> Replayed:
    """Two passes over the file: learn which facts are ever corrected, then verify and fold."""
    remember = _targets(read_export(path))
    verifier = ChainVerifier(gaps_allowed=True)
    fold = Fold(remember=remember)
    held: set[str] = set()  # facts in the file that something refers to
    unresolved = 0
    campaigns: dict[str, None] = {}
    for event in read_export(path):
        verifier.feed([event])
        target = event.target
        if target is not None and target not in held:
            # A filtered export can hold a correction without its original (moved into the region): what
            # it replaced is not in the file, so it cannot be folded; it is counted instead.
            unresolved += 1
        else:
            fold.apply(event)
            if event.event_id in remember:
                held.add(event.event_id)
        campaigns.setdefault(event.campaign)
    report = verifier.report()
    return Replayed(report, verifier.gaps == 0, fold.deltas, list(campaigns), report.last_position, unresolved)
