"""Ingest benchmark: single-event POSTs to qmstats against the raw PostgreSQL insert limit, in one run.

Run from the repository root:

    .venv/bin/python bench/bench_ingest.py [--seconds 10] [--clients 64] [--rounds 3] [--json out.json]

What it does, in one process and one run:

1. Starts ``qmstats serve`` on 127.0.0.1 with its own durable embedded PostgreSQL (production
   defaults: fsync and synchronous_commit on; serve's own defaults, so its projector runs too; rate
   limit lifted, log level warning) in a fresh temporary data directory, creates an
   admin key and a nation-scoped reporter key with ``qmstats keys create`` and opens campaign 2017.
2. **Ours**: ``--clients`` concurrent clients (one aiohttp session, one connection each) POST one
   event per request with the reporter key (scope 000000, so every province is allowed) for
   ``--seconds``, bounded also by ``--max-requests``. Payloads are raid_conducted / publicity_held
   built from tests/factories.py SAMPLE_DATA with varied values, over 93 regions in 31 provinces.
3. **Raw limit**: on the same PostgreSQL server, as the superuser over its Unix socket, ``--raw-conns``
   asyncpg connections each run a prepared one-row INSERT per transaction (autocommit) into
   ``bench_raw_events (LIKE events INCLUDING ALL)``: same columns, same indexes, rows built from the
   same payload generator, positions from a shared counter, 32-byte sha256 hashes.
4. Rounds are interleaved (ours, raw, ours, raw, ...) so slow spells on a noisy machine hit both;
   before each limit phase every follower of the log (dashboard and flags projections, the signed tree)
   catches up on the ours phase, untimed, so a limit is measured on an idle server;
   each figure is reported as the median (min-max) of the rounds, beside the raw limit and a ratio.
5. Checks that ``events`` holds exactly 1 (the campaign) + the number of "created" answers.

Load goes only to 127.0.0.1 and the server's Unix socket, is bounded in time and count, and stops
by itself. The server is stopped (SIGTERM) and the temporary directory removed even on error or Ctrl-C.
The exit status is 1 if any request failed or the row count does not match; timings never fail the run.
"""

import argparse
import asyncio
import contextlib
import hashlib
import itertools
import random
import statistics
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import orjson
from common import (
    CST,
    BareApp,
    PySpy,
    QmstatsServer,
    Row,
    add_common_args,
    cpu_cores,
    cpu_seconds,
    create_keys,
    factories,
    header,
    loadavg,
    open_campaign,
    percentile,
    process_groups,
    ratio_cell,
    rows_json,
    run_main,
    scrape_all,
    serve_workers,
    spread,
    start_server,
    verdict,
    wait_followers,
    wait_projected,
)

from events.regions import EXPECTED_PROVINCES

EVENT_TYPES = ("raid_conducted", "publicity_held")
CATEGORIES = ("liquor", "mooncake", "infant formula", "cosmetics", "auto parts", "electrical appliances",
              "pharmaceuticals", "building materials")
TARGET_CEILING = 0.5
TARGET_NAIVE = 1.5
TARGET_P99_MS = 50.0
RAW_TABLE = "bench_raw_events"
RAW_INSERT = f"""INSERT INTO {RAW_TABLE} (position, event_id, type, schema_version, campaign, region, occurred_at,
                 recorded_at, recorded_by, request_id, target_event_id, data, content_hash, prev_hash, hash)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"""


# --------------------------------------------------------------------------- workload


@dataclass(frozen=True, slots=True)
class Payload:
    """One event body's type and data, with the data pre-serialised for the raw INSERT."""

    type: str
    data: dict[str, Any]
    data_json: str


def _varied(template: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for key, value in template.items():
        if key == "category":
            data[key] = rng.choice(CATEGORIES)
        elif key.endswith("_yuan"):
            data[key] = f"{rng.uniform(1_000, 5_000_000):.2f}"
        elif isinstance(value, int):
            data[key] = rng.randint(0, 3 * value + 5)
        else:
            data[key] = value
    return data


def regions_spread() -> list[str]:
    """A province, a prefecture and a county code in each of the 31 reporting provinces."""
    return [code for p in sorted(EXPECTED_PROVINCES) for code in (p, p[:2] + "0100", p[:2] + "0102")]


class Workload:
    """Realistic event envelopes: varied SAMPLE_DATA payloads, regions over all provinces, unique ids."""

    def __init__(self, seed: int = 2017, distinct_payloads: int = 2000) -> None:
        self._rng = random.Random(seed)
        self.regions = regions_spread()
        self.payloads: list[Payload] = []
        for i in range(distinct_payloads):
            type_ = EVENT_TYPES[i % len(EVENT_TYPES)]
            data = _varied(factories.SAMPLE_DATA[type_], self._rng)
            self.payloads.append(Payload(type_, data, orjson.dumps(data).decode()))

    def mean_data_bytes(self) -> float:
        """Mean size of the jsonb ``data`` sent and stored."""
        return statistics.fmean(len(p.data_json.encode()) for p in self.payloads)

    def pick(self) -> tuple[Payload, str, datetime]:
        """A payload, a region and an occurred_at inside campaign 2017 (September, China time)."""
        rng = self._rng
        occurred = datetime(2017, 9, rng.randint(1, 30), rng.randint(8, 20), rng.randint(0, 59), tzinfo=CST)
        return rng.choice(self.payloads), rng.choice(self.regions), occurred

    def envelope(self) -> bytes:
        """A single-event POST body with a fresh event_id."""
        payload, region, occurred = self.pick()
        return orjson.dumps({"event_id": str(uuid.uuid4()), "type": payload.type, "schema_version": 1,
                             "campaign": "2017", "region": region, "occurred_at": occurred.isoformat(),
                             "data": payload.data})

    def raw_row(self, position: int, prev_hash: bytes, recorded_by: str) -> tuple[Any, ...]:
        """A row for ``bench_raw_events`` shaped like the one the service would store."""
        payload, region, occurred = self.pick()
        event_id = uuid.uuid4()
        content = hashlib.sha256(event_id.bytes + payload.data_json.encode()).digest()
        return (position, event_id, payload.type, 1, "2017", region, occurred, datetime.now(UTC), recorded_by,
                uuid.uuid4().hex, None, payload.data_json, content, prev_hash,
                hashlib.sha256(prev_hash + content).digest())


# --------------------------------------------------------------------------- measurements


@dataclass
class Phase:
    """What one timed phase (ours or raw) measured."""

    kind: str
    elapsed: float = 0.0
    latencies: list[float] = field(default_factory=list)
    ok: int = 0
    created: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    first_failure: str = ""
    cpu_cores: dict[str, float] = field(default_factory=dict)
    group_requests: float | None = None
    commits_per_second: float | None = None
    commit_ms: float | None = None

    @property
    def rate(self) -> float:
        """Successful events per second."""
        return self.ok / self.elapsed if self.elapsed else 0.0

    def percentile_ms(self, q: float) -> float:
        """Nearest-rank percentile of the latencies, in milliseconds."""
        return percentile(self.latencies, q) * 1000

    @property
    def failed(self) -> int:
        """Non-2xx answers and transport errors."""
        return sum(self.failures.values())

    def summary(self) -> dict[str, Any]:
        """The phase's figures, without the per-request latencies."""
        return {"kind": self.kind, "elapsed_s": round(self.elapsed, 3), "events_per_s": round(self.rate, 1),
                "p50_ms": round(self.percentile_ms(0.50), 2), "p99_ms": round(self.percentile_ms(0.99), 2),
                "ok": self.ok, "created": self.created, "failed": self.failed, "failures": dict(self.failures),
                "cpu_cores": {k: round(v, 2) for k, v in self.cpu_cores.items()},
                "group_requests_mean": self.group_requests, "commits_per_s": self.commits_per_second,
                "group_commit_ms_mean": self.commit_ms}


async def post_events(session: aiohttp.ClientSession, url: str, token: str | None, workload: Workload,
                      seconds: float, clients: int, max_requests: int, kind: str = "ours") -> Phase:
    """``clients`` concurrent single-event POSTs to ``url`` until the time or the request budget runs out."""
    phase = Phase(kind)
    headers = {"Content-Type": "application/json"} | ({"Authorization": f"Bearer {token}"} if token else {})
    issued = itertools.count()
    start = time.perf_counter()
    deadline = start + seconds

    async def client() -> None:
        while time.perf_counter() < deadline and next(issued) < max_requests:
            body = workload.envelope()
            sent = time.perf_counter()
            try:
                async with session.post(url, data=body, headers=headers) as resp:
                    answer, status = await resp.read(), resp.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                phase.failures[type(exc).__name__] += 1
                phase.first_failure = phase.first_failure or repr(exc)
                continue
            phase.latencies.append(time.perf_counter() - sent)
            if 200 <= status < 300:
                phase.ok += 1
                phase.created += orjson.loads(answer)["results"][0]["status"] == "created"
            else:
                phase.failures[str(status)] += 1
                phase.first_failure = phase.first_failure or f"{status} {answer[:300]!r}"

    await asyncio.gather(*(client() for _ in range(clients)))
    phase.elapsed = time.perf_counter() - start
    return phase


async def insert_rows(conns: list[asyncpg.Connection], workload: Workload, positions: Iterator[int],
                      seconds: float, max_rows: int) -> Phase:
    """One prepared INSERT per transaction on each connection until the time or the row budget runs out."""
    phase = Phase("raw")
    statements = [await conn.prepare(RAW_INSERT) for conn in conns]
    issued = itertools.count()
    last_hash = [bytes(32)]
    start = time.perf_counter()
    deadline = start + seconds

    async def writer(statement: asyncpg.prepared_stmt.PreparedStatement) -> None:
        while time.perf_counter() < deadline and next(issued) < max_rows:
            row = workload.raw_row(next(positions), last_hash[0], "bench-raw")
            last_hash[0] = row[-1]
            sent = time.perf_counter()
            try:
                await statement.fetchval(*row)
            except asyncpg.PostgresError as exc:
                phase.failures[type(exc).__name__] += 1
                phase.first_failure = phase.first_failure or repr(exc)
                continue
            phase.latencies.append(time.perf_counter() - sent)
            phase.ok += 1
            phase.created += 1

    await asyncio.gather(*(writer(s) for s in statements))
    phase.elapsed = time.perf_counter() - start
    return phase


GROUP_METRICS = ("qmstats_group_requests_sum", "qmstats_group_requests_count", "qmstats_append_seconds_sum")


async def measured(run: Callable[[], Awaitable[Phase]], admin: asyncpg.Connection, server: QmstatsServer,
                   session: aiohttp.ClientSession, profile: Path | None = None, seconds: float = 0.0, *,
                   pid: int | None = None, kind: str = "ours") -> Phase:
    """Run a phase after a CHECKPOINT, adding CPU use per process group and the server's group sizes.

    With ``profile``, py-spy records serve during the phase into that file (raw collapsed stacks).
    """
    await admin.execute("CHECKPOINT")
    if kind != "ours":
        # A limit is measured on an idle server: every follower of the log (dashboard and flags projections,
        # the integrator's signed tree) catches up on the ours phase before it, untimed.
        head = await admin.fetchval("SELECT max(position) FROM events")
        await wait_projected(session, server.url, head)
        await wait_followers(admin, head)
    groups = process_groups(server)
    metrics_before = await scrape_all(server.url, GROUP_METRICS, serve_workers())
    cpu_before = cpu_seconds(groups)
    with PySpy(pid or server.pid, profile, seconds) if profile else contextlib.nullcontext():
        phase = await run()
    phase.cpu_cores = cpu_cores(cpu_before, cpu_seconds(process_groups(server)), phase.elapsed)
    metrics_after = await scrape_all(server.url, GROUP_METRICS, serve_workers())

    def delta(name: str) -> float:
        return metrics_after[name] - metrics_before[name]

    commits = delta("qmstats_group_requests_count")
    if phase.kind == "ours" and commits:
        phase.group_requests = round(delta("qmstats_group_requests_sum") / commits, 2)
        phase.commits_per_second = round(commits / phase.elapsed, 1)
        phase.commit_ms = round(delta("qmstats_append_seconds_sum") / commits * 1000, 2)
    return phase


# --------------------------------------------------------------------------- reporting


def describe(phase: Phase, label: str) -> str:
    """One line per phase as it finishes."""
    line = (f"{label:<14} {phase.rate:>8,.0f} ev/s  p50 {phase.percentile_ms(0.5):6.2f} ms  "
            f"p99 {phase.percentile_ms(0.99):6.2f} ms  n={phase.ok:,}  non-2xx/errors={phase.failed}")
    if phase.group_requests is not None:
        line += (f"\n               server: group {phase.group_requests:.1f} req/commit, "
                 f"{phase.commits_per_second:,.0f} commits/s, {phase.commit_ms:.1f} ms/commit (decide+insert+commit)")
    if phase.cpu_cores:
        cores = ", ".join(f"{k} {v:.2f}" for k, v in phase.cpu_cores.items())
        line += f"\n               CPU cores used: {cores}"
    if phase.first_failure:
        line += f"\n               first failure: {phase.first_failure}"
    return line


def results_table(phases: dict[str, list[Phase]], raw_conns: int, clients: int) \
        -> tuple[str, dict[str, Any], list[Row]]:
    """The markdown table (figure | ours | limit | ratio | target | verdict), its figures and summary rows."""
    ours, ceiling, naive, raw = (phases[k] for k in ("ours", "ceiling", "naive", "raw"))
    o_rate, c_rate, n_rate, r_rate = ([p.rate for p in ps] for ps in (ours, ceiling, naive, raw))
    o_p50, r_p50 = [p.percentile_ms(0.5) for p in ours], [p.percentile_ms(0.5) for p in raw]
    o_p99 = [p.percentile_ms(0.99) for p in ours]
    c_p99, n_p99, r_p99 = ([p.percentile_ms(0.99) for p in ps] for ps in (ceiling, naive, raw))
    vs_ceiling = statistics.median(o_rate) / statistics.median(c_rate)
    vs_naive = statistics.median(o_rate) / statistics.median(n_rate)
    vs_raw = statistics.median(o_rate) / statistics.median(r_rate)
    failed = sum(p.failed for p in ours)
    groups = [p.group_requests for p in ours if p.group_requests is not None]
    commit_ms = [p.commit_ms for p in ours if p.commit_ms is not None]
    p99 = statistics.median(o_p99)
    ms = "{:.2f}"

    def rounds(limit: list[float]) -> str:
        return ", ".join(f"{o / r:.2f}" for o, r in zip(o_rate, limit, strict=True))

    rows = [
        "| figure | ours | limit | ratio | target | verdict |",
        "|---|---|---|---|---|---|",
        f"| events/s vs the HTTP ceiling (bare aiohttp, parse JSON, 201) | {spread(o_rate)} | {spread(c_rate)} | "
        f"**{vs_ceiling:.2f}×** (per round {rounds(c_rate)}) | ≥ {TARGET_CEILING}× | "
        f"{verdict(vs_ceiling >= TARGET_CEILING)} |",
        f"| events/s vs the naive handler (1 INSERT/request, pool 8) | {spread(o_rate)} | {spread(n_rate)} | "
        f"**{vs_naive:.2f}×** (per round {rounds(n_rate)}) | ≥ {TARGET_NAIVE}× | {verdict(vs_naive >= TARGET_NAIVE)} |",
        f"| events/s vs raw INSERT 1/tx, {raw_conns} conns (context) | {spread(o_rate)} | {spread(r_rate)} | "
        f"{vs_raw:.2f}× (per round {rounds(r_rate)}) | – | – |",
        f"| p50 latency, ms | {spread(o_p50, ms)} | {spread(r_p50, ms)} (raw) | "
        f"{statistics.median(o_p50) / statistics.median(r_p50):.1f}× | – | – |",
        f"| p99 latency, ms | {spread(o_p99, ms)} | ceiling {spread(c_p99, ms)}, naive {spread(n_p99, ms)}, "
        f"raw {spread(r_p99, ms)} | – | < {TARGET_P99_MS:.0f} ms | {verdict(p99 < TARGET_P99_MS)} |",
        f"| non-2xx / errors | {failed} | ceiling {sum(p.failed for p in ceiling)}, naive "
        f"{sum(p.failed for p in naive)}, raw {sum(p.failed for p in raw)} | – | 0 | {verdict(failed == 0)} |",
    ]
    if groups:
        rows.append(f"| group size, requests/commit | {spread(groups, '{:.1f}')} | 1 (one INSERT per tx) | – | – | – |")
        rows.append(f"| server time per group commit, ms | {spread(commit_ms, ms)} | – | – | – | – |")
    figures = {"events_per_s": {"ours": o_rate, "ceiling": c_rate, "naive": n_rate, "raw": r_rate,
                                "vs_ceiling": vs_ceiling, "vs_naive": vs_naive, "vs_raw": vs_raw},
               "p50_ms": {"ours": o_p50, "raw": r_p50},
               "p99_ms": {"ours": o_p99, "ceiling": c_p99, "naive": n_p99, "raw": r_p99},
               "ours_failed": failed, "group_requests_mean": groups, "group_commit_ms_mean": commit_ms,
               "raw_connections": raw_conns}
    summary = [
        Row(f"single-event POSTs, {clients} clients: events/s vs HTTP ceiling", spread(o_rate),
            f"{spread(c_rate)} (bare aiohttp: parse JSON, 201)", ratio_cell(o_rate, c_rate),
            f"≥ {TARGET_CEILING}×", verdict(vs_ceiling >= TARGET_CEILING),
            {"ours": o_rate, "limit": c_rate, "ratio": vs_ceiling}),
        Row(f"single-event POSTs, {clients} clients: events/s vs naive handler", spread(o_rate),
            f"{spread(n_rate)} (aiohttp + 1 asyncpg INSERT/request, pool 8)", ratio_cell(o_rate, n_rate),
            f"≥ {TARGET_NAIVE}×", verdict(vs_naive >= TARGET_NAIVE),
            {"ours": o_rate, "limit": n_rate, "ratio": vs_naive}),
        Row("single-event POSTs: p99 latency, ms", spread(o_p99, ms), f"{spread(c_p99, ms)} (ceiling)", "–",
            f"< {TARGET_P99_MS:.0f} ms", verdict(p99 < TARGET_P99_MS), {"ours": o_p99, "limit": c_p99}),
        Row("single-event POSTs: non-2xx", str(failed), "–", "–", "0", verdict(failed == 0),
            {"ours": failed}),
    ]
    return "\n".join(rows), figures, summary


# --------------------------------------------------------------------------- the run


async def benchmark(args: argparse.Namespace, servers: list[QmstatsServer], data_dir: Path) \
        -> tuple[int, dict[str, Any]]:
    """Start serve in ``data_dir``, run every phase; returns the exit status and the report."""
    timeout = aiohttp.ClientTimeout(total=30)
    connector = aiohttp.TCPConnector(limit=args.clients)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        server = await start_server(servers, data_dir, session)
        keys = await create_keys(server, ("admin", "reporter"))
        await open_campaign(session, server.url, keys.admin)

        admin = await server.connect_superuser()
        facts = await header("qmstats ingest benchmark", admin)
        await admin.execute(f"CREATE TABLE {RAW_TABLE} (LIKE events INCLUDING ALL)")
        raw_conns = [await server.connect_superuser() for _ in range(args.raw_conns)]
        workload = Workload()
        positions = itertools.count(1)
        print(f"load:       ours = {args.clients} clients, single-event POSTs to {server.url}/v1/events "
              f"(reporter key scoped to 000000); raw = {args.raw_conns} asyncpg conns, 1 INSERT/tx; "
              f"{args.seconds:g} s per phase, {args.rounds} interleaved rounds; "
              f"data {workload.mean_data_bytes():.0f} B mean over {len(workload.payloads)} payloads, "
              f"{len(workload.regions)} regions\n")

        bare = BareApp(database_url=server.superuser_url(), workers=serve_workers())
        bare.start()
        try:
            await bare.wait_ready(session)
            runs: dict[str, Callable[[float], Awaitable[Phase]]] = {
                "ours": lambda secs: post_events(session, f"{server.url}/v1/events", keys.reporter, workload,
                                                 secs, args.clients, args.max_requests),
                "ceiling": lambda secs: post_events(session, f"{bare.base}/ceiling", None, workload, secs,
                                                    args.clients, args.max_requests, "ceiling"),
                "naive": lambda secs: post_events(session, f"{bare.base}/naive", None, workload, secs,
                                                  args.clients, args.max_requests, "naive"),
                "raw": lambda secs: insert_rows(raw_conns, workload, positions, secs, args.max_requests),
            }
            warm = min(2.0, args.seconds / 5)
            warmups = {kind: await run(warm) for kind, run in runs.items()}
            for kind, phase in warmups.items():
                print(describe(phase, f"warm-up {kind}"))
            phases: dict[str, list[Phase]] = {kind: [] for kind in runs}
            for n in range(1, args.rounds + 1):
                for kind, run in runs.items():
                    profile = Path(args.profile_dir) / f"ingest_{kind}_round{n}.txt" \
                        if args.profile_dir and kind in ("ours", "ceiling") else None
                    pid = server.pid if kind == "ours" else bare.pid
                    phases[kind].append(await measured(lambda run=run: run(args.seconds), admin, server, session,
                                                       profile, args.seconds, pid=pid, kind=kind))
                    print(describe(phases[kind][-1], f"round {n} {kind}"), flush=True)
        finally:
            bare.stop()
        for conn in raw_conns:
            await conn.close()

        table, figures, rows_out = results_table(phases, args.raw_conns, args.clients)
        print(f"\n## median ({args.rounds} rounds), min–max; targets: single-event POSTs with {args.clients} "
              f"clients ≥ {TARGET_CEILING}× the HTTP ceiling and ≥ {TARGET_NAIVE}× the naive handler, "
              f"p99 < {TARGET_P99_MS:.0f} ms, 0 non-2xx\n")
        print(table)
        warm_ours, warm_raw, ours_phases, raw_phases = warmups["ours"], warmups["raw"], phases["ours"], phases["raw"]

        created = sum(p.created for p in [warm_ours, *ours_phases])
        rows = await admin.fetchval("SELECT count(*) FROM events")
        raw_inserted = sum(p.ok for p in [warm_raw, *raw_phases])
        raw_rows = await admin.fetchval(f"SELECT count(*) FROM {RAW_TABLE}")
        await admin.close()
        rows_ok = rows == 1 + created and raw_rows == raw_inserted
        print(f"\ncorrectness: rows in events = {rows:,}; 1 (campaign) + {created:,} created answers = {1 + created:,} "
              f"-> {'OK' if rows == 1 + created else 'MISMATCH'}; "
              f"{RAW_TABLE} rows = {raw_rows:,} vs {raw_inserted:,} inserts -> "
              f"{'OK' if raw_rows == raw_inserted else 'MISMATCH'}")
        facts["loadavg_at_end"] = loadavg()
        print(f"load average at end: {facts['loadavg_at_end']}")

    report = {"benchmark": "ingest", "machine": facts, "args": vars(args), "figures": figures, "table_md": table,
              "rows": rows_json(rows_out),
              "rounds": [p.summary() for ps in phases.values() for p in ps],
              "warmup": [p.summary() for p in warmups.values()],
              "correctness": {"events_rows": rows, "created": created, "raw_rows": raw_rows,
                              "raw_inserted": raw_inserted, "ok": rows_ok}}
    return (0 if rows_ok and figures["ours_failed"] == 0 else 1), report


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of each timed phase")
    parser.add_argument("--clients", type=int, default=64, help="concurrent HTTP clients (ours)")
    parser.add_argument("--raw-conns", type=int, default=8, help="asyncpg connections (raw limit)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of ours and raw")
    parser.add_argument("--max-requests", type=int, default=200_000, help="cap on requests/rows per phase")
    add_common_args(parser)
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.seconds > 300 or args.clients < 1 or args.raw_conns < 1 or args.rounds < 1:
        parser.error("need 0 < --seconds <= 300 and at least one client, connection and round")
    return args


def main() -> int:
    args = parse_args()
    return run_main(lambda servers, data_dir: benchmark(args, servers, data_dir), json_path=args.json)


if __name__ == "__main__":
    sys.exit(main())
