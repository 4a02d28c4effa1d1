"""Flag projection beside the dashboard projector's in the same run: replay throughput, and lag under live ingest.

Run from the repository root:

    .venv/bin/python bench/bench_flags.py [--events 20000] [--rounds 3] [--rates 2000,3000] [--seconds 5]

1. Starts ``qmstats serve --no-projector`` on a temp data dir (neither projector runs in it), opens campaign
   2017 and loads ``--events`` generated events (bench/load_log.py's generator: realistic facts with
   corrections and retractions) as 1000-event POSTs.
2. **Replay**, over the Unix socket as the postgres superuser, in interleaved rounds on that one log:
   * **dashboard**: ``projections.rebuild.fill`` of a fresh shadow table set from position 0 to the head
     (the dashboard projector's own batch function, ``apply_batch``);
   * **flags**: ``reset_flags`` then ``project_flags`` from 0 to the head (the flags projector's batch).
   Reports events/s of each and the flags/dashboard ratio per round (same run, same log).
3. **Live** (skipped with ``--rates ''``): restarts ``qmstats serve`` with its defaults (API workers, and the
   projector process running both projectors and the integrator) on the same data dir, waits until every
   follower of the log is at the head, then for each rate offers it for ``--seconds`` (after ``--warmup``)
   with bench/bench_lag.py's load generator (open-loop 20-event POSTs). A superuser connection LISTENs to
   both projections' NOTIFY (sent in the transaction that moves each checkpoint), so both lags are measured
   the same way: for every event, from its POST's answer to the first commit of a checkpoint at or past its
   position. Reports p50/p99 of each and whether each kept up (bench_lag's rule: ≥ 97% of the offered rate
   answered, no failures, caught up within 1 s of the last answer).

The generated log is dated September 2017 and recorded now, so every fact would be a late report; lateness
is not what this measures (a real month's facts are recorded within days), so both phases set the
late_report threshold beyond it (serve: QMSTATS_FLAG_LATE_AFTER_DAYS). Bounded in time; serve is stopped
and the temp dir removed in ``finally``.
"""

import argparse
import asyncio
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from bench_lag import LagRun, StreamWatcher, bodies, paced, pause_count
from common import (
    CpuMeter,
    Keys,
    QmstatsServer,
    Row,
    add_common_args,
    client_session,
    create_keys,
    header,
    markdown_table,
    open_campaign,
    per_round,
    process_groups,
    ratio_cell,
    rows_json,
    run_main,
    spread,
    start_server,
    verdict,
    wait_followers,
    wait_projected,
)
from load_log import load_events

from events.coordination import FLAGS_CHANNEL, PROJECTION_CHANNEL
from projections.flag_runner import project_flags
from projections.flag_tables import reset_flags
from projections.rebuild import SHADOW, create_shadow, fill

LATE_DAYS = 36500
REPLAY_TARGET = 1.0  # issue 15 as the lead judges it: flags replay at least as fast as the dashboard's, every round


class CheckpointWatcher(StreamWatcher):
    """bench_lag's matcher of answered events to the first message covering them, fed by a projection's NOTIFY
    (the position its checkpoint committed) instead of the SSE stream."""

    def notified(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        self._advanced(int(payload), time.perf_counter())


class BothWatchers:
    """Hands every answered POST's positions to both projections' watchers (bench_lag's ``paced`` takes one)."""

    def __init__(self, *watchers: StreamWatcher) -> None:
        self._watchers = watchers

    def answered(self, positions: list[int], at: float) -> None:
        for watcher in self._watchers:
            watcher.answered(positions, at)


async def replay(args: argparse.Namespace, admin: asyncpg.Connection, head: int) -> tuple[list[float], list[float]]:
    dashboard: list[float] = []
    flags: list[float] = []
    for round_ in range(args.rounds):
        await create_shadow(admin)
        started = time.perf_counter()
        done = await fill(admin, SHADOW, head, batch_size=args.batch_size)
        dashboard.append(done / (time.perf_counter() - started))
        await reset_flags(admin)
        started = time.perf_counter()
        scored = await project_flags(admin, batch_size=args.batch_size, until=head,
                                     late_after=timedelta(days=LATE_DAYS))
        flags.append(scored / (time.perf_counter() - started))
        raised = await admin.fetchval("SELECT count(*) FROM quality_flags")
        print(f"round {round_ + 1}:    dashboard {dashboard[-1]:,.0f} events/s, flags {flags[-1]:,.0f} events/s "
              f"(ratio {flags[-1] / dashboard[-1]:.2f}; {raised:,} flags raised)", flush=True)
    for table in ("projection_checkpoints", "projection_totals", "projection_daily", "projection_categories",
                  "projection_reports"):
        await admin.execute(f"DROP TABLE IF EXISTS {SHADOW.name(table)}")
    return dashboard, flags


async def live(args: argparse.Namespace, session: aiohttp.ClientSession, server: QmstatsServer, keys: Keys,
               admin: asyncpg.Connection, rate: float, seconds: float, seed: int) -> tuple[LagRun, LagRun]:
    """Offer ``rate`` events/s for ``seconds``; the dashboard's and the flags projection's lag, measured alike."""
    dashboard, flags = CheckpointWatcher(), CheckpointWatcher()
    await admin.add_listener(PROJECTION_CHANNEL, dashboard.notified)
    await admin.add_listener(FLAGS_CHANNEL, flags.notified)
    try:
        pool = await asyncio.to_thread(bodies, seed, int(rate * seconds), 20)
        runs = LagRun("dashboard", rate), LagRun("flags", rate)
        dashboard.measure(runs[0])
        flags.measure(runs[1])
        meter = CpuMeter(lambda: process_groups(server))
        meter.start()
        pauses = await pause_count(session, server.url)
        await paced(session, server.url, keys.reporter, BothWatchers(dashboard, flags), runs[0], pool, 20,
                    args.max_in_flight)
        cpu = meter.stop()
        pauses = await pause_count(session, server.url) - pauses
        answered = time.perf_counter()

        async def drained(watcher: CheckpointWatcher, run: LagRun) -> None:
            await watcher.wait_drained(30.0)
            run.catch_up = time.perf_counter() - answered
            run.unmatched = watcher.pending
            run.sse_messages = watcher.messages

        await asyncio.gather(drained(dashboard, runs[0]), drained(flags, runs[1]))
        for field in ("seconds", "events", "requests", "failures", "first_failure", "post_latencies", "behind"):
            setattr(runs[1], field, getattr(runs[0], field))
        for run in runs:
            run.cpu_cores = cpu
            run.pauses = pauses
        return runs
    finally:
        await admin.remove_listener(PROJECTION_CHANNEL, dashboard.notified)
        await admin.remove_listener(FLAGS_CHANNEL, flags.notified)


def describe(run: LagRun) -> str:
    s = run.summary()
    return (f"  {run.mode:<9} lag p50 {s['lag_p50_ms']:.1f} ms, p99 {s['lag_p99_ms']:.1f} ms, "
            f"max {s['lag_max_ms']:.1f} ms "
            f"(p99 1st half {s['lag_p99_first_half_ms']:.1f}, 2nd half {s['lag_p99_second_half_ms']:.1f}); "
            f"{run.sse_messages:,} checkpoint commits; caught up {run.catch_up:.2f} s after the last answer; "
            f"unmatched {run.unmatched}; projectors stepped aside {run.pauses} times; kept up: {run.kept_up}")


async def benchmark(args: argparse.Namespace, servers: list[Any], data_dir: Path) -> tuple[int, dict[str, Any]]:
    env = {"QMSTATS_FLAG_LATE_AFTER_DAYS": str(LATE_DAYS)}
    lag_runs: list[tuple[LagRun, LagRun]] = []
    async with client_session(args.max_in_flight + 8, timeout=120) as session:
        server = await start_server(servers, data_dir, session, serve_args=["--no-projector"], env=env)
        keys = await create_keys(server, ("admin", "reporter"))
        await open_campaign(session, server.url, keys.admin)
        loaded = await load_events(session, server.url, keys.reporter, args.events, clients=4, batch=1000,
                                   progress=False, time_limit=args.time_limit)
        admin = await server.connect_superuser()
        facts = await header("qmstats flags projection", admin)
        head = int(await admin.fetchval("SELECT max(position) FROM events"))
        print(f"log:        {head:,} events loaded at {loaded.rate:,.0f} events/s (1000-event POSTs, 4 clients)")
        dashboard, flags = await replay(args, admin, head)
        await admin.close()
        if args.rates:
            server.stop()
            servers.remove(server)
            server = await start_server(servers, data_dir, session, env=env)  # serve's defaults
            admin = await server.connect_superuser()
            try:
                await wait_projected(session, server.url, head, limit=300)
                await wait_followers(admin, head, limit=300)
                print(f"\nlive:       serve with its defaults; {', '.join(f'{r:,.0f}' for r in args.rates)} events/s "
                      f"offered as 20-event POSTs (open loop), {args.seconds:g} s each after {args.warmup:g} s of "
                      "warm-up; lag = POST answered → NOTIFY of the checkpoint covering it", flush=True)
                seeds = iter(range(900, 10_000))
                for rate in args.rates:
                    if args.warmup > 0:
                        await live(args, session, server, keys, admin, rate, args.warmup, next(seeds))
                    runs = await live(args, session, server, keys, admin, rate, args.seconds, next(seeds))
                    lag_runs.append(runs)
                    print(f"{rate:,.0f} events/s offered: answered {runs[0].rate:,.0f} events/s; CPU cores "
                          + ", ".join(f"{k} {v:.2f}" for k, v in runs[0].cpu_cores.items()), flush=True)
                    for run in runs:
                        print(describe(run), flush=True)
            finally:
                await admin.close()

    rounds = per_round(flags, dashboard)
    rows = [
        Row("flags projector from position 0, events/s (limit: dashboard projector, same log)", spread(flags),
            spread(dashboard), ratio_cell(flags, dashboard), f"≥ {REPLAY_TARGET:g}× in every round",
            verdict(min(rounds) >= REPLAY_TARGET), {"flags": flags, "dashboard": dashboard}),
        Row(f"flags projector vs this run's flat-out batched ingest ({loaded.rate:,.0f} events/s)",
            f"{min(flags):,.0f} (slowest)", f"{loaded.rate:,.0f}", f"{min(flags) / loaded.rate:.2f}×",
            f"(context: the dashboard projector's {min(dashboard) / loaded.rate:.2f}×)", "–",
            {"ingest": loaded.rate}),
    ]
    for dash, flag in lag_runs:
        fs, ds = flag.summary(), dash.summary()
        rows.append(Row(
            f"lag at {dash.offered_rate:,.0f} events/s offered (20-event POSTs), serve defaults: flags p50 / p99, ms "
            "(limit: dashboard projection, same run)",
            f"{fs['lag_p50_ms']:,.0f} / {fs['lag_p99_ms']:,.0f}; kept up: {flag.kept_up}",
            f"{ds['lag_p50_ms']:,.0f} / {ds['lag_p99_ms']:,.0f}; kept up: {dash.kept_up}", "–",
            "flags keep up whenever the dashboard does", verdict(flag.kept_up or not dash.kept_up),
            {"flags": fs, "dashboard": ds}))
    print()
    print(markdown_table(rows))
    report = {"benchmark": "flags", "machine": facts, "args": vars(args), "head": head, "ingest": loaded.summary(),
              "dashboard_events_per_s": dashboard, "flags_events_per_s": flags, "rows": rows_json(rows),
              "live": [[r.summary() for r in runs] for runs in lag_runs]}
    failed = sum(sum(d.failures.values()) for d, _ in lag_runs)
    return (0 if failed == 0 else 1), report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--time-limit", type=float, default=600.0)
    parser.add_argument("--rates", default="2000,3000",
                        help="live phase: events/s offered, comma-separated ('' skips it)")
    parser.add_argument("--seconds", type=float, default=5.0, help="live phase: measured seconds per rate")
    parser.add_argument("--warmup", type=float, default=2.0, help="live phase: unmeasured seconds before each rate")
    parser.add_argument("--max-in-flight", type=int, default=256, help="live phase: cap on unanswered POSTs")
    add_common_args(parser)
    args = parser.parse_args()
    args.rates = [float(r) for r in args.rates.split(",") if r.strip()]
    return run_main(lambda servers, directory: benchmark(args, servers, directory), json_path=args.json)


if __name__ == "__main__":
    sys.exit(main())
