"""Per-key token buckets, driven by a fake clock."""

import pytest

from services.ratelimit import RateLimiter


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
