"""Projection lag at a steady ingest rate: from a POST's answer to the SSE message that covers its events.

Run from the repository root:

    .venv/bin/python bench/bench_lag.py [--rate 2000] [--seconds 20] [--batch 20] [--modes workers,in-process,split]

1. Starts ``qmstats serve`` (defaults: the projector runs inside serve) in a temp dir, with admin, reporter
   and viewer keys and campaign 2017 open.
2. A viewer holds ``GET /v1/stream`` (Server-Sent Events) open the whole time; each message's ``id`` is the
   projection position it announces.
3. The sender offers ``--rate`` events/s as POSTs of ``--batch`` events (pre-serialised generated facts)
   on an open-loop schedule: request *i* leaves at t0 + i·batch/rate whether or not earlier ones were
   answered (bounded by ``--max-in-flight``), so a slow server cannot slow the offered load down.
4. For every event: lag = (time the first SSE message with id ≥ its position arrived) − (time its POST was
   answered). An SSE message that arrives before the answer counts as lag 0 (noted separately).
5. Mode ``split``: the same against ``serve --no-projector`` plus a separate ``qmstats project`` process on
   the same data directory (the serve process learns the projection position by NOTIFY).

Reports p50/p99/max lag, the offered and achieved rates, POST latency, the projection's catch-up after the
last answer, and whether the service kept up: it answered ≥ 97% of the offered events/s and the projection
reached the head within 1 s of the last answer. Bounded in time; everything is stopped in ``finally``.
"""

import argparse
import asyncio
import contextlib
import heapq
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from common import (
    CAMPAIGN,
    CAMPAIGN_WINDOW,
    QMSTATS,
    CpuMeter,
    Keys,
    PySpy,
    QmstatsServer,
    Row,
    add_common_args,
    bearer,
    client_session,
    create_keys,
    header,
    loadavg,
    open_campaign,
    percentile,
    process_groups,
    rows_json,
    run_main,
    scrape,
    server_env,
    spread,
    start_server,
    verdict,
    wait_projected,
)

from services.simulate.plan import generate_events

TARGET_P99_MS = 100.0  # issue 13
KEPT_UP_SHARE = 0.97


@dataclass
class LagRun:
    mode: str
    offered_rate: float
    seconds: float = 0.0
    events: int = 0
    requests: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    first_failure: str = ""
    post_latencies: list[float] = field(default_factory=list)
    lags: list[float] = field(default_factory=list)
    lag_times: list[float] = field(default_factory=list)
    before_answer: int = 0
    unmatched: int = 0
    behind: int = 0
    catch_up: float = float("nan")
    sse_messages: int = 0
    cpu_cores: dict[str, float] = field(default_factory=dict)
    pauses: int = 0
    """Times the projectors stepped aside during the run (QMSTATS_PROJECTOR_PAUSE_RATE): 0 where they follow."""

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0

    @property
    def kept_up(self) -> bool:
        return (self.rate >= KEPT_UP_SHARE * self.offered_rate and not self.failures and self.unmatched == 0
                and self.catch_up <= 1.0)

    def halves_p99_ms(self) -> tuple[float, float]:
        """p99 lag of events answered in the first and in the second half of the run (growing = falling behind)."""
        if not self.lag_times:
            return float("nan"), float("nan")
        middle = self.lag_times[0] + (self.lag_times[-1] - self.lag_times[0]) / 2
        first = [lag for lag, t in zip(self.lags, self.lag_times, strict=True) if t < middle]
        second = [lag for lag, t in zip(self.lags, self.lag_times, strict=True) if t >= middle]
        return percentile(first, 0.99) * 1000, percentile(second, 0.99) * 1000

    def summary(self) -> dict[str, Any]:
        first, second = self.halves_p99_ms()
        return {"mode": self.mode, "offered_events_per_s": self.offered_rate, "events_per_s": round(self.rate, 1),
                "events": self.events, "requests": self.requests, "seconds": round(self.seconds, 2),
                "failures": self.failures, "first_failure": self.first_failure,
                "post_p50_ms": round(percentile(self.post_latencies, 0.5) * 1000, 2),
                "post_p99_ms": round(percentile(self.post_latencies, 0.99) * 1000, 2),
                "lag_p50_ms": round(percentile(self.lags, 0.5) * 1000, 2),
                "lag_p99_ms": round(percentile(self.lags, 0.99) * 1000, 2),
                "lag_max_ms": round(max(self.lags, default=float("nan")) * 1000, 2),
                "lag_p99_first_half_ms": round(first, 2), "lag_p99_second_half_ms": round(second, 2),
                "projected_before_answer": self.before_answer, "unmatched_events": self.unmatched,
                "requests_delayed_by_in_flight_cap": self.behind, "catch_up_s": round(self.catch_up, 3),
                "sse_messages": self.sse_messages, "cpu_cores": self.cpu_cores, "kept_up": self.kept_up,
                "projector_pauses": self.pauses}


class StreamWatcher:
    """Follows GET /v1/stream and matches each answered event to the first message covering it."""

    def __init__(self) -> None:
        self.seen = -1
        self.messages = 0
        self._pending: list[tuple[int, float]] = []
        self._run: LagRun | None = None
        self._changed = asyncio.Event()

    def measure(self, run: LagRun | None) -> None:
        self._run = run
        self._pending.clear()

    def answered(self, positions: list[int], at: float) -> None:
        run = self._run
        if run is None:
            return
        for position in positions:
            if position <= self.seen:
                run.lags.append(0.0)
                run.lag_times.append(at)
                run.before_answer += 1
            else:
                heapq.heappush(self._pending, (position, at))

    def _advanced(self, position: int, at: float) -> None:
        self.seen = max(self.seen, position)
        self.messages += 1
        run = self._run
        while self._pending and self._pending[0][0] <= position:
            _, answered = heapq.heappop(self._pending)
            if run is not None:
                run.lags.append(at - answered)
                run.lag_times.append(answered)
        self._changed.set()

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def wait_drained(self, limit: float) -> bool:
        deadline = time.perf_counter() + limit
        while self._pending and time.perf_counter() < deadline:
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), max(0.01, deadline - time.perf_counter()))
        return not self._pending

    async def follow(self, session: aiohttp.ClientSession, url: str, token: str) -> None:
        headers = {**bearer(token), "Accept": "text/event-stream"}
        async with session.get(f"{url}/v1/stream", headers=headers,
                               timeout=aiohttp.ClientTimeout(total=None, sock_read=None)) as resp:
            if resp.status != 200:
                raise RuntimeError(f"/v1/stream answered {resp.status}")
            while True:
                line = await resp.content.readline()
                if not line:
                    return
                if line.startswith(b"id:"):
                    self._advanced(int(line[3:].strip()), time.perf_counter())


def bodies(seed: int, events: int, batch: int) -> list[bytes]:
    return [orjson.dumps({"events": b}) for b in
            generate_events(CAMPAIGN, CAMPAIGN_WINDOW, seed, events, batch=batch, corrections=False)]


async def paced(session: aiohttp.ClientSession, url: str, token: str, watcher: StreamWatcher, run: LagRun,
                pool: list[bytes], batch: int, max_in_flight: int) -> None:
    """Send ``pool`` on an open-loop schedule at ``run.offered_rate`` events/s."""
    headers = {**bearer(token), "Content-Type": "application/json"}
    interval = batch / run.offered_rate
    in_flight: set[asyncio.Task[None]] = set()
    last_answer = [0.0]

    async def post(body: bytes) -> None:
        sent = time.perf_counter()
        try:
            async with session.post(f"{url}/v1/events", data=body, headers=headers) as resp:
                answer, status = await resp.read(), resp.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            answer, status = repr(exc).encode(), 0
        now = time.perf_counter()
        last_answer[0] = now
        run.post_latencies.append(now - sent)
        run.requests += 1
        if status in (200, 201):
            results = orjson.loads(answer)["results"]
            run.events += len(results)
            watcher.answered([r["position"] for r in results], now)
        else:
            run.failures[str(status)] = run.failures.get(str(status), 0) + 1
            run.first_failure = run.first_failure or f"{status} {answer[:300]!r}"

    start = time.perf_counter()
    for i, body in enumerate(pool):
        delay = start + i * interval - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        while len(in_flight) >= max_in_flight:
            run.behind += 1
            await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
        task = asyncio.create_task(post(body))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
    await asyncio.gather(*in_flight)
    run.seconds = last_answer[0] - start


async def measure(args: argparse.Namespace, mode: str, session: aiohttp.ClientSession, server: QmstatsServer,
                  keys: Keys, seconds: float, seed: int, project_pid: int | None,
                  profile: Path | None) -> LagRun:
    watcher = StreamWatcher()
    follower = asyncio.create_task(watcher.follow(session, server.url, keys.viewer))
    try:
        pool = await asyncio.to_thread(bodies, seed, int(args.rate * seconds), args.batch)
        await asyncio.sleep(0.5)  # the stream's first message
        run = LagRun(mode, args.rate)
        watcher.measure(run)
        extra = {"project": [project_pid]} if project_pid else {}
        meter = CpuMeter(lambda: process_groups(server, extra))
        meter.start()
        spy_pid = project_pid or server.pid
        pauses = await pause_count(session, server.url)
        with PySpy(spy_pid, profile, seconds) if profile else contextlib.nullcontext():
            await paced(session, server.url, keys.reporter, watcher, run, pool, args.batch, args.max_in_flight)
        run.cpu_cores = meter.stop()
        run.pauses = await pause_count(session, server.url) - pauses
        drained_at = time.perf_counter()
        await watcher.wait_drained(30.0)
        run.catch_up = time.perf_counter() - drained_at
        run.unmatched = watcher.pending
        run.sse_messages = watcher.messages
        watcher.measure(None)
        return run
    finally:
        follower.cancel()
        with contextlib.suppress(asyncio.CancelledError, aiohttp.ClientError):
            await follower


async def pause_count(session: aiohttp.ClientSession, url: str) -> int:
    """How many times serve's projectors stepped aside so far (every API process exports the same count; a
    serve without the projector, or `qmstats project` beside it, exports none: 0)."""
    name = "qmstats_projectors_pause_count"
    return int((await scrape(session, url, [name])).get(name, 0))


def describe(run: LagRun, label: str) -> str:
    s = run.summary()
    return (f"{label:<24} offered {run.offered_rate:,.0f}/s, answered {run.rate:,.0f} events/s in {run.seconds:.1f} s "
            f"({run.requests:,} POSTs of {run.events // max(run.requests, 1)}); lag p50 {s['lag_p50_ms']:.1f} ms, "
            f"p99 {s['lag_p99_ms']:.1f} ms, max {s['lag_max_ms']:.1f} ms (p99 1st half "
            f"{s['lag_p99_first_half_ms']:.1f}, 2nd half {s['lag_p99_second_half_ms']:.1f}); POST p50 "
            f"{s['post_p50_ms']:.1f} ms, p99 {s['post_p99_ms']:.1f} ms\n"
            f"{'':<24} projected before the answer: {run.before_answer:,}; catch-up after the last answer "
            f"{run.catch_up:.2f} s; unmatched {run.unmatched}; failures {run.failures or 0}; "
            f"delayed by in-flight cap {run.behind}; projectors stepped aside {run.pauses} times; "
            f"kept up: {run.kept_up}\n"
            f"{'':<24} CPU cores: " + ", ".join(f"{k} {v:.2f}" for k, v in run.cpu_cores.items()))


class Projector:
    """``qmstats project`` on the server's data directory, as a subprocess."""

    def __init__(self, server: QmstatsServer) -> None:
        self.log = server.data_dir / "project.log"
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen([str(QMSTATS), "project", "--data-dir", str(server.data_dir)], stdout=out,
                                         stderr=subprocess.STDOUT, env=server_env(), start_new_session=True)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


async def benchmark(args: argparse.Namespace, servers: list[QmstatsServer], data_dir: Path) \
        -> tuple[int, dict[str, Any]]:
    runs: list[LagRun] = []
    facts: dict[str, Any] = {}
    seeds = iter(range(300, 10_000))
    keys: Keys | None = None
    async with client_session(args.max_in_flight + 8, timeout=60) as session:
        for n in range(1, args.rounds + 1):
            for mode in args.modes:
                serve_args = {"split": ["--no-projector", "--workers", "1"], "in-process": ["--workers", "1"]}.get(
                    mode, [])
                server = await start_server(servers, data_dir, session, serve_args=serve_args)
                projector = Projector(server) if mode == "split" else None
                try:
                    if keys is None:
                        keys = await create_keys(server, ("admin", "reporter", "viewer"))
                        await open_campaign(session, server.url, keys.admin)
                        admin = await server.connect_superuser()
                        facts = await header("qmstats projection-lag benchmark", admin)
                        await admin.close()
                        print(f"load:       {args.rate:,.0f} events/s offered as POSTs of {args.batch} events "
                              f"({args.rate / args.batch:,.0f} requests/s, open loop), {args.seconds:g} s per run "
                              f"after {args.warmup:g} s of warm-up; lag measured to GET /v1/stream (SSE); modes "
                              f"{', '.join(args.modes)}\n", flush=True)
                    head = int(await wait_head(server))
                    await wait_projected(session, server.url, head, limit=60)
                    pid = projector.proc.pid if projector else None
                    if args.warmup > 0:
                        warm = await measure(args, mode, session, server, keys, args.warmup, next(seeds), pid, None)
                        print(describe(warm, f"warm-up {mode}"), flush=True)
                    profile = Path(args.profile_dir) / f"lag_{mode}_round{n}.txt" if args.profile_dir else None
                    runs.append(await measure(args, mode, session, server, keys, args.seconds, next(seeds), pid,
                                              profile))
                    print(describe(runs[-1], f"round {n} {mode}"), flush=True)
                finally:
                    if projector is not None:
                        projector.stop()
                    server.stop()
                    servers.remove(server)

    summary: list[Row] = []
    for mode in args.modes:
        mine = [r for r in runs if r.mode == mode]
        p50 = [percentile(r.lags, 0.5) * 1000 for r in mine]
        p99 = [percentile(r.lags, 0.99) * 1000 for r in mine]
        rate = [r.rate for r in mine]
        label = {"in-process": "serve --workers 1 (in-process projector)",
                 "split": "serve --workers 1 --no-projector + qmstats project"}.get(
            mode, "serve (API workers + projector process)")
        worst = max(p99)
        summary.append(Row(
            f"projection lag at {args.rate:,.0f} events/s offered ({args.batch}-event POSTs), {label}: "
            "p50 / p99, ms", f"{spread(p50, '{:,.0f}')} / {spread(p99, '{:,.0f}')}",
            f"answered {spread(rate)} events/s; kept up: {', '.join(str(r.kept_up) for r in mine)}", "–",
            f"p99 < {TARGET_P99_MS:.0f} ms", verdict(worst < TARGET_P99_MS and all(r.kept_up for r in mine)),
            {"p50_ms": p50, "p99_ms": p99, "events_per_s": rate, "kept_up": [r.kept_up for r in mine]}))
    table = "\n".join(["| figure | ours | context | ratio | target | verdict |", "|---|---|---|---|---|---|",
                       *("| " + " | ".join(row.cells()) + " |" for row in summary)])
    print(f"\n## {args.rounds} round(s)\n\n{table}")
    facts["loadavg_at_end"] = loadavg()
    failed = sum(sum(r.failures.values()) for r in runs)
    report = {"benchmark": "lag", "machine": facts, "args": vars(args), "rows": rows_json(summary),
              "table_md": table, "runs": [r.summary() for r in runs]}
    return (0 if failed == 0 else 1), report


async def wait_head(server: QmstatsServer) -> int:
    admin = await server.connect_superuser()
    try:
        return int(await admin.fetchval("SELECT coalesce(max(position), 0) FROM events"))
    finally:
        await admin.close()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rate", type=float, default=2000.0, help="events/s offered")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=3.0, help="unmeasured seconds before each run")
    parser.add_argument("--batch", type=int, default=20, help="events per POST")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--modes", default="workers,in-process",
                        help="workers (serve's default), in-process and/or split, comma-separated")
    parser.add_argument("--max-in-flight", type=int, default=256, help="cap on unanswered POSTs")
    add_common_args(parser)
    args = parser.parse_args(argv)
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not set(args.modes) <= {"workers", "in-process", "split"} or not args.modes:
        parser.error("--modes takes workers, in-process and/or split")
    if not 0 < args.seconds <= 300 or args.rate <= 0 or not 1 <= args.batch <= 1000:
        parser.error("need 0 < --seconds <= 300, --rate > 0, 1 <= --batch <= 1000")
    return args


def main() -> int:
    args = parse_args()
    return run_main(lambda servers, data_dir: benchmark(args, servers, data_dir), json_path=args.json)


if __name__ == "__main__":
    sys.exit(main())
