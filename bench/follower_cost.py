"""CPU per event of each follower of the log under a batched-ingest burst: the projectors (the projector
process's main thread) and the integrator (its thread, and the PostgreSQL backends it talks to).

    .venv/bin/python bench/follower_cost.py [--seconds 5] [--pause-rate 5000]

Starts ``qmstats serve`` (defaults, ``QMSTATS_PROJECTOR_PAUSE_RATE`` as given), POSTs 1000-event batches from
4 clients for ``--seconds``, waits until every follower reached the head, and prints CPU seconds per event
for the burst and for the whole (burst + catch-up), per thread of the projector process and per backend.
"""

import argparse
import asyncio
import time
from pathlib import Path
from typing import Any

import psutil
from bench_batch import bodies, post_batches
from common import (
    QmstatsServer,
    add_common_args,
    client_session,
    create_keys,
    open_campaign,
    run_main,
    start_server,
    wait_followers,
    wait_projected,
)


def thread_cpu(pid: int) -> dict[int, float]:
    return {t.id: t.user_time + t.system_time for t in psutil.Process(pid).threads()}


def backend_cpu(pids: set[int]) -> dict[int, float]:
    out: dict[int, float] = {}
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
            out[pid] = times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return out


async def benchmark(args: argparse.Namespace, servers: list[QmstatsServer],
                    data_dir: Path) -> tuple[int, dict[str, Any]]:
    env = {"QMSTATS_PROJECTOR_PAUSE_RATE": str(args.pause_rate)}
    async with client_session(8, timeout=120) as session:
        server = await start_server(servers, data_dir, session, env=env)
        keys = await create_keys(server, ("admin", "reporter"))
        await open_campaign(session, server.url, keys.admin)
        admin = await server.connect_superuser()
        # The projector process: of serve's children, the one that does not listen on the port.
        projector = next(p for p in server.processes() if p.pid != server.pid and not any(
            c.status == psutil.CONN_LISTEN for c in p.net_connections("tcp")))
        pool = await asyncio.to_thread(bodies, 11, int(args.seconds * 80_000))
        roles: dict[int, str] = {}

        watcher = await server.connect_superuser()

        async def classify() -> None:
            rows = await watcher.fetch("SELECT pid, query FROM pg_stat_activity WHERE datname = 'qmstats'")
            for row in rows:
                q = row["query"] or ""
                if "log_tiles" in q or "log_checkpoints" in q or "tree" in q:
                    roles.setdefault(row["pid"], "integrator")
                elif "projection_" in q or "quality_" in q or "flag" in q:
                    roles.setdefault(row["pid"], "projectors")

        stop = asyncio.Event()

        async def sampler() -> None:
            while not stop.is_set():
                await classify()
                await asyncio.sleep(0.05)

        sampling = asyncio.create_task(sampler())
        before_threads = thread_cpu(projector.pid)
        all_backends = {c.pid for c in psutil.Process(server.postmaster().pid).children()}
        before_backends = backend_cpu(all_backends)
        started = time.perf_counter()
        phase = await post_batches(session, server.url, keys.reporter, pool, 4, args.seconds)
        burst_threads = thread_cpu(projector.pid)
        burst_backends = backend_cpu(all_backends)
        head = await admin.fetchval("SELECT max(position) FROM events")
        await wait_projected(session, server.url, head)
        await wait_followers(admin, head)
        settled = time.perf_counter() - started
        end_threads = thread_cpu(projector.pid)
        end_backends = backend_cpu(all_backends)
        stop.set()
        await sampling
        await watcher.close()
        await admin.close()

    events = phase.events
    main = projector.pid

    def per_event(a: dict[int, float], b: dict[int, float], keys_: set[int]) -> float:
        return sum(b.get(k, 0) - a.get(k, 0) for k in keys_) / events * 1e6

    others = set(end_threads) - {main}
    integ_be = {p for p, r in roles.items() if r == "integrator"}
    proj_be = {p for p, r in roles.items() if r == "projectors"}
    print(f"pause rate {args.pause_rate:g}: {events:,} events in {phase.elapsed:.1f} s ({phase.rate:,.0f} ev/s); "
          f"all followers at the head {settled:.1f} s after the burst began")
    for label, a, b in (("burst", before_threads, burst_threads), ("burst+catch-up", before_threads, end_threads)):
        ab, bb = before_backends, burst_backends if label == "burst" else end_backends
        print(f"  {label:<15} µs CPU/event: projectors (main thread) {per_event(a, b, {main}):6.1f}, "
              f"integrator thread {per_event(a, b, others):6.1f}; backends: integrator "
              f"{per_event(ab, bb, integ_be):6.1f}, projectors {per_event(ab, bb, proj_be):6.1f}")
    return 0, {}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--pause-rate", type=float, default=5000.0)
    add_common_args(parser)
    args = parser.parse_args()
    raise SystemExit(run_main(lambda servers, data_dir: benchmark(args, servers, data_dir), json_path=args.json))


if __name__ == "__main__":
    main()
