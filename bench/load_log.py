"""Load a realistic log through the service's own append path and report how fast it went.

Run from the repository root:

    .venv/bin/python bench/load_log.py [--events 1000000] [--clients 6] [--data-dir DIR] [--json out.json]

The events come from ``services.simulate.generate_events(campaign 2017, September 2017, seed,
count, batch=1000, corrections=True)``: facts of every type over all 31 provinces and their sampled
prefectures and counties, ~2% corrections and ~0.5% retractions of earlier facts. They go in exactly
as a regional system would send them: ``POST /v1/events`` with 1000-event batches and a nation-scoped
reporter key, from ``--clients`` concurrent HTTP clients, so every event is parsed, validated
(``read_events``), decided and hash-chained by ``qmstats serve`` itself.

A batch that corrects or retracts an event of an earlier batch is sent only after that batch was
answered (the generator guarantees nothing else about order), so concurrency never produces a 422.

After the last answer it waits until the projection has caught up, records serve's RSS, runs
``VACUUM (ANALYZE)`` and ``CHECKPOINT`` (so later read benchmarks do not pay for hint bits), then stops
serve. With ``--data-dir`` the data directory is kept (``bench/run`` loads 1M events once and runs
bench_replay.py on it); without it a temporary directory is used and removed.
"""

import argparse
import asyncio
import contextlib
import queue
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from common import (
    CAMPAIGN,
    CAMPAIGN_WINDOW,
    MIB,
    CpuMeter,
    PySpy,
    QmstatsServer,
    Row,
    RssSampler,
    add_common_args,
    bearer,
    client_session,
    create_keys,
    header,
    open_campaign,
    process_groups,
    rows_json,
    run_main,
    start_server,
    verdict,
    wait_followers,
    wait_projected,
)

from services.simulate.plan import generate_events

WINDOW_BATCHES = 64
"""How many recent batches' event ids the dependency tracker remembers; older targets wait for every earlier
batch to be answered (correct, only less concurrent)."""
TARGET_SERVE_RSS_MB = 300.0


@dataclass(slots=True)
class Outgoing:
    """One request to send: its body, event count, and the earlier batches it must wait for."""

    index: int
    body: bytes
    events: int
    after: set[int]
    after_all_before: int = -1
    """Wait until every batch below this index was answered (a target older than the window)."""


@dataclass(slots=True)
class LoadResult:
    """What a load did."""

    events: int = 0
    created: int = 0
    duplicates: int = 0
    requests: int = 0
    retries: int = 0
    seconds: float = 0.0
    last_position: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    first_failure: str = ""
    latencies: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0

    def summary(self) -> dict[str, Any]:
        lat = sorted(self.latencies)
        return {"events": self.events, "created": self.created, "duplicates": self.duplicates,
                "requests": self.requests, "retries": self.retries, "seconds": round(self.seconds, 2),
                "events_per_s": round(self.rate, 1), "last_position": self.last_position,
                "failures": self.failures, "first_failure": self.first_failure,
                "request_p50_ms": round(lat[len(lat) // 2] * 1000, 1) if lat else None,
                "request_p99_ms": round(lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000, 1) if lat else None}


def outgoing(count: int, seed: int, batch: int, corrections: bool) -> Iterator[Outgoing]:
    """Serialised batches of generate_events with the batches each depends on.

    A correction or retraction waits for the batch holding its target and for the batch holding the
    previous correction of the same target (corrected twice, corrected then retracted), so the log gets
    them in the generator's order.
    """
    latest: dict[str, int] = {}
    recent: deque[tuple[int, list[str]]] = deque()
    for index, events in enumerate(generate_events(CAMPAIGN, CAMPAIGN_WINDOW, seed, count, batch=batch,
                                                   corrections=corrections)):
        after: set[int] = set()
        old = -1
        touched = [e["event_id"] for e in events]
        mine = set(touched)
        for event in events:
            data = event["data"]
            target = data.get("corrects") or data.get("retracts")
            if target is None:
                continue
            touched.append(target)
            if target in mine:
                continue
            previous = latest.get(target)
            if previous is None:
                old = index - WINDOW_BATCHES
            else:
                after.add(previous)
        for event_id in touched:
            latest[event_id] = index
        recent.append((index, touched))
        if len(recent) > WINDOW_BATCHES:
            gone, ids = recent.popleft()
            for event_id in ids:
                if latest.get(event_id) == gone:
                    del latest[event_id]
        yield Outgoing(index, orjson.dumps({"events": events}), len(events), after, old)


def _produce(items: Iterator[Outgoing], out: "queue.Queue[Outgoing | None]", stop: threading.Event) -> None:
    try:
        for item in items:
            while not stop.is_set():
                try:
                    out.put(item, timeout=0.2)
                    break
                except queue.Full:
                    continue
            if stop.is_set():
                return
    finally:
        with contextlib.suppress(queue.Full):
            out.put(None, timeout=5)


async def load_events(session: aiohttp.ClientSession, url: str, token: str, count: int, *, clients: int = 4,
                      batch: int = 1000, seed: int = 1, corrections: bool = True, progress: bool = True,
                      time_limit: float = 3600.0) -> LoadResult:
    """POST ``count`` generated events in batches from ``clients`` concurrent clients; bounded by ``time_limit``."""
    result = LoadResult()
    headers = {**bearer(token), "Content-Type": "application/json"}
    pending: queue.Queue[Outgoing | None] = queue.Queue(maxsize=4 * clients)
    stop = threading.Event()
    producer = threading.Thread(target=_produce, args=(outgoing(count, seed, batch, corrections), pending, stop),
                                daemon=True)
    answered: dict[int, asyncio.Event] = {}
    slots = asyncio.Semaphore(clients)
    tasks: set[asyncio.Task[None]] = set()
    started = time.perf_counter()
    deadline = started + time_limit
    next_report = max(count // 10, 1)

    async def send(item: Outgoing) -> None:
        try:
            for attempt in range(6):
                sent = time.perf_counter()
                try:
                    async with session.post(f"{url}/v1/events", data=item.body, headers=headers) as resp:
                        answer, status = await resp.read(), resp.status
                except (aiohttp.ClientError, TimeoutError) as exc:
                    answer, status = repr(exc).encode(), 0
                if status in (0, 429, 503) and attempt < 5:
                    result.retries += 1
                    await asyncio.sleep(0.2 * 2**attempt)
                    continue
                break
            result.latencies.append(time.perf_counter() - sent)
            result.requests += 1
            if 200 <= status < 300:
                body = orjson.loads(answer)
                statuses = [r["status"] for r in body["results"]]
                result.events += len(statuses)
                result.created += statuses.count("created")
                result.duplicates += statuses.count("duplicate")
                result.last_position = max(result.last_position, int(body["last_position"]))
            else:
                result.failures[str(status)] = result.failures.get(str(status), 0) + 1
                result.first_failure = result.first_failure or f"batch {item.index}: {status} {answer[:1500]!r}"
        finally:
            answered[item.index].set()
            slots.release()

    producer.start()
    try:
        while time.perf_counter() < deadline:
            item = await asyncio.to_thread(pending.get)
            if item is None:
                break
            answered[item.index] = asyncio.Event()
            await slots.acquire()
            for earlier in item.after:
                await answered[earlier].wait()
            for earlier in range(max(0, item.after_all_before)):
                await answered[earlier].wait()
            task = asyncio.create_task(send(item))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            if progress and result.events >= next_report:
                elapsed = time.perf_counter() - started
                print(f"  loaded {result.events:,} events in {elapsed:.0f} s ({result.events / elapsed:,.0f}/s)",
                      flush=True)
                next_report += max(count // 10, 1)
        await asyncio.gather(*tasks)
    finally:
        stop.set()
        for task in tasks:
            task.cancel()
        with contextlib.suppress(queue.Empty):
            while True:
                pending.get_nowait()
        producer.join(timeout=10)
    result.seconds = time.perf_counter() - started
    return result


async def benchmark(args: argparse.Namespace, servers: list[QmstatsServer], data_dir: Path) \
        -> tuple[int, dict[str, Any]]:
    async with client_session(args.clients + 4, timeout=120) as session:
        server = await start_server(servers, data_dir, session)
        keys = await create_keys(server, ("admin", "reporter"))
        await open_campaign(session, server.url, keys.admin)
        admin = await server.connect_superuser()
        facts = await header("qmstats log load", admin)
        print(f"load:       {args.events:,} events from generate_events(corrections=True, seed={args.seed}) as "
              f"{args.batch}-event POSTs from {args.clients} concurrent clients to {server.url}/v1/events "
              "(serve with its in-process projector)", flush=True)
        meter = CpuMeter(lambda: process_groups(server))
        meter.start()
        profile = Path(args.profile_dir) / "load_serve.txt" if args.profile_dir else None
        with RssSampler(server.pid, 0.25, children=True) as rss, \
                (PySpy(server.pid, profile, args.profile_seconds) if profile else contextlib.nullcontext()):
            result = await load_events(session, server.url, keys.reporter, args.events, clients=args.clients,
                                       batch=args.batch, seed=args.seed, time_limit=args.time_limit)
            cores = meter.stop()
            rss_after_load = server.rss_bytes()
            print(f"appended:   {result.events:,} events ({result.created:,} created) in {result.seconds:.1f} s = "
                  f"{result.rate:,.0f} events/s; {result.requests:,} requests, p50 "
                  f"{result.summary()['request_p50_ms']} ms, p99 {result.summary()['request_p99_ms']} ms; "
                  f"failures {result.failures or 0}; CPU cores {cores}", flush=True)
            if result.first_failure:
                print(f"first failure: {result.first_failure}")
            caught_up = await wait_projected(session, server.url, result.last_position, limit=args.time_limit)
        followers = await wait_followers(admin, result.last_position, limit=args.time_limit)
        print(f"followers:  the flags projection and the signed tree reached the head {followers:.1f} s after the "
              "dashboard's", flush=True)
        total = result.seconds + caught_up
        rss_projected = server.rss_bytes()
        pss_projected = server.pss_bytes()
        # Per process: resident, and unique (what stopping that process alone would free).
        per_process = [(p.pid, p.memory_info().rss / MIB, p.memory_full_info().uss / MIB) for p in server.processes()]
        print(f"projected:  caught up {caught_up:.1f} s after the last answer ({result.events / total:,.0f} "
              f"events/s appended and projected); serve RSS (all {len(server.processes())} processes) "
              f"{rss_after_load / MIB:.0f} MB after the load, {rss_projected / MIB:.0f} MB once projected, peak "
              f"{rss.peak / MIB:.0f} MB; PSS (shared pages counted once) {pss_projected / MIB:.0f} MB; per process "
              "RSS / USS (the supervisor first, PostgreSQL not counted): "
              + ", ".join(f"{r:.0f} / {u:.0f}" for _, r, u in per_process), flush=True)
        vacuum_started = time.perf_counter()
        await admin.execute("VACUUM (ANALYZE) events")
        await admin.execute("CHECKPOINT")
        vacuum_seconds = time.perf_counter() - vacuum_started
        log_bytes = await admin.fetchval("SELECT pg_total_relation_size('events')")
        rows = await admin.fetchval("SELECT count(*) FROM events")
        await admin.close()
        print(f"log:        {rows:,} rows, events table with indexes {log_bytes / MIB:,.0f} MB; "
              f"VACUUM (ANALYZE) + CHECKPOINT {vacuum_seconds:.1f} s")
    ok = not result.failures and rows == 1 + result.created
    rss_mb = rss_projected / MIB
    summary_rows = [
        Row(f"log load: {args.batch}-event POSTs, {args.clients} clients, generate_events(corrections=True): "
            "events/s", f"{result.rate:,.0f} ({result.events:,} events in {result.seconds:.0f} s)",
            values={"events_per_s": result.rate, "seconds": result.seconds}),
        Row(f"serve RSS (all its processes; PostgreSQL not counted) after {result.events:,} events ingested and "
            "projected, MB", f"{rss_mb:,.0f} "
            f"(peak during load {rss.peak / MIB:,.0f}; PSS {pss_projected / MIB:,.0f})", "–", "–",
            f"< {TARGET_SERVE_RSS_MB:.0f} MB",
            verdict(rss_mb < TARGET_SERVE_RSS_MB), {"rss_mb": rss_mb, "peak_mb": rss.peak / MIB}),
    ]
    report = {"benchmark": "load", "machine": facts, "args": vars(args), "load": result.summary(),
              "cpu_cores": cores, "projection_catch_up_s": round(caught_up, 2),
              "followers_catch_up_s": round(followers, 2),
              "serve_rss_mb": {"after_load": round(rss_after_load / MIB, 1), "projected": round(rss_mb, 1),
                               "peak": round(rss.peak / MIB, 1), "pss": round(pss_projected / MIB, 1),
                               "per_process_rss_uss": [[round(r, 1), round(u, 1)] for _, r, u in per_process]},
              "vacuum_checkpoint_s": round(vacuum_seconds, 1), "events_rows": rows,
              "events_table_mb": round(log_bytes / MIB, 1), "ok": ok, "rows": rows_json(summary_rows)}
    if not ok:
        print(f"LOAD INCOMPLETE: rows {rows:,} vs 1 + {result.created:,} created; failures {result.failures}")
    return (0 if ok else 1), report


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=1_000_000, help="events to load")
    parser.add_argument("--clients", type=int, default=6, help="concurrent HTTP clients")
    parser.add_argument("--batch", type=int, default=1000, help="events per POST (at most 1000)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--data-dir", help="keep the loaded data here (must not hold a log yet)")
    parser.add_argument("--time-limit", type=float, default=1800.0, help="stop loading after this many seconds")
    parser.add_argument("--profile-seconds", type=float, default=30.0, help="py-spy duration with --profile-dir")
    add_common_args(parser)
    args = parser.parse_args(argv)
    if args.events < 1 or not 1 <= args.batch <= 1000 or args.clients < 1:
        parser.error("need --events >= 1, 1 <= --batch <= 1000, --clients >= 1")
    return args


def main() -> int:
    args = parse_args()
    data_dir = Path(args.data_dir).resolve() if args.data_dir else None
    return run_main(lambda servers, directory: benchmark(args, servers, directory), json_path=args.json,
                    data_dir=data_dir)


if __name__ == "__main__":
    sys.exit(main())
