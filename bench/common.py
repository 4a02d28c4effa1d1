"""What every benchmark in bench/ shares: the server under test, keys, CPU/RSS sampling, statistics, tables.

The scripts in bench/ run from the repository root as ``.venv/bin/python bench/<script>.py``; Python then
puts bench/ first on sys.path, so they ``import common``.

* ``QmstatsServer``: ``qmstats serve`` as a subprocess on 127.0.0.1 (a free port) with its own durable
  embedded PostgreSQL (production defaults: fsync and synchronous_commit on) in a data directory; rate
  limits lifted, log level warning. ``stop()`` sends SIGTERM and makes sure PostgreSQL is down too.
* Keys with ``qmstats keys create``, campaign 2017 opened through the API, the postgres superuser over
  the server's Unix socket (from postmaster.pid).
* CPU seconds per process group (client, qmstats, PostgreSQL) and RSS sampling with psutil.
* median (min–max), nearest-rank percentiles, the summary rows every script hands to ``bench/run``.
* ``run_main``: the Ctrl-C/SIGTERM-safe wrapper that always stops the servers and removes temp dirs.
"""

import argparse
import asyncio
import contextlib
import importlib
import importlib.metadata
import itertools
import math
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import orjson
import psutil

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
factories = importlib.import_module("tests.factories")  # tests/ is not an installed package

QMSTATS = Path(sys.executable).parent / "qmstats"
PY_SPY = Path(sys.executable).parent / "py-spy"
HOST = "127.0.0.1"
CST = timezone(timedelta(hours=8))
CAMPAIGN = "2017"
CAMPAIGN_WINDOW = (date(2017, 9, 1), date(2017, 9, 30))
RESULTS_DIR = REPO / "bench" / "results"


# --------------------------------------------------------------------------- the server under test


@dataclass(frozen=True, slots=True)
class Postmaster:
    """What postmaster.pid says: line 1 pid, line 4 port, line 5 socket directory."""

    pid: int
    port: int
    socket_dir: str


def serve_workers() -> int:
    """How many API processes ``qmstats serve`` runs by default here (the CPUs this process may use)."""
    return len(os.sched_getaffinity(0))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def server_env(**extra: str) -> dict[str, str]:
    """The environment for qmstats: inherited QMSTATS_* dropped (no external database), limits off."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("QMSTATS_")}
    env.update(QMSTATS_RATE_LIMIT_PER_SECOND="1000000000", QMSTATS_RATE_LIMIT_BURST="1000000000",
               QMSTATS_LOG_LEVEL="warning")
    env.update(extra)
    return env


class QmstatsServer:
    """``qmstats serve`` as a subprocess on its own embedded PostgreSQL in ``data_dir``."""

    def __init__(self, data_dir: Path, *, serve_args: Sequence[str] = (), env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.log_path = data_dir / "serve.log"
        self._serve_args = list(serve_args)
        self._env = server_env(**(env or {}))
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        """The serve process id."""
        assert self._proc is not None
        return self._proc.pid

    def start(self) -> None:
        """Launch serve in its own session, so a terminal Ctrl-C reaches only the benchmark."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                [str(QMSTATS), "serve", "--data-dir", str(self.data_dir), "--port", str(self.port),
                 *self._serve_args],
                stdout=log, stderr=subprocess.STDOUT, env=self._env, start_new_session=True)

    def status(self) -> str:
        """Whether serve and its PostgreSQL are still running, for error messages."""
        serve = "not started" if self._proc is None else (
            "running" if self._proc.poll() is None else f"exited with {self._proc.returncode}")
        pid_file = self.data_dir / "pgdata" / "postmaster.pid"
        postgres = "running" if pid_file.exists() and psutil.pid_exists(int(pid_file.read_text().split()[0])) \
            else "not running"
        return f"qmstats serve: {serve}; PostgreSQL: {postgres}"

    def log_tail(self, lines: int = 30) -> str:
        """The end of serve's output, for error messages."""
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    async def wait_ready(self, session: aiohttp.ClientSession, limit: float = 180.0) -> None:
        """Poll /readyz until it answers 200; fail if serve exits or ``limit`` seconds pass."""
        try:
            async with asyncio.timeout(limit):
                for attempt in itertools.count():
                    if await self._ready(session):
                        return
                    await asyncio.sleep(min(0.05 * 2**attempt, 0.5))
        except TimeoutError:
            raise RuntimeError(f"qmstats serve not ready after {limit:.0f} s:\n{self.log_tail()}") from None

    async def _ready(self, session: aiohttp.ClientSession) -> bool:
        assert self._proc is not None
        if self._proc.poll() is not None:
            raise RuntimeError(f"qmstats serve exited with {self._proc.returncode}:\n{self.log_tail()}")
        try:
            async with session.get(f"{self.url}/readyz") as resp:
                return resp.status == 200
        except aiohttp.ClientError:
            return False

    def cli(self, *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        """Run ``qmstats <args> --data-dir <data_dir>`` (it joins this server's PostgreSQL)."""
        return subprocess.run([str(QMSTATS), *args, "--data-dir", str(self.data_dir)], capture_output=True,
                              text=True, env=self._env, timeout=timeout, check=False)

    def create_key(self, role: str, name: str, region: str | None = None) -> str:
        """``qmstats keys create``; the token is the last line of its stdout."""
        args = ["keys", "create", "--role", role, "--name", name]
        if region is not None:
            args += ["--region", region]
        done = self.cli(*args)
        if done.returncode != 0 or not done.stdout.strip():
            raise RuntimeError(f"keys create --role {role} failed ({done.returncode}): {done.stderr.strip()}")
        return done.stdout.strip().splitlines()[-1]

    def postmaster(self) -> Postmaster:
        """Read the embedded server's postmaster.pid."""
        lines = (self.data_dir / "pgdata" / "postmaster.pid").read_text().splitlines()
        return Postmaster(int(lines[0]), int(lines[3]), lines[4])

    def superuser_url(self) -> str:
        """The postgres superuser on the qmstats database, over the Unix socket, as a URL."""
        pm = self.postmaster()
        return f"postgresql://postgres@/qmstats?host={pm.socket_dir}&port={pm.port}"

    async def connect_superuser(self) -> asyncpg.Connection:
        """The postgres superuser on the qmstats database, over the Unix socket."""
        pm = self.postmaster()
        return await asyncpg.connect(host=pm.socket_dir, port=pm.port, user="postgres", database="qmstats")

    def processes(self) -> list[psutil.Process]:
        """serve and every process it forked (API workers, the projector); PostgreSQL is not among them."""
        root = psutil.Process(self.pid)
        return [root, *root.children(recursive=True)]

    def rss_bytes(self) -> int:
        """Resident memory of all serve processes now (shared pages counted in each, so an upper bound)."""
        return sum(int(p.memory_info().rss) for p in self.processes())

    def pss_bytes(self) -> int:
        """Proportional memory of all serve processes (each shared page split among its sharers)."""
        return sum(int(p.memory_full_info().pss) for p in self.processes())

    def stop(self) -> None:
        """SIGTERM serve and wait (it stops its PostgreSQL on exit); stop PostgreSQL ourselves if it did not."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=10)
        pid_file = self.data_dir / "pgdata" / "postmaster.pid"
        if pid_file.exists():
            pid = int(pid_file.read_text().splitlines()[0])
            if psutil.pid_exists(pid):
                os.kill(pid, signal.SIGINT)  # PostgreSQL "fast" shutdown
                try:
                    psutil.Process(pid).wait(timeout=60)
                except psutil.TimeoutExpired:
                    os.kill(pid, signal.SIGKILL)


@dataclass(frozen=True, slots=True)
class Keys:
    """Bearer tokens for each role the benchmarks use."""

    admin: str
    reporter: str
    viewer: str
    auditor: str


def bearer(token: str) -> dict[str, str]:
    """The Authorization header for a token."""
    return {"Authorization": f"Bearer {token}"}


async def create_keys(server: QmstatsServer, roles: Iterable[str] = ("admin", "reporter", "viewer", "auditor")) \
        -> Keys:
    """One key per role (the reporter is scoped to the nation, 000000); missing roles get an empty token."""
    tokens: dict[str, str] = {}
    for role in roles:
        region = "000000" if role == "reporter" else None
        tokens[role] = await asyncio.to_thread(server.create_key, role, f"bench {role}", region)
    return Keys(**{r: tokens.get(r, "") for r in ("admin", "reporter", "viewer", "auditor")})


async def open_campaign(session: aiohttp.ClientSession, url: str, admin_token: str) -> None:
    """Open campaign 2017 (September 2017) with the admin key; an already open campaign is fine."""
    async with session.post(f"{url}/v1/campaigns", json=factories.CAMPAIGN, headers=bearer(admin_token)) as resp:
        if resp.status not in (200, 201, 409):
            raise RuntimeError(f"opening campaign 2017 answered {resp.status}: {await resp.text()}")


async def scrape(session: aiohttp.ClientSession, url: str, wanted: Iterable[str]) -> dict[str, float]:
    """Selected series (exact names, labels included) from /metrics."""
    names = set(wanted)
    async with session.get(f"{url}/metrics") as resp:
        text = await resp.text()
    values: dict[str, float] = {}
    for line in text.splitlines():
        name, _, value = line.rpartition(" ")
        if name in names:
            values[name] = float(value)
    return values


async def scrape_all(url: str, wanted: Iterable[str], processes: int) -> dict[str, float]:
    """Counters summed over every API process of ``serve --workers N`` (each has its own /metrics).

    Fresh connections reach the workers as the kernel spreads them; ``qmstats_process_id`` tells which
    answered. Raises when not every worker was reached within a bounded number of tries.
    """
    names = set(wanted) | {"qmstats_process_id"}
    seen: dict[float, dict[str, float]] = {}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as fresh:
        for _ in range(50 * processes):
            values = await scrape(fresh, url, names)
            seen[values.get("qmstats_process_id", 0.0)] = values
            if len(seen) >= processes:
                break
    if len(seen) < processes:
        raise RuntimeError(f"/metrics answered from {len(seen)} of {processes} processes")
    return {name: sum(v.get(name, 0.0) for v in seen.values()) for name in wanted}


# --------------------------------------------------------------------------- CPU and memory


def process_groups(server: QmstatsServer, extra: dict[str, list[int]] | None = None) -> dict[str, list[int]]:
    """The benchmark client, the qmstats server, every PostgreSQL process (and any ``extra`` groups)."""
    postmaster = psutil.Process(server.postmaster().pid)
    groups = {"client": [os.getpid()], "qmstats": [p.pid for p in server.processes()],
              "postgres": [postmaster.pid] + [c.pid for c in postmaster.children(recursive=True)]}
    groups.update(extra or {})
    return groups


def cpu_seconds(pids: dict[str, list[int]]) -> dict[str, dict[int, float]]:
    """User+system CPU seconds of each process, grouped by a label."""
    out: dict[str, dict[int, float]] = {}
    for label, group in pids.items():
        out[label] = {}
        for pid in group:
            try:
                t = psutil.Process(pid).cpu_times()
            except psutil.Error:
                continue
            out[label][pid] = t.user + t.system
    return out


def cpu_cores(before: dict[str, dict[int, float]], after: dict[str, dict[int, float]],
              elapsed: float) -> dict[str, float]:
    """Cores used per group during a phase (processes that exited during it are not counted)."""
    return {label: sum(t - before.get(label, {}).get(pid, 0.0) for pid, t in group.items()) / elapsed
            for label, group in after.items()}


class CpuMeter:
    """CPU cores used by each process group between ``start()`` and ``stop()``.

    A thread re-reads the groups every ``interval`` seconds, so processes that start during the phase (a
    PostgreSQL backend, a CLI subprocess) count up to their last sample even when they exit before ``stop()``.
    """

    def __init__(self, groups: Callable[[], dict[str, list[int]]], interval: float = 0.25) -> None:
        self._groups = groups
        self._interval = interval
        self._first: dict[tuple[str, int], float] = {}
        self._last: dict[tuple[str, int], float] = {}
        self._started = 0.0
        self._wall_start = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self, initial: bool = False) -> None:
        try:
            groups = self._groups()
        except psutil.Error:
            return
        for label, pids in groups.items():
            for pid in pids:
                try:
                    proc = psutil.Process(pid)
                    t = proc.cpu_times()
                    created = proc.create_time()
                except psutil.Error:
                    continue
                key = (label, pid)
                if key not in self._first:
                    # Born during the phase: all its CPU counts; seen late but older: count from now.
                    self._first[key] = 0.0 if not initial and created >= self._wall_start else t.user + t.system
                self._last[key] = t.user + t.system

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._sample()

    def start(self) -> None:
        self._first.clear()
        self._last.clear()
        self._wall_start = time.time()
        self._sample(initial=True)
        self._started = time.perf_counter()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self) -> dict[str, float]:
        elapsed = time.perf_counter() - self._started
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._sample()
        cores: dict[str, float] = {}
        for (label, pid), last in self._last.items():
            cores[label] = cores.get(label, 0.0) + (last - self._first[(label, pid)]) / elapsed
        return {k: round(v, 2) for k, v in cores.items()}


class RssSampler:
    """Samples a process's RSS (with its children's, if asked) every ``interval`` seconds in a thread."""

    def __init__(self, pid: int, interval: float = 0.1, *, children: bool = False) -> None:
        self._pid = pid
        self._interval = interval
        self._children = children
        self.peak = 0
        self.last = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _rss(self) -> int:
        proc = psutil.Process(self._pid)
        total = proc.memory_info().rss
        if self._children:
            for child in proc.children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    total += child.memory_info().rss
        return int(total)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.last = self._rss()
            except psutil.Error:
                return
            self.peak = max(self.peak, self.last)
            self.samples += 1
            self._stop.wait(self._interval)

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


MIB = 2**20


# --------------------------------------------------------------------------- statistics and tables


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (NaN when empty)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1))]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def spread(values: Sequence[float], fmt: str = "{:,.0f}") -> str:
    """'median (min–max)', or the single value when there is one."""
    if not values:
        return "–"
    if len(values) == 1:
        return fmt.format(values[0])
    return f"{fmt.format(statistics.median(values))} ({fmt.format(min(values))}–{fmt.format(max(values))})"


def ratio_of_medians(ours: Sequence[float], limit: Sequence[float]) -> float:
    m = median(limit)
    return median(ours) / m if m else float("nan")


def per_round(ours: Sequence[float], limit: Sequence[float]) -> list[float]:
    """ours/limit of each round (rounds are interleaved, so each pair ran close together)."""
    return [o / r if r else float("nan") for o, r in zip(ours, limit, strict=False)]


def verdict(ok: bool | None) -> str:
    return "–" if ok is None else ("pass" if ok else "falls short")


@dataclass(slots=True)
class Row:
    """One line of the summary table: figure | ours | limit | ratio | target | verdict."""

    figure: str
    ours: str
    limit: str = "–"
    ratio: str = "–"
    target: str = "–"
    verdict: str = "–"
    values: dict[str, Any] = field(default_factory=dict)

    def cells(self) -> list[str]:
        return [self.figure, self.ours, self.limit, self.ratio, self.target, self.verdict]


HEADER = ("figure", "ours", "limit (same run)", "ratio", "target", "verdict")


def markdown_table(rows: Iterable[Row | dict[str, Any]], header: Sequence[str] = HEADER) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = row.cells() if isinstance(row, Row) else [row[k] for k in
                                                           ("figure", "ours", "limit", "ratio", "target", "verdict")]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


def rows_json(rows: Iterable[Row]) -> list[dict[str, Any]]:
    return [asdict(r) for r in rows]


def ratio_cell(ours: Sequence[float], limit: Sequence[float]) -> str:
    """'**0.53×** (per round 0.50, 0.55, 0.61)'."""
    rounds = per_round(ours, limit)
    text = f"**{ratio_of_medians(ours, limit):.2f}×**"
    if len(rounds) > 1:
        text += " (per round " + ", ".join(f"{r:.2f}" for r in rounds) + ")"
    return text


# --------------------------------------------------------------------------- machine facts


def cpu_model() -> str:
    """The CPU's model name (Linux), else whatever platform knows."""
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")),
                platform.processor())


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def machine_facts(pg_version: str, pg_settings: dict[str, str]) -> dict[str, Any]:
    """What the figures depend on."""
    try:
        loop = f"uvloop {importlib.metadata.version('uvloop')}"
    except importlib.metadata.PackageNotFoundError:
        loop = "asyncio"
    return {"date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "cpus": os.cpu_count(), "cpu_model": cpu_model(),
            "memory_gib": round(psutil.virtual_memory().total / 2**30, 1), "kernel": platform.release(),
            "python": platform.python_version(), "postgresql": pg_version, "pg_settings": pg_settings,
            "aiohttp": aiohttp.__version__, "asyncpg": asyncpg.__version__, "client_loop": loop,
            "loadavg_at_start": loadavg()}


def print_header(title: str, facts: dict[str, Any]) -> None:
    settings = ", ".join(f"{k}={v}" for k, v in facts["pg_settings"].items())
    print(f"# {title} — {facts['date']}")
    print(f"machine:    {facts['cpus']} CPUs ({facts['cpu_model']}), {facts['memory_gib']} GiB, "
          f"kernel {facts['kernel']}, load average at start {facts['loadavg_at_start']}")
    print(f"software:   Python {facts['python']}, PostgreSQL {facts['postgresql']}, aiohttp {facts['aiohttp']}, "
          f"asyncpg {facts['asyncpg']}, load generator loop: {facts['client_loop']}")
    print(f"postgres:   {settings}", flush=True)


async def pg_facts(admin: asyncpg.Connection) -> tuple[str, dict[str, str]]:
    names = ("fsync", "synchronous_commit", "wal_sync_method", "full_page_writes", "shared_buffers", "commit_delay")
    settings = {n: await admin.fetchval(f"SHOW {n}") for n in names}
    return await admin.fetchval("SHOW server_version"), settings


async def header(title: str, admin: asyncpg.Connection) -> dict[str, Any]:
    """Print the machine/software header and return the facts."""
    version, settings = await pg_facts(admin)
    facts = machine_facts(version, settings)
    print_header(title, facts)
    return facts


# --------------------------------------------------------------------------- profiling


class PySpy:
    """``py-spy record --format raw`` on a process while a block runs, at most ``seconds`` (needs ptrace rights)."""

    def __init__(self, pid: int, out: Path, seconds: float, rate: int = 100) -> None:
        self.out = out
        self._args = [str(PY_SPY), "record", "--format", "raw", "--pid", str(pid), "--output", str(out),
                      "--duration", str(max(1, round(seconds))), "--rate", str(rate), "--nonblocking",
                      "--subprocesses"]
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> "PySpy":
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self._proc = subprocess.Popen(self._args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        return self

    def __exit__(self, *exc: object) -> None:
        """The measured work is over: stop sampling now (py-spy writes what it has on SIGINT)."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGINT)
        try:
            self._proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()


def profile_top(raw: Path, top: int = 15) -> dict[str, list[tuple[str, float]]]:
    """Aggregate a py-spy raw (collapsed stacks) file by function: self and inclusive share of samples."""
    self_counts: dict[str, int] = {}
    incl_counts: dict[str, int] = {}
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [_function(f) for f in stack.split(";")]
        if frames:
            self_counts[frames[-1]] = self_counts.get(frames[-1], 0) + count
        for name in set(frames):
            incl_counts[name] = incl_counts.get(name, 0) + count
    if not total:
        return {"self": [], "inclusive": []}

    def ranked(counts: dict[str, int]) -> list[tuple[str, float]]:
        return [(name, round(100 * n / total, 1)) for name, n in sorted(counts.items(), key=lambda kv: -kv[1])[:top]]

    return {"samples": [("total", float(total))], "self": ranked(self_counts), "inclusive": ranked(incl_counts)}


def _function(frame: str) -> str:
    # py-spy frames look like "apply (projections/fold.py:152)" or "<module> (x.py:3)"; drop the line number.
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "/work/main/", "lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{name} ({path})" if path else name


# --------------------------------------------------------------------------- running a benchmark


def new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def add_common_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", help="also write the figures to this JSON file")
    parser.add_argument("--profile-dir", help="record py-spy raw profiles of serve into this directory")


def write_json(path: str | None, report: dict[str, Any]) -> None:
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY,
                                            default=str))
        print(f"wrote {path}")


def run_main(body: Callable[[list[QmstatsServer], Path], Coroutine[Any, Any, tuple[int, dict[str, Any]]]],
             *, json_path: str | None, data_dir: Path | None = None) -> int:
    """Run ``body(servers, data_dir)`` on uvloop; stop every server it registered and remove a temp dir, always.

    ``data_dir`` given: it is kept (a loaded log others reuse). Not given: a temp dir is made and removed.
    SIGINT and SIGTERM both clean up like Ctrl-C, even when started in the background.
    """
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.default_int_handler)
    temp = data_dir is None
    directory = Path(tempfile.mkdtemp(prefix="qmstats-bench-")) if data_dir is None else data_dir
    servers: list[QmstatsServer] = []
    try:
        with asyncio.Runner(loop_factory=new_loop) as runner:
            status, report = runner.run(body(servers, directory))
        report.setdefault("loadavg_at_end", loadavg())
        write_json(json_path, report)
        return status
    except KeyboardInterrupt:
        print("\ninterrupted; stopping the server", file=sys.stderr)
        return 130
    except Exception:
        for server in servers:
            print(f"--- {server.status()}; serve output (tail) ---\n{server.log_tail()}", file=sys.stderr)
        raise
    finally:
        for server in servers:
            server.stop()
        if temp:
            shutil.rmtree(directory, ignore_errors=True)


async def start_server(servers: list[QmstatsServer], data_dir: Path, session: aiohttp.ClientSession, *,
                       serve_args: Sequence[str] = (), env: dict[str, str] | None = None) -> QmstatsServer:
    """Start serve on ``data_dir`` (registered in ``servers`` for cleanup) and wait until it is ready."""
    server = QmstatsServer(data_dir, serve_args=serve_args, env=env)
    servers.append(server)
    server.start()
    await server.wait_ready(session)
    return server


async def wait_projected(session: aiohttp.ClientSession, url: str, position: int, limit: float = 600.0) -> float:
    """Wait until /metrics shows the projection at ``position`` or beyond; returns the seconds waited."""
    started = time.perf_counter()
    name = "qmstats_projection_position"
    while True:
        got = (await scrape(session, url, [name])).get(name, 0.0)
        if got >= position:
            return time.perf_counter() - started
        if time.perf_counter() - started > limit:
            raise RuntimeError(f"projection at {got:.0f}, not {position}, after {limit:.0f} s")
        await asyncio.sleep(0.2)


async def wait_followers(admin: asyncpg.Connection, position: int, limit: float = 900.0, *,
                         tree: bool = True) -> float:
    """Wait until the flags projection and (``tree``) the integrator's signed checkpoint reach ``position`` too
    (read as the superuser); the seconds waited. A benchmark started while they still catch up on a loaded log
    would measure their work as much as its own: they share the machine's two cores."""
    started = time.perf_counter()
    while True:
        flags = await admin.fetchval("SELECT position FROM quality_checkpoint WHERE name = 'flags'")
        signed = await admin.fetchval("SELECT coalesce(max(tree_size), 0) FROM log_checkpoints") if tree else flags
        if flags >= position and signed >= position:
            return time.perf_counter() - started
        if time.perf_counter() - started > limit:
            raise RuntimeError(f"flags at {flags}, signed tree at {signed}, not {position}, after {limit:.0f} s")
        await asyncio.sleep(0.5)


def client_session(connections: int = 100, timeout: float = 60.0) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout),
                                 connector=aiohttp.TCPConnector(limit=connections))


def fmt_ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f}"


class BareApp:
    """bench/bare_app.py as a subprocess."""

    def __init__(self, *, database_url: str | None = None, workers: int = 1) -> None:
        self.port = free_port()
        self.base = f"http://{HOST}:{self.port}"
        self._extra = (["--database-url", database_url] if database_url else []) + ["--workers", str(workers)]
        self.url = f"http://{HOST}:{self.port}/dashboard"
        self.big_url = f"http://{HOST}:{self.port}/dashboard-big"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, big_bytes: int = 18_000) -> None:
        self.proc = subprocess.Popen([sys.executable, str(REPO / "bench" / "bare_app.py"), "--port", str(self.port),
                                      "--big-bytes", str(big_bytes), *self._extra],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)

    async def wait_ready(self, session: aiohttp.ClientSession) -> None:
        for _ in range(200):
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"bare_app exited with {self.proc.returncode}")
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(self.url) as resp:
                    if resp.status == 200:
                        return
            await asyncio.sleep(0.1)
        raise RuntimeError("bare_app did not answer")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
