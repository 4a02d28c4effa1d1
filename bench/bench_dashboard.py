"""Dashboard polls (304 and cached 200) against a bare aiohttp handler, in one run.

Run from the repository root:

    .venv/bin/python bench/bench_dashboard.py [--seconds 10] [--rounds 3] [--connections 50] [--json out.json]

1. Starts ``qmstats serve`` (defaults) in a temp dir, loads ``--events`` generated events (with corrections)
   through POST /v1/events and waits for the projection, so the dashboard has 31 provinces of figures.
   Then nothing is written: the projection position stays fixed for the whole run.
2. Starts ``bench/bare_app.py`` the same way (its own process, uvloop, access log off, 127.0.0.1):
   ``GET /dashboard`` answers a cached ~300 B JSON with a weak ETag, or 304 on If-None-Match.
3. Four variants, each ``--seconds`` at ``--connections`` concurrent keep-alive connections:
   bare 200, ours 200 (GET /v1/campaigns/2017/dashboard with a viewer key; after the first request it is
   served from the response cache at the fixed position), bare 304, ours 304 (same with If-None-Match:
   the ETag of the first answer). Rounds interleave the four variants.
4. Load generator: ``wrk -t1`` when it is installed (``apt-get install -y wrk``), else a Python asyncio
   client (aiohttp, one session); the report says which. Both run on the same 2 cores as the servers.

Figures: requests/s, p50/p99 latency, non-2xx/3xx answers, CPU cores of each server and PostgreSQL.
"""

import argparse
import asyncio
import contextlib
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import psutil
from common import (
    CAMPAIGN,
    BareApp,
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
    serve_workers,
    spread,
    start_server,
    verdict,
    wait_projected,
)
from load_log import load_events

TARGET_304 = 0.70
TARGET_200 = 0.60
VARIANTS = ("bare 200", "ours 200", "bare 304", "ours 304", "bare 200 same size")


@dataclass
class HttpPhase:
    variant: str
    requests: int = 0
    elapsed: float = 0.0
    p50_ms: float = float("nan")
    p99_ms: float = float("nan")
    bad: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    cpu_cores: dict[str, float] = field(default_factory=dict)
    machine_busy_cores: float = 0.0

    @property
    def rate(self) -> float:
        return self.requests / self.elapsed if self.elapsed else 0.0

    def summary(self) -> dict[str, Any]:
        return {"variant": self.variant, "requests_per_s": round(self.rate, 1), "requests": self.requests,
                "elapsed_s": round(self.elapsed, 2), "p50_ms": round(self.p50_ms, 2), "p99_ms": round(self.p99_ms, 2),
                "bad_answers": self.bad, "statuses": self.statuses, "cpu_cores": self.cpu_cores,
                "machine_busy_cores": round(self.machine_busy_cores, 2)}


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text.strip())
    return float(match.group(1)) * _UNITS[match.group(2)] if match else float("nan")


async def wrk(url: str, headers: dict[str, str], connections: int, seconds: float, variant: str) -> HttpPhase:
    args = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency", "--timeout", "5s"]
    for name, value in headers.items():
        args += ["-H", f"{name}: {value}"]
    proc = await asyncio.create_subprocess_exec(*args, url, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout=seconds + 30)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    text = out.decode()
    phase = HttpPhase(variant)
    done = re.search(r"(\d+) requests in ([\d.]+)(ms|s|m)", text)
    if not done:
        raise RuntimeError(f"unexpected wrk output:\n{text}\n{err.decode()}")
    phase.requests = int(done.group(1))
    phase.elapsed = float(done.group(2)) * {"ms": 1e-3, "s": 1.0, "m": 60.0}[done.group(3)]
    for q, name in (("50%", "p50_ms"), ("99%", "p99_ms")):
        line = re.search(rf"^\s+{re.escape(q)}\s+(\S+)", text, re.MULTILINE)
        if line:
            setattr(phase, name, _ms(line.group(1)))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    phase.bad = (int(bad.group(1)) if bad else 0) + (sum(int(g) for g in errors.groups()) if errors else 0)
    return phase


async def python_load(session: aiohttp.ClientSession, url: str, headers: dict[str, str], connections: int,
                      seconds: float, variant: str) -> HttpPhase:
    phase = HttpPhase(variant)
    latencies: list[float] = []
    start = time.perf_counter()
    deadline = start + seconds

    async def worker() -> None:
        while time.perf_counter() < deadline:
            sent = time.perf_counter()
            try:
                async with session.get(url, headers=headers) as resp:
                    await resp.read()
                    status = resp.status
            except (aiohttp.ClientError, TimeoutError):
                status = 0
            latencies.append(time.perf_counter() - sent)
            phase.statuses[str(status)] = phase.statuses.get(str(status), 0) + 1
            if status not in (200, 304):
                phase.bad += 1

    await asyncio.gather(*(worker() for _ in range(connections)))
    phase.elapsed = time.perf_counter() - start
    phase.requests = len(latencies)
    phase.p50_ms = percentile(latencies, 0.5) * 1000
    phase.p99_ms = percentile(latencies, 0.99) * 1000
    return phase


def describe(phase: HttpPhase, label: str) -> str:
    cores = ", ".join(f"{k} {v:.2f}" for k, v in phase.cpu_cores.items())
    return (f"{label:<20} {phase.rate:>8,.0f} req/s  p50 {phase.p50_ms:6.2f} ms  p99 {phase.p99_ms:6.2f} ms  "
            f"n={phase.requests:,}  bad={phase.bad}\n                     CPU cores: {cores}, "
            f"whole machine busy {phase.machine_busy_cores:.2f}")


def busy_cores() -> float:
    t = psutil.cpu_times()
    return float(t.user + t.nice + t.system + t.irq + t.softirq + t.steal)


async def benchmark(args: argparse.Namespace, servers: list[QmstatsServer], data_dir: Path) \
        -> tuple[int, dict[str, Any]]:
    workers = serve_workers()
    bare = BareApp(workers=workers)
    use_wrk = shutil.which("wrk") is not None and not args.python_client
    try:
        async with client_session(args.connections + 8, timeout=120) as session:
            server = await start_server(servers, data_dir, session)
            keys = await create_keys(server, ("admin", "reporter", "viewer"))
            await open_campaign(session, server.url, keys.admin)
            admin = await server.connect_superuser()
            facts = await header("qmstats dashboard-poll benchmark", admin)
            loaded = await load_events(session, server.url, keys.reporter, args.events, progress=False)
            await wait_projected(session, server.url, loaded.last_position)
            ours_url = f"{server.url}/v1/campaigns/{CAMPAIGN}/dashboard"
            async with session.get(ours_url, headers=bearer(keys.viewer)) as resp:
                first = await resp.read()
                etag = resp.headers.get("ETag", "")
                if resp.status != 200 or not etag:
                    raise RuntimeError(f"dashboard answered {resp.status} without an ETag: {first[:300]!r}")
            bare.start(len(first))
            await bare.wait_ready(session)
            async with session.get(ours_url, headers={**bearer(keys.viewer), "If-None-Match": etag}) as resp:
                if resp.status != 304:
                    raise RuntimeError(f"If-None-Match {etag} answered {resp.status}, not 304")
            async with session.get(bare.url) as resp:
                bare_body = await resp.read()
                bare_etag = resp.headers["ETag"]
            position = (await admin.fetchval("SELECT max(position) FROM events"))
            client = f"wrk 4.x -t1 -c{args.connections}" if use_wrk else \
                f"Python asyncio/aiohttp client, {args.connections} connections"
            print(f"load:       {loaded.events:,} events loaded (log head {position:,}); dashboard body "
                  f"{len(first):,} B (bare: {len(bare_body)} B); {client}; {args.seconds:g} s per variant, "
                  f"{args.rounds} interleaved rounds of {', '.join(VARIANTS)}\n", flush=True)
            targets = {
                "bare 200": (bare.url, {}), "bare 304": (bare.url, {"If-None-Match": bare_etag}),
                "ours 200": (ours_url, bearer(keys.viewer)),
                "ours 304": (ours_url, {**bearer(keys.viewer), "If-None-Match": etag}),
                "bare 200 same size": (bare.big_url, {}),
            }
            assert bare.proc is not None
            bare_pid = bare.proc.pid
            bare_pids = [bare_pid, *(c.pid for c in psutil.Process(bare_pid).children())]
            meter = CpuMeter(lambda: {k: v for k, v in process_groups(server, {"bare": bare_pids}).items()
                                      if k != "client" or not use_wrk})

            async def run(variant: str, seconds: float, profile: Path | None = None) -> HttpPhase:
                url, headers = targets[variant]
                meter.start()
                busy = busy_cores()
                started = time.perf_counter()
                pid = bare_pid if variant.startswith("bare") else server.pid
                with PySpy(pid, profile, seconds) if profile else contextlib.nullcontext():
                    if use_wrk:
                        phase = await wrk(url, headers, args.connections, seconds, variant)
                    else:
                        phase = await python_load(session, url, headers, args.connections, seconds, variant)
                phase.machine_busy_cores = (busy_cores() - busy) / (time.perf_counter() - started)
                phase.cpu_cores = meter.stop()
                return phase

            for variant in VARIANTS:
                warm = await run(variant, min(2.0, args.seconds / 3))
                print(describe(warm, f"warm-up {variant}"), flush=True)
            phases: dict[str, list[HttpPhase]] = {v: [] for v in VARIANTS}
            for n in range(1, args.rounds + 1):
                for variant in VARIANTS:
                    profile = None
                    if args.profile_dir and variant.startswith("ours"):
                        profile = Path(args.profile_dir) / f"dashboard_{variant.split()[1]}_round{n}.txt"
                    phases[variant].append(await run(variant, args.seconds, profile))
                    print(describe(phases[variant][-1], f"round {n} {variant}"), flush=True)
            moved = await admin.fetchval("SELECT max(position) FROM events") != position
            await admin.close()
    finally:
        bare.stop()

    def rates(variant: str) -> list[float]:
        return [p.rate for p in phases[variant]]

    def lat(variant: str, q: str) -> list[float]:
        return [getattr(p, q) for p in phases[variant]]

    r304 = ratio_of_medians(rates("ours 304"), rates("bare 304"))
    r200 = ratio_of_medians(rates("ours 200"), rates("bare 200 same size"))
    bad = sum(p.bad for ps in phases.values() for p in ps)
    tool = "wrk" if use_wrk else "Python client"
    summary = [
        Row(f"dashboard polls answered 304, {args.connections} connections ({tool}): requests/s",
            spread(rates("ours 304")), f"{spread(rates('bare 304'))} (bare aiohttp 304, {workers} process(es))",
            ratio_cell(rates("ours 304"), rates("bare 304")), f"≥ {TARGET_304:.0%} of bare",
            verdict(r304 >= TARGET_304),
            {"ours": rates("ours 304"), "limit": rates("bare 304"), "ratio": r304}),
        Row(f"dashboard polls answered 200 from the cache ({len(first):,} B body): requests/s",
            spread(rates("ours 200")),
            f"{spread(rates('bare 200 same size'))} (bare aiohttp 200, same {len(first):,} B body)",
            ratio_cell(rates("ours 200"), rates("bare 200 same size")), f"≥ {TARGET_200:.0%} of bare",
            verdict(r200 >= TARGET_200),
            {"ours": rates("ours 200"), "limit": rates("bare 200 same size"), "ratio": r200}),
        Row(f"dashboard 200 vs a bare handler with a {len(bare_body)} B body: requests/s", spread(rates("ours 200")),
            f"{spread(rates('bare 200'))} (bare aiohttp 200, {len(bare_body)} B)",
            ratio_cell(rates("ours 200"), rates("bare 200")), "(context)", "–",
            {"ours": rates("ours 200"), "limit": rates("bare 200")}),
        Row("dashboard 304: p50 / p99 latency, ms",
            f"{spread(lat('ours 304', 'p50_ms'), '{:.1f}')} / {spread(lat('ours 304', 'p99_ms'), '{:.1f}')}",
            f"{spread(lat('bare 304', 'p50_ms'), '{:.1f}')} / {spread(lat('bare 304', 'p99_ms'), '{:.1f}')}"),
        Row("dashboard 200: p50 / p99 latency, ms",
            f"{spread(lat('ours 200', 'p50_ms'), '{:.1f}')} / {spread(lat('ours 200', 'p99_ms'), '{:.1f}')}",
            f"{spread(lat('bare 200', 'p50_ms'), '{:.1f}')} / {spread(lat('bare 200', 'p99_ms'), '{:.1f}')}"),
    ]
    table = "\n".join(["| figure | ours | raw limit | ratio | target | verdict |", "|---|---|---|---|---|---|",
                       *("| " + " | ".join(row.cells()) + " |" for row in summary)])
    print(f"\n## median ({args.rounds} rounds), min–max\n\n{table}")
    print(f"\ncorrectness: non-2xx/3xx answers or socket errors {bad}; position moved during the run: {moved}")
    facts["loadavg_at_end"] = loadavg()
    report = {"benchmark": "dashboard", "machine": facts, "args": vars(args), "load_generator": tool,
              "dashboard_body_bytes": len(first), "bare_body_bytes": len(bare_body), "rows": rows_json(summary),
              "table_md": table, "rounds": [p.summary() for ps in phases.values() for p in ps],
              "correctness": {"bad_answers": bad, "position_moved": moved}}
    return (0 if bad == 0 and not moved else 1), report


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of each variant")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--events", type=int, default=20_000, help="events loaded before polling")
    parser.add_argument("--python-client", action="store_true", help="use the Python load generator even with wrk")
    add_common_args(parser)
    args = parser.parse_args(argv)
    if not 0 < args.seconds <= 300 or args.rounds < 1 or args.connections < 1:
        parser.error("need 0 < --seconds <= 300, a round and a connection")
    return args


def main() -> int:
    args = parse_args()
    return run_main(lambda servers, data_dir: benchmark(args, servers, data_dir), json_path=args.json)


if __name__ == "__main__":
    sys.exit(main())
