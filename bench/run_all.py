"""Run every benchmark in sequence and print one table; ``bench/run`` calls this.

    bench/run [--quick] [--only ingest,...,replay] [--profile] [--events N] [--seconds S] [--keep-data DIR]

Steps, each a subprocess that starts and stops its own ``qmstats serve`` (full / --quick):

* ingest     bench_ingest.py: single-event POSTs, 64 clients vs the HTTP ceiling, the naive handler and raw
             INSERT 1/tx (10 s × 3 / 3 s × 1)
* batch      bench_batch.py: 1000-event POSTs vs raw COPY of 1000-row batches (10 s × 3 / 3 s × 1)
* dashboard  bench_dashboard.py: 304 and cached 200 polls vs a bare aiohttp handler (10 s × 3 / 3 s × 1)
* lag        bench_lag.py: projection lag at 2000 events/s offered, serve (workers + projector process) and
             --workers 1 (20 s / 3 s)
* replica    bench_replica.py: the same read mix from a streaming replica and from the primary under steady ingest,
             and the replica's lag under steady and flat-out ingest (10 s × 3 / 3 s × 1)
* flags      bench_flags.py: flag projection vs dashboard projection from 0 on one log (20,000 × 3 / 5,000 × 1),
             then both projections' lag under live ingest at 2,000 and 3,000 events/s, serve defaults (5 s / 3 s)
* load       load_log.py: 1,000,000 / 20,000 generated events through POST /v1/events into a kept data dir
* replay     bench_replay.py on that log: rebuild (2 rounds), export, at_position, provenance, serve RSS (3 / 1 rounds)
* log        bench_log.py: ingest with and without the integrator (same run, interleaved), then on the loaded log
             proof / receipt / consistency / tile latency and tree storage per event (5 s × 3 / 3 s × 1)

Raw results go to bench/results/latest.json (git-ignored), each step's output to bench/results/<step>.log and,
with ``--profile``, py-spy raw profiles of the server to bench/results/profiles/ with their top functions.
The loaded data directory is a temporary directory removed at the end unless ``--keep-data DIR`` is given.
Every step is bounded in time; the whole run stops by itself.
"""

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from common import REPO, RESULTS_DIR, loadavg, markdown_table, profile_top

BENCH = REPO / "bench"
STEPS = ("ingest", "batch", "dashboard", "lag", "replica", "flags", "load", "replay", "log")
STEP_TIMEOUT = {"ingest": 600, "batch": 900, "dashboard": 900, "lag": 600, "replica": 900, "flags": 900,
                "load": 2400, "replay": 2400, "log": 1800}


def commands(args: argparse.Namespace, data_dir: Path) -> dict[str, list[str]]:
    quick = args.quick
    seconds = f"{args.seconds:g}" if args.seconds else ("3" if quick else "10")
    rounds = "1" if quick else "3"
    events = str(args.events or (20_000 if quick else 1_000_000))
    return {
        "ingest": ["bench_ingest.py", "--seconds", seconds, "--rounds", rounds],
        "batch": ["bench_batch.py", "--seconds", seconds, "--rounds", rounds],
        "dashboard": ["bench_dashboard.py", "--seconds", seconds, "--rounds", rounds,
                      "--events", "5000" if quick else "20000"],
        "lag": ["bench_lag.py", "--seconds", f"{args.seconds:g}" if args.seconds else ("3" if quick else "20"),
                "--warmup", "1" if quick else "3"],
        "replica": ["bench_replica.py", "--seconds", seconds, "--rounds", rounds,
                    "--events", "5000" if quick else "20000", "--burst-seconds", "2" if quick else "5"],
        "flags": ["bench_flags.py", "--events", "5000" if quick else "20000", "--rounds", rounds,
                  "--seconds", "3" if quick else "5", "--warmup", "1" if quick else "2"],
        "load": ["load_log.py", "--events", events, "--data-dir", str(data_dir)],
        "replay": ["bench_replay.py", "--data-dir", str(data_dir), "--rounds", rounds,
                   "--rebuild-rounds", "1" if quick else "2"],
        "log": ["bench_log.py", "--seconds", "3" if quick else "5", "--rounds", rounds,
                "--max-events", "20000" if quick else "60000", "--samples", "50" if quick else "200",
                *(["--log-dir", str(data_dir)] if data_dir.exists() else [])],
    }


class LoadWatch:
    """Samples the 1-minute load average every 10 s while the run goes on."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while True:
            self.samples.append(os.getloadavg()[0])
            if self._stop.wait(10):
                return

    def __enter__(self) -> "LoadWatch":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def summary(self) -> dict[str, float]:
        if not self.samples:
            return {}
        return {"min": round(min(self.samples), 2), "median": round(statistics.median(self.samples), 2),
                "max": round(max(self.samples), 2), "samples": len(self.samples)}


def run_step(name: str, argv: list[str], json_path: Path, profile_dir: Path | None) -> tuple[int, float]:
    """Run one benchmark script, teeing its output to the console and bench/results/<name>.log."""
    cmd = [sys.executable, str(BENCH / argv[0]), *argv[1:], "--json", str(json_path)]
    if profile_dir is not None:
        cmd += ["--profile-dir", str(profile_dir)]
    log_path = RESULTS_DIR / f"{name}.log"
    print(f"\n=== {name}: {' '.join(cmd[1:])}", flush=True)
    started = time.perf_counter()
    with log_path.open("w") as log:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=REPO, text=True,
                                start_new_session=True)
        timer = threading.Timer(STEP_TIMEOUT[name], lambda: proc.send_signal(signal.SIGTERM))
        timer.start()
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                sys.stdout.write(line)
                sys.stdout.flush()
                log.write(line)
            proc.wait()
        except KeyboardInterrupt:
            proc.send_signal(signal.SIGTERM)  # the script cleans up like Ctrl-C
            proc.wait(timeout=120)
            raise
        finally:
            timer.cancel()
    return proc.returncode, time.perf_counter() - started


def aggregate_profiles(profile_dir: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for raw in sorted(profile_dir.glob("*.txt")):
        if raw.name.endswith(".top.txt"):
            continue
        top = profile_top(raw, 25)
        out[raw.stem] = top
        lines = [f"# {raw.name}: {top.get('samples', [('total', 0)])[0][1]:.0f} samples", "", "## self"]
        lines += [f"{share:5.1f}%  {name}" for name, share in top["self"]]
        lines += ["", "## inclusive"] + [f"{share:5.1f}%  {name}" for name, share in top["inclusive"]]
        (profile_dir / f"{raw.stem}.top.txt").write_text("\n".join(lines) + "\n")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="smoke run: 20k events, 3 s phases, 1 round")
    parser.add_argument("--only", help="comma-separated subset of " + ",".join(STEPS))
    parser.add_argument("--events", type=int, help="events in the loaded log (default 1,000,000; --quick 20,000)")
    parser.add_argument("--seconds", type=float, help="seconds per timed phase (default 10, lag 20; --quick 3)")
    parser.add_argument("--profile", action="store_true", help="py-spy the server in each measured phase")
    parser.add_argument("--keep-data", help="load the log into this directory and keep it")
    args = parser.parse_args()
    steps = [s.strip() for s in args.only.split(",")] if args.only else list(STEPS)
    if not set(steps) <= set(STEPS):
        parser.error(f"--only takes {', '.join(STEPS)}")
    if "replay" in steps and "load" not in steps and not args.keep_data:
        parser.error("replay needs the load step, or --keep-data DIR holding a loaded log")
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.default_int_handler)

    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    profile_dir = RESULTS_DIR / "profiles" if args.profile else None
    if profile_dir is not None:
        shutil.rmtree(profile_dir, ignore_errors=True)
        profile_dir.mkdir(parents=True)
    temp_root = None if args.keep_data else Path(tempfile.mkdtemp(prefix="qmstats-bench-run-"))
    data_dir = Path(args.keep_data).resolve() if args.keep_data else temp_root / "log"  # type: ignore[operator]
    started_at = datetime.now(UTC)
    started = time.perf_counter()
    results: dict[str, Any] = {}
    status = 0
    try:
        with LoadWatch() as watch:
            for name in steps:
                argv = commands(args, data_dir)[name]
                json_path = RESULTS_DIR / f"{name}.json"
                json_path.unlink(missing_ok=True)
                code, seconds = run_step(name, argv, json_path, profile_dir)
                report = orjson.loads(json_path.read_bytes()) if json_path.exists() else None
                results[name] = {"exit": code, "seconds": round(seconds, 1), "command": argv, "report": report}
                status = status or code
                if name == "load" and code != 0:
                    print("load failed: skipping replay and log", flush=True)
                    break
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        status = 130
    finally:
        if temp_root is not None:
            shutil.rmtree(temp_root, ignore_errors=True)
    total = time.perf_counter() - started
    rows = [row for name in steps if (r := results.get(name)) and r["report"] for row in r["report"].get("rows", [])]
    machine = next((r["report"]["machine"] for r in results.values() if r["report"] and "machine" in r["report"]),
                   {})
    profiles = aggregate_profiles(profile_dir) if profile_dir is not None else {}
    load = watch.summary()
    latest = {"started": started_at.isoformat(), "seconds": round(total, 1), "quick": args.quick, "steps": results,
              "rows": rows, "machine": machine, "loadavg_1min_during_run": load, "loadavg_at_end": loadavg(),
              "profiles": profiles}
    (RESULTS_DIR / "latest.json").write_bytes(orjson.dumps(latest, option=orjson.OPT_INDENT_2))
    print(f"\n# qmstats benchmarks — {started_at:%Y-%m-%d %H:%M} UTC, {'quick' if args.quick else 'full'} run, "
          f"{total / 60:.1f} min")
    if machine:
        print(f"machine: {machine.get('cpus')} CPUs ({machine.get('cpu_model')}), {machine.get('memory_gib')} GiB, "
              f"PostgreSQL {machine.get('postgresql')}, Python {machine.get('python')}")
    print(f"load average (1 min) during the run: {load}; steps: "
          + ", ".join(f"{n} {r['seconds']:.0f} s (exit {r['exit']})" for n, r in results.items()) + "\n")
    print(markdown_table(rows))
    print(f"\nraw results: {RESULTS_DIR / 'latest.json'}")
    return status


if __name__ == "__main__":
    sys.exit(main())
