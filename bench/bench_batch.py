"""Batched POSTs (1000 events per request) against raw COPY of 1000-row batches, in one run.

Run from the repository root:

    .venv/bin/python bench/bench_batch.py [--seconds 10] [--rounds 3] [--clients 4] [--json out.json]

1. Starts ``qmstats serve`` (defaults: durable embedded PostgreSQL, in-process projector) in a temp dir,
   creates an admin and a nation-scoped reporter key, opens campaign 2017.
2. **Ours**: ``--clients`` concurrent clients POST pre-serialised ``{"events": [...1000 facts...]}``
   bodies from ``services.simulate.generate_events`` (facts only, so any order is valid) to
   /v1/events: every event is parsed, validated (``read_events``), decided and hash-chained by serve.
   Bodies are generated before the phase, so generation is not timed.
3. **Raw limit**: as the superuser over the same server's Unix socket, ``--raw-conns`` asyncpg
   connections each run ``copy_records_to_table`` of 1000-row batches (one transaction each) into
   ``bench_raw_events (LIKE events INCLUDING ALL)``. Rows are the same generated events as the
   service would store them (payload JSON, sha256-sized hashes); only position and event_id are
   filled in during the loop.
4. A CHECKPOINT before every phase; after an ours phase the followers (which run inside serve and
   compete for the CPU, as in production: the dashboard and flags projectors and the integrator) are
   left to catch up before the next phase, untimed, so the limit is measured on an idle server.
   Rounds interleave ours and raw; figures are median (min–max) with the ratio per round.

Load only to 127.0.0.1 and the Unix socket, bounded in time and count; serve and the temp dir are
removed in ``finally``.
"""

import argparse
import asyncio
import contextlib
import hashlib
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import orjson
from common import (
    CAMPAIGN,
    CAMPAIGN_WINDOW,
    CpuMeter,
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
    ratio_cell,
    ratio_of_medians,
    rows_json,
    run_main,
    scrape,
    spread,
    start_server,
    verdict,
    wait_followers,
    wait_projected,
)

from services.simulate.plan import generate_events

RAW_TABLE = "bench_raw_events"
COLUMNS = ["position", "event_id", "type", "schema_version", "campaign", "region", "occurred_at", "recorded_at",
           "recorded_by", "request_id", "target_event_id", "data", "content_hash", "prev_hash", "hash"]
TARGET_RATIO = 0.5  # issue 13
BATCH = 1000


@dataclass
class Phase:
    kind: str
    elapsed: float = 0.0
    events: int = 0
    requests: int = 0
    latencies: list[float] = field(default_factory=list)
    failures: dict[str, int] = field(default_factory=dict)
    first_failure: str = ""
    cpu_cores: dict[str, float] = field(default_factory=dict)
    exhausted: bool = False

    @property
    def rate(self) -> float:
        return self.events / self.elapsed if self.elapsed else 0.0

    def summary(self) -> dict[str, Any]:
        return {"kind": self.kind, "elapsed_s": round(self.elapsed, 3), "events_per_s": round(self.rate, 1),
                "events": self.events, "requests": self.requests,
                "p50_ms": round(percentile(self.latencies, 0.5) * 1000, 2),
                "p99_ms": round(percentile(self.latencies, 0.99) * 1000, 2), "failures": self.failures,
                "first_failure": self.first_failure, "cpu_cores": self.cpu_cores,
                "ran_out_of_pregenerated_batches": self.exhausted}


def bodies(seed: int, events: int) -> list[bytes]:
    """Pre-serialised 1000-event POST bodies of generated facts."""
    return [orjson.dumps({"events": batch}) for batch in
            generate_events(CAMPAIGN, CAMPAIGN_WINDOW, seed, events, batch=BATCH, corrections=False)]


def raw_templates(seed: int, batches: int) -> list[list[tuple[Any, ...]]]:
    """Row templates (every column but position and event_id) from generated facts, 1000 per batch."""
    now = datetime.now(UTC)
    out: list[list[tuple[Any, ...]]] = []
    prev = bytes(32)
    for batch in generate_events(CAMPAIGN, CAMPAIGN_WINDOW, seed, batches * BATCH, batch=BATCH):
        rows = []
        for event in batch:
            data = orjson.dumps(event["data"]).decode()
            content = hashlib.sha256(event["event_id"].encode() + data.encode()).digest()
            digest = hashlib.sha256(prev + content).digest()
            rows.append((event["type"], 1, event["campaign"], event["region"],
                         datetime.fromisoformat(event["occurred_at"]), now, "bench-raw", "bench-raw-request",
                         None, data, content, prev, digest))
            prev = digest
        out.append(rows)
    return out


async def post_batches(session: aiohttp.ClientSession, url: str, token: str, pool: list[bytes], clients: int,
                       seconds: float) -> Phase:
    """``clients`` concurrent posters over the pre-serialised bodies until the time or the bodies run out."""
    phase = Phase("ours")
    headers = {**bearer(token), "Content-Type": "application/json"}
    items: Iterator[bytes] = iter(pool)
    start = time.perf_counter()
    deadline = start + seconds
    last_answer = [start]

    async def client() -> None:
        while time.perf_counter() < deadline:
            body = next(items, None)
            if body is None:
                phase.exhausted = True
                return
            sent = time.perf_counter()
            try:
                async with session.post(f"{url}/v1/events", data=body, headers=headers) as resp:
                    answer, status = await resp.read(), resp.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                phase.failures[type(exc).__name__] = phase.failures.get(type(exc).__name__, 0) + 1
                phase.first_failure = phase.first_failure or repr(exc)
                continue
            last_answer[0] = time.perf_counter()
            phase.latencies.append(last_answer[0] - sent)
            phase.requests += 1
            if status == 201:
                phase.events += sum(r["status"] == "created" for r in orjson.loads(answer)["results"])
            else:
                phase.failures[str(status)] = phase.failures.get(str(status), 0) + 1
                phase.first_failure = phase.first_failure or f"{status} {answer[:300]!r}"

    await asyncio.gather(*(client() for _ in range(clients)))
    phase.elapsed = last_answer[0] - start
    return phase


async def copy_batches(conns: list[asyncpg.Connection], templates: list[list[tuple[Any, ...]]],
                       counter: Iterator[int], seconds: float, max_batches: int) -> Phase:
    """Each connection COPYs 1000-row batches (one transaction each) until the time or the budget runs out."""
    phase = Phase("raw")
    start = time.perf_counter()
    deadline = start + seconds
    issued = iter(range(max_batches))

    async def writer(conn: asyncpg.Connection) -> None:
        while time.perf_counter() < deadline:
            n = next(issued, None)
            if n is None:
                phase.exhausted = True
                return
            rows = []
            for tpl in templates[n % len(templates)]:
                position = next(counter)
                rows.append((position, f"00000000-0000-4000-8000-{position:012x}", *tpl))
            sent = time.perf_counter()
            await conn.copy_records_to_table(RAW_TABLE, records=rows, columns=COLUMNS)
            phase.latencies.append(time.perf_counter() - sent)
            phase.requests += 1
            phase.events += len(rows)

    await asyncio.gather(*(writer(c) for c in conns))
    phase.elapsed = time.perf_counter() - start
    return phase


def describe(phase: Phase, label: str) -> str:
    line = (f"{label:<14} {phase.rate:>9,.0f} ev/s  p50 {percentile(phase.latencies, 0.5) * 1000:7.1f} ms/batch  "
            f"p99 {percentile(phase.latencies, 0.99) * 1000:7.1f} ms/batch  events={phase.events:,}  "
            f"failures={sum(phase.failures.values())}")
    if phase.cpu_cores:
        line += "\n               CPU cores used: " + ", ".join(f"{k} {v:.2f}" for k, v in phase.cpu_cores.items())
    if phase.exhausted:
        line += "\n               (ran out of pre-generated batches before the time was up)"
    if phase.first_failure:
        line += f"\n               first failure: {phase.first_failure}"
    return line


async def benchmark(args: argparse.Namespace, servers: list[QmstatsServer], data_dir: Path) \
        -> tuple[int, dict[str, Any]]:
    async with client_session(args.clients + 4, timeout=120) as session:
        server = await start_server(servers, data_dir, session, env=dict(args.serve_env))
        keys = await create_keys(server, ("admin", "reporter"))
        await open_campaign(session, server.url, keys.admin)
        admin = await server.connect_superuser()
        facts = await header("qmstats batched-ingest benchmark", admin)
        await admin.execute(f"CREATE TABLE {RAW_TABLE} (LIKE events INCLUDING ALL)")
        raw_conns = [await server.connect_superuser() for _ in range(args.raw_conns)]
        templates = raw_templates(7, 20)
        counter = iter(range(1, 2**62))
        seeds = iter(range(100, 10_000))
        print(f"load:       ours = {args.clients} clients POSTing 1000-event batches (generate_events facts) to "
              f"{server.url}/v1/events; raw = {args.raw_conns} asyncpg conn(s), copy_records_to_table 1000 rows/tx "
              f"into {RAW_TABLE}; {args.seconds:g} s per phase, {args.rounds} interleaved rounds; serve settings: "
              f"{', '.join(f'{k}={v}' for k, v in args.serve_env) or 'defaults'}\n", flush=True)
        meter = CpuMeter(lambda: process_groups(server))
        projected = "qmstats_projection_position"

        async def ours(seconds: float, estimate: float, profile: Path | None = None) -> Phase:
            pool = await asyncio.to_thread(bodies, next(seeds), int(min(args.max_events, estimate * seconds * 2)))
            await admin.execute("CHECKPOINT")
            meter.start()
            with PySpy(server.pid, profile, seconds) if profile else contextlib.nullcontext():
                phase = await post_batches(session, server.url, keys.reporter, pool, args.clients, seconds)
            phase.cpu_cores = meter.stop()
            head = await admin.fetchval("SELECT max(position) FROM events")
            await wait_projected(session, server.url, head)
            return phase

        async def raw(seconds: float, estimate: float) -> Phase:
            # The limit is measured on an idle server: the flags projection and the integrator, which follow
            # the log behind the dashboard, must not still be catching up on ours during it.
            await wait_followers(admin, await admin.fetchval("SELECT max(position) FROM events"))
            await admin.execute("CHECKPOINT")
            meter.start()
            phase = await copy_batches(raw_conns, templates, counter, seconds,
                                       int(min(args.max_events, estimate * seconds * 2)) // BATCH + 1)
            phase.cpu_cores = meter.stop()
            return phase

        warm = min(3.0, args.seconds / 3)
        warm_ours = await ours(warm, 20_000)
        warm_raw = await raw(warm, 200_000)
        print(describe(warm_ours, "warm-up ours"))
        print(describe(warm_raw, "warm-up raw"), flush=True)
        ours_phases: list[Phase] = []
        raw_phases: list[Phase] = []
        for n in range(1, args.rounds + 1):
            profile = Path(args.profile_dir) / f"batch_serve_round{n}.txt" if args.profile_dir else None
            ours_phases.append(await ours(args.seconds, max(warm_ours.rate, 1000), profile))
            print(describe(ours_phases[-1], f"round {n} ours"), flush=True)
            raw_phases.append(await raw(args.seconds, max(warm_raw.rate, 10_000)))
            print(describe(raw_phases[-1], f"round {n} raw"), flush=True)
        metrics = await scrape(session, server.url, [projected])
        created = warm_ours.events + sum(p.events for p in ours_phases)
        rows = await admin.fetchval("SELECT count(*) FROM events")
        raw_rows = await admin.fetchval(f"SELECT count(*) FROM {RAW_TABLE}")
        raw_copied = warm_raw.events + sum(p.events for p in raw_phases)
        for conn in raw_conns:
            await conn.close()
        await admin.close()

    o = [p.rate for p in ours_phases]
    r = [p.rate for p in raw_phases]
    o99 = [percentile(p.latencies, 0.99) * 1000 for p in ours_phases]
    r99 = [percentile(p.latencies, 0.99) * 1000 for p in raw_phases]
    ratio = ratio_of_medians(o, r)
    failed = sum(sum(p.failures.values()) for p in ours_phases)
    rows_ok = rows == 1 + created and raw_rows == raw_copied
    summary = [
        Row(f"batched POSTs, 1000 events/request, {args.clients} clients: events/s", spread(o),
            f"{spread(r)} (raw COPY 1000 rows/tx, {args.raw_conns} conn)", ratio_cell(o, r),
            f"≥ {TARGET_RATIO:.0%} of raw COPY", verdict(ratio >= TARGET_RATIO),
            {"ours": o, "limit": r, "ratio": ratio}),
        Row("batched POSTs: p99 per 1000-event request, ms", spread(o99, "{:,.0f}"),
            f"{spread(r99, '{:,.1f}')} (raw, per COPY)", "–", "–", "–", {"ours": o99, "limit": r99}),
    ]
    table = "\n".join(["| figure | ours | raw limit | ratio | target | verdict |", "|---|---|---|---|---|---|",
                       *("| " + " | ".join(row.cells()) + " |" for row in summary)])
    print(f"\n## median ({args.rounds} rounds), min–max\n\n{table}")
    events_ok = "OK" if rows == 1 + created else "MISMATCH"
    raw_ok = "OK" if raw_rows == raw_copied else "MISMATCH"
    print(f"\ncorrectness: events rows {rows:,} = 1 + {created:,} created -> {events_ok}; {RAW_TABLE} rows "
          f"{raw_rows:,} = {raw_copied:,} copied -> {raw_ok}; non-2xx/errors {failed}; "
          f"projection at {metrics.get(projected, 0):,.0f}")
    facts["loadavg_at_end"] = loadavg()
    report = {"benchmark": "batch", "machine": facts, "args": vars(args), "rows": rows_json(summary),
              "table_md": table, "rounds": [p.summary() for p in [*ours_phases, *raw_phases]],
              "warmup": [warm_ours.summary(), warm_raw.summary()],
              "correctness": {"events_rows": rows, "created": created, "raw_rows": raw_rows,
                              "raw_copied": raw_copied, "ok": rows_ok, "failed": failed}}
    return (0 if rows_ok and failed == 0 else 1), report


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of each timed phase")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of ours and raw")
    parser.add_argument("--clients", type=int, default=4, help="concurrent HTTP clients (ours)")
    parser.add_argument("--raw-conns", type=int, default=1, help="asyncpg connections running COPY (raw)")
    parser.add_argument("--max-events", type=int, default=600_000, help="cap on events per phase")
    parser.add_argument("--serve-env", action="append", default=[], metavar="QMSTATS_NAME=VALUE",
                        help="a setting for serve (repeatable), e.g. QMSTATS_PROJECTOR_PAUSE_RATE=0")
    add_common_args(parser)
    args = parser.parse_args(argv)
    if any("=" not in item or not item.startswith("QMSTATS_") for item in args.serve_env):
        parser.error("--serve-env takes QMSTATS_NAME=VALUE")
    args.serve_env = [tuple(item.split("=", 1)) for item in args.serve_env]
    if not 0 < args.seconds <= 300 or args.rounds < 1 or args.clients < 1 or args.raw_conns < 1:
        parser.error("need 0 < --seconds <= 300 and at least one round, client and connection")
    return args


def main() -> int:
    args = parse_args()
    return run_main(lambda servers, data_dir: benchmark(args, servers, data_dir), json_path=args.json)


if __name__ == "__main__":
    sys.exit(main())
