"""The projectors' pause gate: fed by every append's NOTIFY, asked by each projector before a batch.

The decision itself is pure (services/overload.py); this holds it for the process that runs the projectors,
with the clock, the log lines on pause and resume, and the report that /metrics reads. Under ``serve
--workers N`` the projectors run in a process of their own and the API processes answer /metrics, so the
report can live in shared memory made before the fork (like the rate limiter's buckets).
"""

import ctypes
import time
from collections.abc import Callable
from multiprocessing.sharedctypes import RawArray
from typing import Any

import structlog

from services.overload import AppendRate, Decision, StepAside

log = structlog.get_logger("qmstats.projector")

CHECK_SECONDS = 0.02
"""How often a paused projector asks again: part of how soon it resumes after a burst."""


class PauseReport:
    """The last decision, for /metrics: paused (0/1), the append rate it was decided on, the threshold, and how
    many times the projectors stepped aside so far."""

    def __init__(self, values: Any = None) -> None:
        self._values: Any = values if values is not None else [0.0] * 4

    @classmethod
    def shared(cls) -> "PauseReport":
        """A report in shared memory: written by the projector process, read by the API processes forked with it."""
        return cls(RawArray(ctypes.c_double, 4))

    def record(self, decision: Decision, threshold: float) -> None:
        """Remember ``decision`` (taken against ``threshold``)."""
        if decision.paused and not self.paused:
            self._values[3] += 1.0
        self._values[0] = 1.0 if decision.paused else 0.0
        self._values[1] = decision.rate
        self._values[2] = threshold

    @property
    def paused(self) -> bool:
        """Whether the projectors stepped aside at the last decision."""
        return bool(self._values[0])

    @property
    def rate(self) -> float:
        """The append rate (events/s over the last second) at the last decision."""
        return float(self._values[1])

    @property
    def threshold(self) -> float:
        """The configured pause threshold, events/s (0: never pause)."""
        return float(self._values[2])

    @property
    def pauses(self) -> int:
        """How many times the projectors stepped aside since they started."""
        return int(self._values[3])


class PauseGate:
    """One per process that runs the projectors; ``threshold`` events/s (0: never pause)."""

    def __init__(self, threshold: float, *, report: PauseReport | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._rate = AppendRate()
        self._step = StepAside(threshold)
        self._clock = clock
        self.report = report if report is not None else PauseReport()
        self.report.record(Decision(False, "following", 0.0, 0.0), threshold)
        self._since = 0.0

    def heard(self, payload: object) -> None:
        """A NOTIFY on the events channel: its payload is the log's head after a commit (others are ignored)."""
        if isinstance(payload, str) and payload.isdigit():
            self._rate.saw(int(payload), self._clock())

    def paused(self) -> bool:
        """Whether the projectors step aside now; says so in the log when that changes."""
        now = self._clock()
        was = self.report.paused
        decision = self._step.decide(self._rate, now)
        self.report.record(decision, self._step.threshold)
        if decision.paused and not was:
            self._since = now
            log.info("projectors step aside: appends arrive faster than they can follow",
                     events_per_second=round(decision.rate), threshold=self._step.threshold)
        elif was and not decision.paused:
            log.info("projectors resume", reason=decision.reason, paused_seconds=round(now - self._since, 3),
                     events_per_second=round(decision.recent_rate))
        return decision.paused
