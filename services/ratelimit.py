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
    """Where token buckets live: ``take`` updates one bucket atomically."""

    def take(self, key: str, now: float, rate: float, burst: float) -> float:
        """Refill ``key``'s bucket (``rate`` tokens a second, at most ``burst``; a new one starts full), then
        take a token if it holds one: 0.0 when one was taken, else the seconds until one is there."""
        ...


def _refilled(tokens: float, last: float, now: float, rate: float, burst: float) -> float:
    return min(burst, tokens + max(0.0, now - last) * rate)


class LocalBuckets:
    """Buckets of one process, in a dict."""

    def __init__(self) -> None:
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, key: str, now: float, rate: float, burst: float) -> float:
        """As ``Buckets.take``."""
        tokens, last = self._buckets.get(key, (burst, now))
        tokens = _refilled(tokens, last, now, rate, burst)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            return 0.0
        self._buckets[key] = (tokens, now)
        return (1.0 - tokens) / rate


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
        # Per process, a key's digest and the slot it was last found in: hashing a key, and probing for it,
        # cost more than the rest of a take. The slot is checked under the lock (another key may have taken it).
        self._places: dict[str, tuple[int, Any]] = {}

    @staticmethod
    def _digest(key: str) -> int:
        return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little") or 1

    def take(self, key: str, now: float, rate: float, burst: float) -> float:
        """As ``Buckets.take``, under the shared lock."""
        place = self._places.get(key)
        if place is None:
            if len(self._places) >= _DIGESTS_KEPT:
                self._places.clear()
            place = (self._digest(key), None)
        digest, slot = place
        with self._lock:
            if slot is None or slot.key != digest:
                slot = self._find(digest, now, burst)
                self._places[key] = (digest, slot)
            tokens = _refilled(slot.tokens, slot.last, now, rate, burst)
            slot.last = now
            if tokens >= 1.0:
                slot.tokens = tokens - 1.0
                return 0.0
            slot.tokens = tokens
        return (1.0 - tokens) / rate

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
        return self._buckets.take(key, self._clock(), self._rate, self._burst)

    @staticmethod
    def retry_after(wait: float) -> str:
        """The Retry-After header value (whole seconds, at least 1)."""
        return str(max(1, math.ceil(wait)))
