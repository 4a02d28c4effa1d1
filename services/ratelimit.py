"""Per-key token buckets: a sustained rate with a burst allowance, shared by every worker process.

``serve --workers N`` runs N API processes on one port. A key's budget must hold across them (not N
times the configured rate), so the buckets can live in shared memory created before the workers fork:
a fixed table of slots, found by a 64-bit digest of the key, updated under one process-shared lock.
The critical section is a few arithmetic operations, far below a request's own cost.
"""

import ctypes
import hashlib
import math
import multiprocessing
import time
from collections.abc import Callable
from multiprocessing.sharedctypes import RawArray
from typing import Any, Protocol

_PROBES = 16
_DIGESTS_KEPT = 65536


class Buckets(Protocol):
    """Where token buckets live: ``take`` updates one bucket atomically and returns its new token count."""

    def take(self, key: str, update: Callable[[float, float], tuple[float, float]], now: float,
             full: float) -> float: ...


class LocalBuckets:
    """Buckets of one process, in a dict."""

    def __init__(self) -> None:
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, key: str, update: Callable[[float, float], tuple[float, float]], now: float,
             full: float) -> float:
        """Apply ``update(tokens, last)`` to ``key``'s bucket; a new bucket starts full at ``now``."""
        tokens, last = self._buckets.get(key, (full, now))
        self._buckets[key] = update(tokens, last)
        return self._buckets[key][0]


class _Slot(ctypes.Structure):
    _fields_ = [("key", ctypes.c_uint64), ("tokens", ctypes.c_double), ("last", ctypes.c_double)]


class SharedBuckets:
    """Buckets in shared memory, inherited by processes forked after it was made.

    A key hashes to a slot and probes the next few; a key that finds neither itself nor a free slot
    takes the probed slot used longest ago. That slot's bucket has had the most time to refill, so
    evicting it forgets at most a little of a key that has been idle; with more active keys than
    slots the limit would loosen, which is why the table is sized well above any realistic key count.
    """

    def __init__(self, slots: int = 8192) -> None:
        self._slots: Any = RawArray(_Slot, slots)
        self._lock = multiprocessing.get_context("fork").Lock()
        self._size = slots
        self._digests: dict[str, int] = {}  # per process: hashing a key costs more than the rest of a take

    @staticmethod
    def _digest(key: str) -> int:
        return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little") or 1

    def take(self, key: str, update: Callable[[float, float], tuple[float, float]], now: float,
             full: float) -> float:
        """Apply ``update(tokens, last)`` to ``key``'s bucket under the shared lock."""
        digest = self._digests.get(key)
        if digest is None:
            if len(self._digests) >= _DIGESTS_KEPT:
                self._digests.clear()
            digest = self._digests[key] = self._digest(key)
        with self._lock:
            slot = self._find(digest, now, full)
            slot.tokens, slot.last = update(slot.tokens, slot.last)
            return float(slot.tokens)

    def _find(self, digest: int, now: float, full: float) -> Any:
        oldest = None
        for probe in range(_PROBES):
            slot = self._slots[(digest + probe) % self._size]
            if slot.key == digest:
                return slot
            if slot.key == 0 or oldest is None or slot.last < oldest.last:
                oldest = slot
                if slot.key == 0:
                    break
        assert oldest is not None
        oldest.key, oldest.tokens, oldest.last = digest, full, now
        return oldest


class RateLimiter:
    """Allows ``rate`` requests per second per key, with bursts up to ``burst``."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic,
                 buckets: Buckets | None = None) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._clock = clock
        self._buckets: Buckets = buckets if buckets is not None else LocalBuckets()

    @classmethod
    def shared(cls, rate: float, burst: int) -> "RateLimiter":
        """A limiter whose buckets every process forked from this one shares (CLOCK_MONOTONIC is system-wide)."""
        return cls(rate, burst, buckets=SharedBuckets())

    def check(self, key: str) -> float:
        """Take one token for ``key``: 0.0 when allowed, else the seconds to wait before retrying."""
        now = self._clock()
        allowed = False

        def update(tokens: float, last: float) -> tuple[float, float]:
            nonlocal allowed
            tokens = min(self._burst, tokens + max(0.0, now - last) * self._rate)
            allowed = tokens >= 1.0
            return (tokens - 1.0 if allowed else tokens), now

        tokens = self._buckets.take(key, update, now, self._burst)
        return 0.0 if allowed else (1.0 - tokens) / self._rate

    @staticmethod
    def retry_after(wait: float) -> str:
        """The Retry-After header value (whole seconds, at least 1)."""
        return str(max(1, math.ceil(wait)))
