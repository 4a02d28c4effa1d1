"""The same read benchmark served from a streaming replica and from the primary, in one run; lag under ingest.

Run from the repository root:

    .venv/bin/python bench/bench_replica.py [--seconds 10] [--rounds 3] [--connections 32] [--ingest-rate 500]

1. Starts ``qmstats serve`` (the writer: appends and projector) on its own durable embedded PostgreSQL,
   loads ``--events`` generated events, then makes a real streaming replica of that server
   (``pg_basebackup -R -X stream`` and a second postmaster, tests/pg.py's ``StreamingReplica``).
2. Starts two read-only API processes with ``--no-projector`` on the same primary: "primary" reads from
   the primary, "replica" with ``--replica URL`` reads from the standby. Neither writes.
3. Each round runs the same read mix against each of them in turn for ``--seconds`` at ``--connections``
   concurrent keep-alive clients, while a steady ingest of ``--ingest-rate`` events/s goes to the writer
   (so the projection moves and the response caches keep turning over, as on a live campaign day). The mix
   is what a wall screen does per poll plus an auditor's page: national dashboard, a province dashboard,
   a daily series, reporting completeness, a page of the log.
4. Finally ``--burst-seconds`` of ingest as fast as the writer takes 1000-event batches, with the replica's lag
   sampled from the replica API's /metrics every 100 ms (lag under load).

Figures: read requests/s from each source (median of rounds and the ratio replica ÷ primary), p50/p99, share
answered by the replica (qmstats_reads_total), replica lag (positions, seconds) during the steady and the
burst phases, and what the rate means in wall screens polling every 5 s.

Both read processes, the writer, both PostgreSQL servers and the load generator share this machine's cores: the
ratio says what reading from a standby costs or saves on the same hardware; a replica on its own host adds its
whole capacity (docs/scaling.md).
"""

import argparse
import asyncio
import contextlib
import importlib
import itertools
import random
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import orjson
from common import (
    CAMPAIGN,
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
    ratio_cell,
    ratio_of_medians,
    rows_json,
    run_main,
    scrape,
    spread,
    start_server,
    wait_projected,
)
from load_log import load_events

test_pg = importlib.import_module("tests.pg")
factories = importlib.import_module("tests.factories")

PROVINCES = ("110000", "120000", "130000", "140000", "150000", "210000", "220000", "230000", "310000", "320000",
             "330000", "340000", "350000", "360000", "370000", "410000", "420000", "430000", "440000", "450000",
             "460000", "500000", "510000", "520000", "530000", "540000", "610000", "620000", "630000", "640000",
             "650000")
METRICS = ("dens_busted", "personnel", "seized_value_yuan", "participants", "batches_sampled")
SCREEN_POLL = 5.0  # seconds between two polls of one wall screen
MIX_PER_SCREEN = 3  # a screen's poll: dashboard, series, completeness


@dataclass
class ReadPhase:
    source: str
    requests: int = 0
    elapsed: float = 0.0
    bad: int = 0
    latencies: list[float] = field(default_factory=list)
    replica_share: float = 0.0

    @property
    def rate(self) -> float:
        return self.requests / self.elapsed if self.elapsed else 0.0

    def summary(self) -> dict[str, Any]:
        return {"source": self.source, "requests": self.requests, "seconds": round(self.elapsed, 2),
                "rate": round(self.rate, 1), "p50_ms": round(percentile(self.latencies, 0.5) * 1000, 2),
                "p99_ms": round(percentile(self.latencies, 0.99) * 1000, 2), "bad": self.bad,
                "replica_share": round(self.replica_share, 3)}


def read_paths(rng: random.Random, head: int) -> str:
    """One request of the mix."""
    kind = rng.randrange(5)
    if kind == 0:
        return f"/v1/campaigns/{CAMPAIGN}/dashboard"
    if kind == 1:
        return f"/v1/campaigns/{CAMPAIGN}/dashboard?region={rng.choice(PROVINCES)}"
    if kind == 2:
        return f"/v1/campaigns/{CAMPAIGN}/series?metric={rng.choice(METRICS)}&region={rng.choice(PROVINCES)}"
    if kind == 3:
        day = rng.randint(1, 30)
        return f"/v1/campaigns/{CAMPAIGN}/completeness?region={rng.choice(PROVINCES)}&date=2017-09-{day:02d}"
    return f"/v1/events?after={rng.randrange(max(head - 5000, 1))}&limit=100"


async def read_load(session: aiohttp.ClientSession, url: str, headers: dict[str, str], connections: int,
                    seconds: float, source: str, head: int) -> ReadPhase:
    phase = ReadPhase(source)
    start = time.perf_counter()
    deadline = start + seconds

    async def worker(seed: int) -> None:
        rng = random.Random(seed)
        while time.perf_counter() < deadline:
            sent = time.perf_counter()
            try:
                async with session.get(url + read_paths(rng, head), headers=headers) as resp:
                    await resp.read()
                    status = resp.status
            except (aiohttp.ClientError, TimeoutError):
                status = 0
            phase.latencies.append(time.perf_counter() - sent)
            if status != 200:
                phase.bad += 1

    await asyncio.gather(*(worker(n) for n in range(connections)))
    phase.elapsed = time.perf_counter() - start
    phase.requests = len(phase.latencies)
    return phase


def batch_body(size: int, rng: random.Random) -> bytes:
    events = [factories.event(region=rng.choice(PROVINCES),
                              occurred_at=f"2017-09-{rng.randint(1, 30):02d}T10:00:00+08:00")
              for _ in range(size)]
    return orjson.dumps({"events": events})


class Ingest:
    """Posts events to the writer: a steady rate, or as fast as it answers 1000-event batches."""

    def __init__(self, session: aiohttp.ClientSession, url: str, token: str) -> None:
        self._session, self._url = session, f"{url}/v1/events"
        self._headers = {**bearer(token), "Content-Type": "application/json"}
        self.events = 0
        self.bad = 0
        self.last_position = 0
        self.answered: list[tuple[float, int]] = []
        """(when the POST was answered, its last_position) of every batch stored."""
        self._rng = random.Random(7)

    async def _post(self, size: int) -> None:
        async with self._session.post(self._url, data=batch_body(size, self._rng), headers=self._headers) as resp:
            body = await resp.read()
            if resp.status == 201:
                self.events += size
                position = orjson.loads(body)["last_position"]
                self.answered.append((time.perf_counter(), position))
                self.last_position = max(self.last_position, position)
            else:
                self.bad += 1

    async def steady(self, rate: float, stop: asyncio.Event) -> None:
        """``rate`` events/s in 10 batches a second until ``stop``."""
        size = max(1, round(rate / 10))
        tick = time.perf_counter()
        while not stop.is_set():
            await self._post(size)
            tick += 0.1
            await asyncio.sleep(max(0.0, tick - time.perf_counter()))

    async def flat_out(self, seconds: float, clients: int = 3) -> float:
        """1000-event batches from ``clients`` senders for ``seconds``; returns events/s."""
        deadline = time.perf_counter() + seconds
        before, started = self.events, time.perf_counter()

        async def sender() -> None:
            while time.perf_counter() < deadline:
                await self._post(1000)

        await asyncio.gather(*(sender() for _ in range(clients)))
        return (self.events - before) / (time.perf_counter() - started)


async def sample_lag(session: aiohttp.ClientSession, url: str, name: str, stop: asyncio.Event,
                     out: list[tuple[float, float]]) -> None:
    """(lag positions, lag seconds) of the replica every 100 ms, as the replica API's /metrics reports them."""
    series = [f'qmstats_replica_lag_positions{{replica="{name}"}}', f'qmstats_replica_lag_seconds{{replica="{name}"}}']
    while not stop.is_set():
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            values = await scrape(session, url, series)
            if len(values) == 2:
                out.append((values[series[0]], values[series[1]]))
        await asyncio.sleep(0.1)


async def watch_standby(url: str, stop: asyncio.Event, out: list[tuple[float, int]]) -> None:
    """(time, log head replayed) on the standby itself every 10 ms."""
    conn = await asyncpg.connect(url)
    try:
        while not stop.is_set():
            head = await conn.fetchval("SELECT coalesce(max(position), 0) FROM events")
            out.append((time.perf_counter(), int(head)))
            await asyncio.sleep(0.01)
    finally:
        await conn.close()


def visibility_delays(answered: list[tuple[float, int]], seen: list[tuple[float, int]]) -> list[float]:
    """For each stored batch: seconds from the POST's answer until the standby had replayed it (0 if before)."""
    delays: list[float] = []
    index = 0
    for at, position in sorted(answered, key=lambda a: a[1]):
        while index < len(seen) and seen[index][1] < position:
            index += 1
        if index == len(seen):
            break
        delays.append(max(0.0, seen[index][0] - at))
    return delays


def lag_cell(delays: list[float], samples: list[tuple[float, float]]) -> str:
    if not delays:
        return "–"
    positions = [p for p, _ in samples] or [float("nan")]
    return (f"visible on the replica p50 {percentile(delays, 0.5) * 1000:,.0f} ms / p99 "
            f"{percentile(delays, 0.99) * 1000:,.0f} ms / max {max(delays) * 1000:,.0f} ms after the POST's answer "
            f"(n={len(delays):,}); /metrics lag positions p99 {percentile(positions, 0.99):,.0f}")


def make_standby(primary_url: str) -> tuple[Path, Any]:
    """A streaming replica of ``primary_url`` in a new temporary directory, started."""
    root = Path(tempfile.mkdtemp(prefix="qmstats-bench-standby-"))
    root.chmod(0o755)
    standby = test_pg.StreamingReplica(primary_url, root)
    standby.create()
    return root, standby


async def benchmark(args: argparse.Namespace, servers: list[QmstatsServer], data_dir: Path) \
        -> tuple[int, dict[str, Any]]:
    async with client_session(args.connections + 16, timeout=120) as session:
        writer = await start_server(servers, data_dir / "writer", session)
        keys = await create_keys(writer, ("admin", "reporter", "auditor"))
        await open_campaign(session, writer.url, keys.admin)
        admin = await writer.connect_superuser()
        facts = await header("qmstats read-replica benchmark", admin)
        loaded = await load_events(session, writer.url, keys.reporter, args.events, progress=False)
        await wait_projected(session, writer.url, loaded.last_position)
        pm = writer.postmaster()
        primary_admin = f"postgresql://postgres@/qmstats?host={pm.socket_dir}&port={pm.port}"
        primary_service = f"postgresql://qmstats_service@/qmstats?host={pm.socket_dir}&port={pm.port}"
        started = time.perf_counter()
        standby_root, standby = await asyncio.to_thread(make_standby, primary_admin)
        base_backup_seconds = time.perf_counter() - started
        try:
            await standby.caught_up(within=120)
            replica_url = standby.url("qmstats", user="qmstats_service")
            env = {"QMSTATS_DATABASE_URL": primary_service, "QMSTATS_MIGRATION_DATABASE_URL": primary_admin}
            readers = {
                "primary": await start_server(servers, data_dir / "reader-primary", session,
                                              serve_args=["--no-projector"], env=env),
                "replica": await start_server(servers, data_dir / "reader-replica", session,
                                              serve_args=["--no-projector", "--replica", replica_url], env=env),
            }
            async with session.get(f"{readers['replica'].url}/readyz") as resp:
                replica_name, state = next(iter((await resp.json())["replicas"].items()))
            if state != "ok":
                raise RuntimeError(f"the replica is not in use: {state}")
            head = loaded.last_position
            print(f"load:       {loaded.events:,} events (head {head:,}); base backup {base_backup_seconds:.1f} s; "
                  f"{args.connections} read connections; ingest {args.ingest_rate:g} events/s to the writer; "
                  f"{args.seconds:g} s per source, {args.rounds} interleaved rounds\n", flush=True)
            viewer = bearer(keys.auditor)
            ingest = Ingest(session, writer.url, keys.reporter)
            phases: dict[str, list[ReadPhase]] = {"primary": [], "replica": []}
            steady_lag: list[tuple[float, float]] = []

            async def measured(source: str, seconds: float) -> ReadPhase:
                url = readers[source].url
                names = ['qmstats_reads_total{source="replica"}', 'qmstats_reads_total{source="primary"}']
                before = await scrape(session, url, names)
                phase = await read_load(session, url, viewer, args.connections, seconds, source, head)
                after = await scrape(session, url, names)
                replica, primary = (after.get(n, 0.0) - before.get(n, 0.0) for n in names)
                phase.replica_share = replica / (replica + primary) if replica + primary else 0.0
                return phase

            stop = asyncio.Event()
            steady_seen: list[tuple[float, int]] = []
            watching = asyncio.create_task(watch_standby(standby.url("qmstats"), stop, steady_seen))
            feeding = asyncio.create_task(ingest.steady(args.ingest_rate, stop))
            sampling = asyncio.create_task(sample_lag(session, readers["replica"].url, replica_name, stop,
                                                      steady_lag))
            try:
                for source in phases:
                    warm = await measured(source, min(2.0, args.seconds / 3))
                    print(f"warm-up {source:<8} {warm.rate:8,.0f} req/s", flush=True)
                for n, source in itertools.product(range(1, args.rounds + 1), phases):
                    phase = await measured(source, args.seconds)
                    phases[source].append(phase)
                    s = phase.summary()
                    print(f"round {n} {source:<8} {s['rate']:8,.0f} req/s  p50 {s['p50_ms']:6.2f} ms  "
                          f"p99 {s['p99_ms']:7.2f} ms  n={s['requests']:,}  bad={s['bad']}  "
                          f"answered by the replica {s['replica_share']:.0%}", flush=True)
            finally:
                stop.set()
                await feeding
                await asyncio.sleep(0.5)
                await sampling
                await watching
            steady_delays = visibility_delays(ingest.answered, steady_seen)
            ingest.answered.clear()
            burst_lag: list[tuple[float, float]] = []
            burst_seen: list[tuple[float, int]] = []
            stop = asyncio.Event()
            watching = asyncio.create_task(watch_standby(standby.url("qmstats"), stop, burst_seen))
            sampling = asyncio.create_task(sample_lag(session, readers["replica"].url, replica_name, stop, burst_lag))
            burst_rate = await ingest.flat_out(args.burst_seconds)
            await standby.caught_up(within=120)
            stop.set()
            await sampling
            await watching
            burst_delays = visibility_delays(ingest.answered, burst_seen)
            print(f"\nsteady: {lag_cell(steady_delays, steady_lag)}\nburst {burst_rate:,.0f} events/s for "
                  f"{args.burst_seconds:g} s: {lag_cell(burst_delays, burst_lag)}", flush=True)
        finally:
            for server in servers[1:]:
                server.stop()
            del servers[1:]
            if standby.running:
                standby.stop()
            shutil.rmtree(standby_root, ignore_errors=True)
            await admin.close()

    rates = {source: [p.rate for p in ps] for source, ps in phases.items()}
    bad = sum(p.bad for ps in phases.values() for p in ps) + ingest.bad
    share = [p.replica_share for p in phases["replica"]]
    ratio = ratio_of_medians(rates["replica"], rates["primary"])

    def lat(source: str, q: float) -> list[float]:
        return [percentile(p.latencies, q) * 1000 for p in phases[source]]

    screens = [r * SCREEN_POLL / MIX_PER_SCREEN for r in rates["replica"]]
    summary = [
        Row(f"read mix served from a replica, {args.connections} connections, ingest {args.ingest_rate:g} ev/s: "
            "requests/s", spread(rates["replica"]), f"{spread(rates['primary'])} (same mix from the primary)",
            ratio_cell(rates["replica"], rates["primary"]), "(context: same cores)", "–",
            {"ours": rates["replica"], "limit": rates["primary"], "ratio": ratio}),
        Row("read mix p50 / p99 latency, ms: replica (ours) vs primary (limit)",
            f"{spread(lat('replica', 0.5), '{:.1f}')} / {spread(lat('replica', 0.99), '{:.1f}')}",
            f"{spread(lat('primary', 0.5), '{:.1f}')} / {spread(lat('primary', 0.99), '{:.1f}')}"),
        Row("share of the replica API's reads answered by the replica", spread(share, "{:.1%}")),
        Row("wall screens one replica API serves (a poll = dashboard + series + completeness every 5 s)",
            spread(screens)),
        Row(f"replica lag under steady ingest ({args.ingest_rate:g} ev/s) and the reads",
            lag_cell(steady_delays, steady_lag), values={"delays_ms": summary_ms(steady_delays)}),
        Row(f"replica lag under flat-out 1000-event batches ({burst_rate:,.0f} ev/s)",
            lag_cell(burst_delays, burst_lag), values={"delays_ms": summary_ms(burst_delays)}),
    ]
    table = "\n".join(["| figure | ours | limit (same run) | ratio | target | verdict |", "|---|---|---|---|---|---|",
                       *("| " + " | ".join(row.cells()) + " |" for row in summary)])
    print(f"\n## median ({args.rounds} rounds), min–max\n\n{table}")
    print(f"\ncorrectness: non-200 reads or failed ingest batches {bad}")
    facts["loadavg_at_end"] = loadavg()
    report = {"benchmark": "replica", "machine": facts, "args": vars(args), "rows": rows_json(summary),
              "table_md": table, "rounds": [p.summary() for ps in phases.values() for p in ps],
              "base_backup_seconds": round(base_backup_seconds, 2), "burst_events_per_second": round(burst_rate),
              "correctness": {"bad": bad}}
    return (0 if bad == 0 else 1), report


def summary_ms(delays: list[float]) -> dict[str, float]:
    if not delays:
        return {}
    return {q: round(percentile(delays, v) * 1000, 1) for q, v in (("p50", 0.5), ("p99", 0.99), ("max", 1.0))}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of each source's phase")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--events", type=int, default=20_000, help="events loaded before reading")
    parser.add_argument("--ingest-rate", type=float, default=500.0, help="steady events/s during the reads")
    parser.add_argument("--burst-seconds", type=float, default=5.0, help="flat-out ingest for the lag figure")
    add_common_args(parser)
    args = parser.parse_args(argv)
    if not 0 < args.seconds <= 300 or args.rounds < 1 or args.connections < 1 or args.ingest_rate <= 0:
        parser.error("need 0 < --seconds <= 300, a round, a connection and a positive ingest rate")
    return args


def main() -> int:
    args = parse_args()
    return run_main(lambda servers, data_dir: benchmark(args, servers, data_dir), json_path=args.json)


if __name__ == "__main__":
    sys.exit(main())
