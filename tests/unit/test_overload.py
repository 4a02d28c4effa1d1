"""The projectors' pause decision: a window of heads seen over a clock the tests move by hand."""

import pytest

from services.overload import (
    QUIET_SECONDS,
    RECENT_SECONDS,
    RESUME_FRACTION,
    WINDOW_SECONDS,
    AppendRate,
    StepAside,
)

THRESHOLD = 5000.0


def steady(rate: AppendRate, *, per_second: float, start: float, seconds: float, head: int = 0,
           every: float = 0.01) -> tuple[int, float]:
    """Commits every ``every`` seconds at ``per_second`` events/s; returns the head and the time reached."""
    now, steps = start, round(seconds / every)
    for _ in range(steps):
        now += every
        head += round(per_second * every)
        rate.saw(head, now)
    return head, now


def test_the_rate_is_the_heads_growth_over_the_window() -> None:
    rate = AppendRate()
    _head, now = steady(rate, per_second=3000, start=100.0, seconds=2.0)
    assert rate.per_second(WINDOW_SECONDS, now) == pytest.approx(3000)
    assert rate.per_second(RECENT_SECONDS, now) == pytest.approx(3000, rel=0.1)
    assert rate.per_second(WINDOW_SECONDS, now + 0.5) == pytest.approx(1500, rel=0.02)  # nothing since: it decays
    assert rate.per_second(WINDOW_SECONDS, now + WINDOW_SECONDS) == 0.0


def test_a_process_that_just_started_hears_no_rate_from_the_log_it_found() -> None:
    rate = AppendRate()
    rate.saw(1_000_000, 5.0)  # the head of a long log, heard once: not a million events in a second
    assert rate.per_second(WINDOW_SECONDS, 5.0) == 0.0
    rate.saw(1_000_050, 5.5)
    assert rate.per_second(WINDOW_SECONDS, 5.5) == 50.0


def test_a_head_heard_again_or_late_adds_nothing() -> None:
    rate = AppendRate()
    rate.saw(100, 1.0)
    rate.saw(200, 1.5)
    rate.saw(150, 1.6)  # two workers' notifications: the older head arrives second
    rate.saw(200, 1.7)
    assert rate.per_second(WINDOW_SECONDS, 1.7) == 100.0


def test_it_never_pauses_below_the_threshold() -> None:
    rate, step = AppendRate(), StepAside(THRESHOLD)
    now, head = 0.0, 0
    for per_second in (1000, 2000, 3000, 4000, 4900):
        for _ in range(300):
            head, now = steady(rate, per_second=per_second, start=now, seconds=0.01, head=head)
            decision = step.decide(rate, now)
            assert not decision.paused, decision
            assert decision.reason == "following"


def test_a_stall_that_bunches_appends_does_not_pause_a_load_the_projectors_follow() -> None:
    rate, step = AppendRate(), StepAside(THRESHOLD)
    head, now = steady(rate, per_second=3000, start=0.0, seconds=2.0)
    now += 0.3  # the server stalled; what queued meanwhile commits at once
    head += 900
    rate.saw(head, now)
    assert rate.per_second(RECENT_SECONDS, now) >= THRESHOLD  # the short window alone would have paused
    assert not step.decide(rate, now).paused


def test_a_burst_pauses_and_its_end_resumes() -> None:
    rate, step = AppendRate(), StepAside(THRESHOLD)
    head, now = steady(rate, per_second=1000, start=0.0, seconds=1.0)
    assert not step.decide(rate, now).paused
    head, now = steady(rate, per_second=40_000, start=now, seconds=0.3, head=head)
    decision = step.decide(rate, now)
    assert decision.paused
    assert decision.reason == "overload"
    assert decision.rate >= THRESHOLD
    head, now = steady(rate, per_second=40_000, start=now, seconds=2.0, head=head)
    assert step.decide(rate, now).paused  # a sustained burst keeps them aside
    # The burst ends but appends continue at a rate the projectors follow: resumed within the short window.
    ended = now
    while step.decide(rate, now).paused:
        head, now = steady(rate, per_second=2000, start=now, seconds=0.01, head=head)
    assert now - ended <= RECENT_SECONDS + 0.01
    assert step.decide(rate, now).reason == "following"


def test_a_quiet_log_resumes_them_without_any_new_notification() -> None:
    rate, step = AppendRate(), StepAside(THRESHOLD)
    _, now = steady(rate, per_second=60_000, start=0.0, seconds=1.0)
    assert step.decide(rate, now).paused
    assert step.decide(rate, now + QUIET_SECONDS / 2).paused
    decision = step.decide(rate, now + QUIET_SECONDS)
    assert not decision.paused
    assert decision.reason == "log quiet"


def test_between_the_resume_level_and_the_threshold_they_stay_as_they_are() -> None:
    band = (RESUME_FRACTION + 1) / 2 * THRESHOLD
    rate, step = AppendRate(), StepAside(THRESHOLD)
    head, now = steady(rate, per_second=band, start=0.0, seconds=2.0)
    assert not step.decide(rate, now).paused  # below the threshold: never paused by it
    head, now = steady(rate, per_second=20_000, start=now, seconds=1.0, head=head)
    assert step.decide(rate, now).paused
    head, now = steady(rate, per_second=band, start=now, seconds=2.0, head=head)
    assert step.decide(rate, now).paused  # still more than they could follow: no flapping
    _, now = steady(rate, per_second=RESUME_FRACTION * THRESHOLD / 2, start=now, seconds=0.5, head=head)
    assert not step.decide(rate, now).paused


def test_a_threshold_of_zero_never_pauses() -> None:
    rate, step = AppendRate(), StepAside(0)
    _, now = steady(rate, per_second=100_000, start=0.0, seconds=1.0)
    decision = step.decide(rate, now)
    assert not decision.paused
    assert decision.reason == "never"
    assert decision.rate == pytest.approx(100_000, rel=0.02)


def test_the_window_keeps_only_what_it_measures() -> None:
    rate = AppendRate()
    steady(rate, per_second=1000, start=0.0, seconds=60.0)
    assert len(rate._times) <= WINDOW_SECONDS / 0.01 + 2  # one sample before the window, as the baseline
