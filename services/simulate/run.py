"""Playing the regional systems against a running service: send the month, tally the answers, expect the figures."""

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import aiohttp

from events.decide import CHINA_STANDARD_TIME
from services.simulate.budget import Budget
from services.simulate.client import EventPoster, GaveUp, RetryPolicy
from services.simulate.ledger import Expected, Ledger
from services.simulate.plan import MonthSpec, Submission, month_budget, plan_month
from services.simulate.profile import DEFAULT_EVENTS
from services.simulate.server import Service, SimulationError, compare, require_loopback
from services.simulate.tally import Tally, settle

_SHOWN_PROBLEMS = 20


@dataclass(frozen=True, slots=True)
class SimulationOptions:
    """Everything ``qmstats simulate`` takes."""

    url: str
    token: str
    campaign: str
    seed: int = 1
    events: int = DEFAULT_EVENTS
    batch: int = 200
    concurrency: int = 8
    region_codes: tuple[str, ...] | None = None
    starts_on: date | None = None
    ends_on: date | None = None
    open_campaign: bool = False
    max_seconds: float = 300.0
    allow_remote: bool = False
    check: bool = False
    check_seconds: float = 30.0
    mischief: bool = True
    retry: RetryPolicy = field(default_factory=RetryPolicy)


@dataclass(frozen=True, slots=True)
class SimulationReport:
    """The outcome: the answers, the figures to expect, and (with ``check``) where the dashboard differs."""

    campaign: str
    seed: int
    days: tuple[date, date]
    """The first and last day reported on."""
    regions: str
    budget: Budget
    tally: Tally
    expected: Expected
    seconds: float
    complete: bool
    check: list[str] | None

    @property
    def ok(self) -> bool:
        """Everything sent was answered as planned (and, when checked, the dashboard agrees). A month cut short
        by the time limit is still ok: the expectation covers exactly what was sent."""
        return not self.tally.problems and not self.tally.failed and not self.check

    def as_json(self) -> dict[str, Any]:
        """The --expect-json document."""
        t, e = self.tally, self.expected
        return {"campaign": self.campaign, "seed": self.seed, "first_day": self.days[0].isoformat(),
                "last_day": self.days[1].isoformat(), "regions": self.regions, "events_sent": t.sent,
                "events_accepted": t.accepted, "duplicates": t.duplicates, "rejected": t.rejected,
                "retried_duplicates": t.retried_duplicates, "already_stored": t.already_stored,
                "failed": t.failed, "retries": t.retries, "last_position": t.last_position,
                "complete": self.complete, "seconds": round(self.seconds, 3), "facts_standing": e.facts,
                "national": e.national, "provinces": e.provinces, "pass_rate": e.pass_rate,
                "pass_rate_by_category": e.pass_rate_by_category, "problems": t.problems[:_SHOWN_PROBLEMS],
                "check": self.check}


class _Completion:
    """Which submissions have been answered, so a dependent one waits for its predecessors."""

    def __init__(self) -> None:
        self._below = 0
        self._done: set[int] = set()
        self._changed = asyncio.Condition()

    def _is_done(self, index: int) -> bool:
        return index < self._below or index in self._done

    async def mark(self, index: int) -> None:
        async with self._changed:
            self._done.add(index)
            while self._below in self._done:
                self._done.remove(self._below)
                self._below += 1
            self._changed.notify_all()

    async def wait(self, indices: frozenset[int]) -> None:
        if indices:
            async with self._changed:
                await self._changed.wait_for(lambda: all(self._is_done(i) for i in indices))


def last_reporting_day(now: datetime) -> date:
    """Reports can only be about the past: the day before today in China Standard Time."""
    return now.astimezone(CHINA_STANDARD_TIME).date() - timedelta(days=1)


async def simulate(options: SimulationOptions, progress: Callable[[int], None] | None = None,
                   now: datetime | None = None) -> SimulationReport:
    """Run the month against the service at ``options.url``; raises SimulationError when it cannot start."""
    require_loopback(options.url, options.allow_remote)
    started = time.monotonic()
    connector = aiohttp.TCPConnector(limit=options.concurrency + 2)
    async with aiohttp.ClientSession(connector=connector) as session:
        service = Service(session, options.url, options.token)
        window = await service.campaign_window(options.campaign, open_it=options.open_campaign,
                                               starts_on=options.starts_on, ends_on=options.ends_on)
        days = (options.starts_on or window[0],
                min(options.ends_on or window[1], last_reporting_day(now or datetime.now(CHINA_STANDARD_TIME))))
        if not window[0] <= days[0] <= days[1] <= window[1]:
            raise SimulationError(f"cannot report on {days[0]}..{days[1]}: campaign {options.campaign}'s window "
                                  f"is {window[0]}..{window[1]} and reports can only be about days already past")
        codes, regions = options.region_codes, "the given list"
        if codes is None:
            codes = await service.region_codes(window[0].year)
            regions = "the service's list" if codes else "synthesized codes"
        spec = MonthSpec(options.campaign, window[0], window[1], seed=options.seed, events=options.events,
                         batch=options.batch, region_codes=codes, mischief=options.mischief, first_day=days[0],
                         last_day=days[1])
        ledger, tally = Ledger(), Tally()
        poster = EventPoster(session, options.url, options.token, options.retry, started + options.max_seconds,
                             uuid.uuid4().hex[:8])
        complete = await _send(spec, options, poster, ledger, tally, progress, started + options.max_seconds)
        tally.retries = poster.retries
        expected = ledger.expected()
        check = None
        if options.check:
            try:
                dashboard = await service.settled_dashboard(options.campaign, tally.last_position,
                                                            options.check_seconds)
            except SimulationError as exc:
                check = [f"cannot check: {exc}"]
            else:
                check = compare(dashboard, expected)
    return SimulationReport(options.campaign, options.seed, days, regions, month_budget(spec), tally, expected,
                            time.monotonic() - started, complete, check)


async def _send(spec: MonthSpec, options: SimulationOptions, poster: EventPoster, ledger: Ledger, tally: Tally,
                progress: Callable[[int], None] | None, deadline: float) -> bool:
    queue: asyncio.Queue[Submission | None] = asyncio.Queue(maxsize=2 * options.concurrency)
    completion = _Completion()
    halted: list[str] = []
    dropped = False

    async def feed() -> None:
        nonlocal dropped
        for submission in plan_month(spec):
            if halted or time.monotonic() >= deadline:
                dropped = True
                break
            await queue.put(submission)
        for _ in range(options.concurrency):
            await queue.put(None)

    async def work() -> None:
        nonlocal dropped
        while (submission := await queue.get()) is not None:
            await completion.wait(submission.after)
            if halted or time.monotonic() >= deadline:
                dropped = True  # never sent, so never counted in the expectation either
            else:
                ledger.record(submission)
                tally.sent += len(submission.events)
                try:
                    answer = await poster.post(submission)
                except GaveUp as exc:
                    tally.failed += len(submission.events)
                    tally.problem(f"submission {submission.index}: {exc}; stored or not is unknown")
                else:
                    if (stop := settle(submission, answer, tally)) is not None:
                        halted.append(stop)
            await completion.mark(submission.index)
            if progress is not None:
                progress(len(submission.events))

    async with asyncio.TaskGroup() as group:
        group.create_task(feed())
        for _ in range(options.concurrency):
            group.create_task(work())
    if halted:
        raise SimulationError(halted[0])
    return not dropped
