"""Per-key token buckets, driven by a fake clock."""

import multiprocessing
import multiprocessing.queues

import pytest

from services.ratelimit import RateLimiter, SharedBuckets


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_a_burst_is_allowed_then_refused_with_a_positive_wait(clock: FakeClock) -> None:
    limiter = RateLimiter(rate=2.0, burst=5, clock=clock)
    assert [limiter.check("key-a") for _ in range(5)] == [0.0] * 5
    wait = limiter.check("key-a")
    assert wait == pytest.approx(0.5)
    assert limiter.check("key-a") > 0


def test_the_bucket_refills_as_time_passes(clock: FakeClock) -> None:
    limiter = RateLimiter(rate=2.0, burst=3, clock=clock)
    for _ in range(3):
        limiter.check("k")
    wait = limiter.check("k")
    assert wait > 0
    clock.now += wait / 2
    assert limiter.check("k") > 0
    clock.now += wait
    assert limiter.check("k") == 0.0
    assert limiter.check("k") > 0


def test_refill_never_exceeds_the_burst(clock: FakeClock) -> None:
    limiter = RateLimiter(rate=10.0, burst=4, clock=clock)
    limiter.check("k")
    clock.now += 3600
    assert [limiter.check("k") for _ in range(4)] == [0.0] * 4
    assert limiter.check("k") > 0


def test_keys_have_their_own_buckets(clock: FakeClock) -> None:
    limiter = RateLimiter(rate=1.0, burst=1, clock=clock)
    assert limiter.check("a") == 0.0
    assert limiter.check("a") > 0
    assert limiter.check("b") == 0.0


def test_a_slow_rate_asks_for_a_long_wait(clock: FakeClock) -> None:
    limiter = RateLimiter(rate=0.1, burst=1, clock=clock)
    limiter.check("k")
    wait = limiter.check("k")
    assert wait == pytest.approx(10.0)
    assert RateLimiter.retry_after(wait) == "10"


def test_a_sustained_rate_is_honoured(clock: FakeClock) -> None:
    limiter = RateLimiter(rate=4.0, burst=1, clock=clock)
    allowed = 0
    for _ in range(640):  # ten seconds in steps of 1/64 s (exact in binary floating point)
        allowed += limiter.check("k") == 0.0
        clock.now += 1 / 64
    assert allowed == 40  # the burst token at once, then one every 16 steps: 0, 16, ..., 624


@pytest.mark.parametrize(("wait", "header"), [(0.001, "1"), (0.5, "1"), (1.0, "1"), (1.01, "2"), (2.5, "3"),
                                              (0.0, "1")])
def test_retry_after_is_whole_seconds_and_at_least_one(wait: float, header: str) -> None:
    assert RateLimiter.retry_after(wait) == header


def _spend(limiter: RateLimiter, key: str, tries: int, out: "multiprocessing.queues.Queue[int]") -> None:
    out.put(sum(limiter.check(key) == 0.0 for _ in range(tries)))


def test_a_shared_limiter_gives_forked_workers_one_bucket_per_key_not_one_each() -> None:
    limiter = RateLimiter.shared(rate=0.001, burst=10)
    context = multiprocessing.get_context("fork")
    out: multiprocessing.queues.Queue[int] = context.Queue()
    workers = [context.Process(target=_spend, args=(limiter, "key-a", 10, out)) for _ in range(4)]
    for worker in workers:
        worker.start()
    allowed = [out.get(timeout=30) for _ in workers]
    for worker in workers:
        worker.join(30)
    assert sum(allowed) == 10, allowed  # one budget of 10 for the key, however the requests spread
    assert limiter.check("key-a") > 0
    assert limiter.check("key-b") == 0.0  # another key has its own bucket


def test_shared_buckets_reuse_the_longest_idle_slot_when_a_key_finds_none_free() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate=1.0, burst=2, clock=clock, buckets=SharedBuckets(slots=4))
    for n in range(20):  # more keys than slots: each takes a slot, evicting the longest idle one
        clock.now += 1
        assert limiter.check(f"key-{n}") == 0.0
    clock.now += 1
    assert [limiter.check("key-19") for _ in range(2)] == [0.0, 0.0]  # its own bucket survived, refilled
    assert limiter.check("key-19") > 0
