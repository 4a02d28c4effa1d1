"""When to let ingest have the machine: the pause decision of the dashboard and flags projectors (pure).

Above a few thousand events a second the projectors cannot follow the log anyway (BENCHMARKS.md), yet
they keep taking most of a core from the API workers while they fall further behind. So while appends
arrive faster than a threshold they step aside, and when the burst ends they catch up in their large
batches. The rate is what the projector process already hears: every commit's NOTIFY names the log's
head, and the head's growth over time is the append rate. Nothing here reads a clock: callers pass it.

Two windows, so that a stall of the load (a GC pause, a slow fsync) that makes a short window spike
does not pause a projector that keeps up, and so that the end of a burst is noticed within ~150 ms:

- pause when the rate over the last ``WINDOW_SECONDS`` **and** over the last ``RECENT_SECONDS`` both
  reach the threshold;
- resume when the rate over the last ``RECENT_SECONDS`` falls below ``RESUME_FRACTION`` of it, or when
  no append was heard for ``QUIET_SECONDS``. With no appends the rate decays with the clock alone, so a
  pause never outlives an idle log (lost notifications included: silence reads as idle).
"""

import bisect
from collections import deque
from dataclasses import dataclass
from typing import Literal

WINDOW_SECONDS = 1.0
RECENT_SECONDS = 0.15
QUIET_SECONDS = 0.1
RESUME_FRACTION = 0.8
"""Resume below 0.8× the threshold: between the two the projectors could not follow either, and the band
keeps a load that hovers at the threshold from flipping them every few milliseconds."""

Reason = Literal["never", "following", "overload", "burst ended", "log quiet"]


@dataclass(frozen=True, slots=True)
class Decision:
    """Whether the projectors step aside now, why, and the rates it was decided on (events/s)."""

    paused: bool
    reason: Reason
    rate: float
    recent_rate: float


class AppendRate:
    """The log's append rate from the heads it was seen to reach, over windows of up to ``keep`` seconds."""

    def __init__(self, keep: float = WINDOW_SECONDS) -> None:
        self._keep = keep
        self._times: deque[float] = deque()
        self._heads: deque[int] = deque()

    def saw(self, head: int, now: float) -> None:
        """The log reached ``head`` at ``now`` (a head not beyond the last one seen adds nothing)."""
        if self._heads and head <= self._heads[-1]:
            return
        self._times.append(now)
        self._heads.append(head)
        # Keep one sample at or before the longest window's start: the baseline its rate is measured from.
        while len(self._times) > 1 and self._times[1] <= now - self._keep:
            self._times.popleft()
            self._heads.popleft()

    def per_second(self, seconds: float, now: float) -> float:
        """Events appended during the last ``seconds`` before ``now``, per second.

        Before the first sample of the window the head is unknown, so the earliest one seen stands in for
        it: a process that just started hears no rate until it has heard two heads."""
        if not self._heads:
            return 0.0
        start = now - seconds
        i = bisect.bisect_right(self._times, start) - 1
        baseline = self._heads[max(i, 0)]
        return (self._heads[-1] - baseline) / seconds

    def last_heard(self) -> float | None:
        """When the latest head was seen (None before any)."""
        return self._times[-1] if self._times else None


class StepAside:
    """The pause decision with its hysteresis: ``decide`` at each moment, from the rates at that moment."""

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self.paused = False

    def decide(self, rate: AppendRate, now: float) -> Decision:
        """Pause, stay paused or resume (see the module docstring); ``threshold`` 0 never pauses."""
        long, recent = rate.per_second(WINDOW_SECONDS, now), rate.per_second(RECENT_SECONDS, now)
        if self.threshold <= 0:
            return Decision(False, "never", long, recent)
        if not self.paused:
            self.paused = long >= self.threshold and recent >= self.threshold
            return Decision(self.paused, "overload" if self.paused else "following", long, recent)
        heard = rate.last_heard()
        if heard is None or now - heard >= QUIET_SECONDS:
            self.paused = False
            return Decision(False, "log quiet", long, recent)
        if recent < RESUME_FRACTION * self.threshold:
            self.paused = False
            return Decision(False, "burst ended", long, recent)
        return Decision(True, "overload", long, recent)
