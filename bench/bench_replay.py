"""Reads of a large log: rebuild, export, at_position and provenance against raw keyset reads, in one run.

Run from the repository root on a data directory loaded by bench/load_log.py:

    .venv/bin/python bench/load_log.py --events 1000000 --data-dir /tmp/qm1m
    .venv/bin/python bench/bench_replay.py --data-dir /tmp/qm1m [--rounds 3] [--json out.json]

Starts ``qmstats serve`` on that data directory (defaults) and, in interleaved rounds:

* **raw keyset read** (the limit): as the postgres superuser over the Unix socket, a prepared
  ``SELECT <all 15 columns> FROM events WHERE position > $1 ORDER BY position LIMIT 1000`` until the end
  of the log, every column decoded by asyncpg;
* **rebuild**: ``qmstats rebuild --data-dir`` as a subprocess (joins the same PostgreSQL): events/s as the
  command reports it, and the peak RSS of the rebuilding process (psutil, every 0.1 s);
* **export**: ``events.exchange.export_lines`` in this process over the whole log (NDJSON, discarded).

Then, on the same log (each request cold: a position never asked before, so the response cache misses):

* **at_position**: ``GET /v1/campaigns/2017/dashboard?at_position=N`` with an auditor key for N at 10%,
  50% and 90% of the log, beside a raw keyset read of the campaign's events in the range the fold reads
  (``figures_at`` starts from the latest snapshot S <= N and folds (S, N]; the raw read is of (S, N]);
* **provenance**: ``GET /v1/campaigns/2017/figures/dens_busted/events?region=330000`` — the first page and a
  walk of every page — beside a raw keyset read of the same rows (the campaign's raid events, 1000 a page);
* RSS of the serve process: at the start and its peak during the at_position and provenance requests.

Load only to 127.0.0.1 and the Unix socket; serve is stopped in ``finally`` (the data directory is kept).
"""

import argparse
import asyncio
import contextlib
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from common import (
    CAMPAIGN,
    MIB,
    QMSTATS,
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
    loadavg,
    median,
    process_groups,
    ratio_cell,
    ratio_of_medians,
    rows_json,
    run_main,
    server_env,
    spread,
    start_server,
    verdict,
    wait_followers,
    wait_projected,
)

from events.exchange import export_lines
from events.store import LogFilter, record_columns
from projections.projector import SNAPSHOT_EVERY
from projections.provenance import feeding_types

TARGET_REBUILD_RATIO = 0.5
TARGET_REBUILD_RSS_MB = 300.0
TARGET_AT_POSITION_S = 1.0
TARGET_EXPORT_RATIO = 0.5
TARGET_PROVENANCE_SLOWDOWN = 2.0
TARGET_SERVE_RSS_MB = 300.0
PROVENANCE_METRIC = "dens_busted"
PROVENANCE_REGION = "330000"


@dataclass
class Timed:
    kind: str
    events: int = 0
    seconds: float = 0.0
    peak_rss_mb: float = 0.0
    cpu_cores: dict[str, float] = field(default_factory=dict)
    note: str = ""

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0

    def summary(self) -> dict[str, Any]:
        return {"kind": self.kind, "events": self.events, "seconds": round(self.seconds, 3),
                "events_per_s": round(self.rate, 1), "peak_rss_mb": round(self.peak_rss_mb, 1),
                "cpu_cores": self.cpu_cores, "note": self.note}


async def raw_keyset(conn: asyncpg.Connection, page: int = 1000) -> Timed:
    """Every event, all columns decoded, by keyset pages."""
    statement = await conn.prepare(
        f"SELECT {record_columns()} FROM events WHERE position > $1 ORDER BY position LIMIT {page}")
    result = Timed("raw keyset")
    after = 0
    started = time.perf_counter()
    while rows := await statement.fetch(after):
        result.events += len(rows)
        after = rows[-1]["position"]
    result.seconds = time.perf_counter() - started
    return result


async def raw_range(conn: asyncpg.Connection, campaign: str, after: int, until: int, types: list[str] | None,
                    page: int) -> Timed:
    """A campaign's events in (after, until] (optionally of some types), all columns decoded, keyset pages."""
    kind = "" if types is None else "AND type = ANY($4::text[]) "
    statement = await conn.prepare(
        f"SELECT {record_columns()} FROM events WHERE campaign = $1 AND position > $2 AND position <= $3 "
        f"{kind}ORDER BY position LIMIT {page}")
    result = Timed("raw range")
    started = time.perf_counter()
    while True:
        rows = await (statement.fetch(campaign, after, until) if types is None
                      else statement.fetch(campaign, after, until, types))
        if not rows:
            break
        result.events += len(rows)
        after = rows[-1]["position"]
    result.seconds = time.perf_counter() - started
    return result


_REBUILT = re.compile(r"rebuilt (\d+) events up to position (\d+) in ([\d.]+) s")


async def rebuild(server: QmstatsServer, profile: Path | None, seconds_hint: float) -> Timed:
    """``qmstats rebuild`` as a subprocess; its own report of events and seconds, its peak RSS."""
    proc = await asyncio.create_subprocess_exec(
        str(QMSTATS), "rebuild", "--data-dir", str(server.data_dir), stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env=server_env())
    meter = CpuMeter(lambda: process_groups(server, {"rebuild": [proc.pid]}))
    meter.start()
    started = time.perf_counter()
    with RssSampler(proc.pid, 0.1) as rss, \
            (PySpy(proc.pid, profile, seconds_hint) if profile else contextlib.nullcontext()):
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout=1800)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise
    wall = time.perf_counter() - started
    result = Timed("rebuild", peak_rss_mb=rss.peak / MIB)
    result.cpu_cores = meter.stop()
    text = err.decode(errors="replace")
    match = _REBUILT.search(text)
    if proc.returncode != 0 or not match:
        raise RuntimeError(f"qmstats rebuild exited {proc.returncode}:\n{out.decode()}\n{text[-2000:]}")
    result.events, result.seconds = int(match.group(1)), float(match.group(3))
    result.note = f"{out.decode().strip()[:120]}; wall time with process start {wall:.1f} s"
    return result


async def export(conn: asyncpg.Connection) -> Timed:
    """The whole log through export_lines (NDJSON chunks, discarded)."""
    result = Timed("export")
    size = 0
    started = time.perf_counter()
    async for chunk in export_lines(conn, LogFilter(0)):
        result.events += chunk.count(b"\n")
        size += len(chunk)
    result.seconds = time.perf_counter() - started
    result.note = f"{size / MIB:,.0f} MB of NDJSON"
    return result


async def timed_get(session: aiohttp.ClientSession, url: str, token: str) -> tuple[float, int, bytes]:
    started = time.perf_counter()
    async with session.get(url, headers=bearer(token)) as resp:
        body = await resp.read()
    return time.perf_counter() - started, resp.status, body


def describe(t: Timed, label: str) -> str:
    extra = f", peak RSS {t.peak_rss_mb:,.0f} MB" if t.peak_rss_mb else ""
    cores = (" CPU cores " + ", ".join(f"{k} {v:.2f}" for k, v in t.cpu_cores.items())) if t.cpu_cores else ""
    note = f" ({t.note})" if t.note else ""
    return f"{label:<22} {t.rate:>9,.0f} events/s  {t.events:,} events in {t.seconds:.2f} s{extra}{note}{cores}"


async def benchmark(args: argparse.Namespace, servers: list[QmstatsServer], data_dir: Path) \
        -> tuple[int, dict[str, Any]]:
    profile_dir = Path(args.profile_dir) if args.profile_dir else None
    async with client_session(8, timeout=600) as session:
        server = await start_server(servers, data_dir, session)
        admin = await server.connect_superuser()
        facts = await header("qmstats replay / read benchmark", admin)
        head = int(await admin.fetchval("SELECT max(position) FROM events"))
        await wait_projected(session, server.url, head, limit=900)
        settled = await wait_followers(admin, head)
        if settled > 1:
            print(f"followers:  the flags projection and the signed tree reached the head {settled:.0f} s after the "
                  "dashboard's", flush=True)
        keys = await create_keys(server, ("auditor",))
        rss_start = server.rss_bytes() / MIB
        live = head
        print(f"log:        {head:,} events; serve RSS at start {rss_start:,.0f} MB; {args.rounds} interleaved rounds "
              "of raw keyset read, rebuild, export\n", flush=True)

        raws: list[Timed] = []
        rebuilds: list[Timed] = []
        exports: list[Timed] = []
        for n in range(1, args.rounds + 1):
            await admin.execute("CHECKPOINT")
            raws.append(await raw_keyset(admin))
            print(describe(raws[-1], f"round {n} raw keyset"), flush=True)
            if n <= args.rebuild_rounds:
                profile = profile_dir / f"rebuild_round{n}.txt" if profile_dir and n == 1 else None
                rebuilds.append(await rebuild(server, profile, args.profile_seconds))
                print(describe(rebuilds[-1], f"round {n} rebuild"), flush=True)
            await admin.execute("CHECKPOINT")
            profile = profile_dir / f"export_round{n}.txt" if profile_dir and n == 1 else None
            with PySpy(os.getpid(), profile, args.profile_seconds) if profile else contextlib.nullcontext():
                exports.append(await export(admin))
            print(describe(exports[-1], f"round {n} export"), flush=True)

        # at_position and provenance: cold requests, each beside a raw read of what it must read.
        at_rows: dict[float, dict[str, list[float]]] = {}
        prov: dict[str, list[float]] = {"first": [], "first_raw": [], "walk": [], "walk_raw": [], "pages": [],
                                         "items": []}
        url = f"{server.url}/v1/campaigns/{CAMPAIGN}"
        types = feeding_types(PROVENANCE_METRIC)
        bad: list[str] = []
        with RssSampler(server.pid, 0.1, children=True) as serve_rss:
            for n in range(1, args.rounds + 1):
                for fraction in args.fractions:
                    # Never asked before (the cache misses), and just below a snapshot position: the most events
                    # the fold after the snapshot can have (SNAPSHOT_EVERY - 1 - n).
                    position = max(1, (int(head * fraction) // SNAPSHOT_EVERY) * SNAPSHOT_EVERY - n)
                    profile = profile_dir / f"at_position_{int(fraction * 100)}_round{n}.txt" \
                        if profile_dir and n == 1 else None
                    with PySpy(server.pid, profile, args.profile_seconds) if profile else contextlib.nullcontext():
                        seconds, status, body = await timed_get(session, f"{url}/dashboard?at_position={position}",
                                                                keys.auditor)
                    if status != 200:
                        bad.append(f"at_position={position}: {status} {body[:200]!r}")
                    after = int(await admin.fetchval(
                        "SELECT coalesce(max(position), 0) FROM projection_snapshots WHERE position <= $1",
                        position))
                    raw = await raw_range(admin, CAMPAIGN, after, position, None, 5000)
                    slot = at_rows.setdefault(fraction, {"ours": [], "raw": [], "events": []})
                    slot["ours"].append(seconds)
                    slot["raw"].append(raw.seconds)
                    slot["events"].append(raw.events)
                    print(f"round {n} at_position {position:,} ({fraction:.0%}): {seconds:.2f} s "
                          f"(status {status}); raw read of the {raw.events:,} events folded: {raw.seconds:.2f} s",
                          flush=True)
                seconds, status, body = await timed_get(
                    session, f"{url}/figures/{PROVENANCE_METRIC}/events?region={PROVENANCE_REGION}", keys.auditor)
                raw_walk = await raw_range(admin, CAMPAIGN, 0, live, types, 1000)
                first_page_raw = await _first_page(admin, live, types)
                prov["first"].append(seconds)
                prov["first_raw"].append(first_page_raw)
                if status != 200:
                    bad.append(f"provenance: {status} {body[:200]!r}")
                profile = profile_dir / f"provenance_walk_round{n}.txt" if profile_dir and n == 1 else None
                with PySpy(server.pid, profile, args.profile_seconds) if profile else contextlib.nullcontext():
                    walk, pages, items, error = await provenance_walk(session, url, keys.auditor, args.max_pages)
                if error:
                    bad.append(error)
                prov["walk"].append(walk)
                prov["walk_raw"].append(raw_walk.seconds)
                prov["pages"].append(pages)
                prov["items"].append(items)
                print(f"round {n} provenance {PROVENANCE_METRIC} region {PROVENANCE_REGION}: first page "
                      f"{seconds * 1000:,.0f} ms (raw first page {first_page_raw * 1000:,.1f} ms); walk of {pages} "
                      f"pages, {items:,} contributions: {walk:.2f} s (raw read of the {raw_walk.events:,} rows it "
                      f"scans: {raw_walk.seconds:.2f} s)", flush=True)
        rss_end = server.rss_bytes() / MIB
        await admin.close()
        print(f"serve RSS: {rss_start:,.0f} MB at start, peak {serve_rss.peak / MIB:,.0f} MB during at_position and "
              f"provenance, {rss_end:,.0f} MB at the end")

    raw_rates = [t.rate for t in raws]
    rb_rates = [t.rate for t in rebuilds]
    ex_rates = [t.rate for t in exports]
    rb_rss = [t.peak_rss_mb for t in rebuilds]
    rb_raw = raw_rates[:len(rb_rates)]  # the raw reads of the rounds that rebuilt
    rb_ratio = ratio_of_medians(rb_rates, rb_raw)
    summary = [
        Row(f"full rebuild of {head:,} events: events/s", spread(rb_rates), f"{spread(rb_raw)} (raw keyset read)",
            ratio_cell(rb_rates, rb_raw), f"≥ {TARGET_REBUILD_RATIO:.0%} of raw", verdict(rb_ratio >= 0.5),
            {"ours": rb_rates, "limit": rb_raw, "ratio": rb_ratio}),
        Row("full rebuild: peak RSS of the rebuilding process, MB", spread(rb_rss), "–", "–",
            f"< {TARGET_REBUILD_RSS_MB:.0f} MB", verdict(max(rb_rss) < TARGET_REBUILD_RSS_MB), {"ours": rb_rss}),
    ] if rebuilds else []  # --rebuild-rounds 0: export and the reads only
    summary += [
        Row("export (export_lines, whole log): events/s", spread(ex_rates), f"{spread(raw_rates)} (raw keyset read)",
            ratio_cell(ex_rates, raw_rates), f"≥ {TARGET_EXPORT_RATIO:.0%} of raw",
            verdict(ratio_of_medians(ex_rates, raw_rates) >= TARGET_EXPORT_RATIO),
            {"ours": ex_rates, "limit": raw_rates}),
    ]
    for fraction, slot in at_rows.items():
        worst = max(slot["ours"])
        summary.append(Row(
            f"at_position at {fraction:.0%} of the log (cold), s", spread(slot["ours"], "{:.2f}"),
            f"{spread(slot['raw'], '{:.2f}')} (raw read of the {int(median(slot['events'])):,} events folded)",
            f"{median(slot['ours']) / median(slot['raw']):.1f}× the raw time",
            f"< {TARGET_AT_POSITION_S:g} s", verdict(worst < TARGET_AT_POSITION_S),
            {"ours_s": slot["ours"], "raw_s": slot["raw"], "events": slot["events"]}))
    summary += [
        Row(f"provenance {PROVENANCE_METRIC} region {PROVENANCE_REGION}: first page, ms",
            spread([s * 1000 for s in prov["first"]], "{:,.0f}"),
            f"{spread([s * 1000 for s in prov['first_raw']], '{:,.1f}')} (raw first page)",
            f"{median(prov['first']) / median(prov['first_raw']):.0f}× the raw time", "–", "–",
            {"ours_s": prov["first"], "raw_s": prov["first_raw"]}),
        Row(f"provenance: walk of all pages ({int(median(prov['pages'])):,} pages, "
            f"{int(median(prov['items'])):,} contributions), s", spread(prov["walk"], "{:.2f}"),
            f"{spread(prov['walk_raw'], '{:.2f}')} (raw read of the rows scanned)",
            f"{median(prov['walk']) / median(prov['walk_raw']):.1f}× the raw time",
            f"≤ {TARGET_PROVENANCE_SLOWDOWN:g}× the raw time",
            verdict(median(prov["walk"]) / median(prov["walk_raw"]) <= TARGET_PROVENANCE_SLOWDOWN),
            {"ours_s": prov["walk"], "raw_s": prov["walk_raw"], "pages": prov["pages"]}),
        Row(f"serve RSS on the {head:,}-event log: at start / peak during at_position+provenance, MB",
            f"{rss_start:,.0f} / {serve_rss.peak / MIB:,.0f}", "–", "–", f"< {TARGET_SERVE_RSS_MB:.0f} MB",
            verdict(serve_rss.peak / MIB < TARGET_SERVE_RSS_MB),
            {"start_mb": rss_start, "peak_mb": serve_rss.peak / MIB, "end_mb": rss_end}),
    ]
    table = "\n".join(["| figure | ours | limit (same run) | ratio | target | verdict |", "|---|---|---|---|---|---|",
                       *("| " + " | ".join(row.cells()) + " |" for row in summary)])
    print(f"\n## median ({args.rounds} rounds), min–max\n\n{table}")
    if bad:
        print("\nfailed requests:\n" + "\n".join(bad))
    facts["loadavg_at_end"] = loadavg()
    report = {"benchmark": "replay", "machine": facts, "args": vars(args), "log_events": head,
              "rows": rows_json(summary), "table_md": table,
              "rounds": [t.summary() for t in [*raws, *rebuilds, *exports]],
              "at_position": {f"{k:g}": v for k, v in at_rows.items()},
              "provenance": prov, "failed_requests": bad}
    return (0 if not bad else 1), report


async def _first_page(conn: asyncpg.Connection, live: int, types: list[str]) -> float:
    started = time.perf_counter()
    await conn.fetch(f"SELECT {record_columns()} FROM events WHERE campaign = $1 AND type = ANY($2::text[]) "
                     "AND position > 0 AND position <= $3 ORDER BY position LIMIT 1000", CAMPAIGN, types, live)
    return time.perf_counter() - started


async def provenance_walk(session: aiohttp.ClientSession, url: str, token: str, max_pages: int) \
        -> tuple[float, int, int, str]:
    """Follow next_after until complete; (seconds, pages, contributions, error)."""
    after, pages, items = 0, 0, 0
    started = time.perf_counter()
    while pages < max_pages:
        async with session.get(f"{url}/figures/{PROVENANCE_METRIC}/events",
                               params={"region": PROVENANCE_REGION, "after": str(after)},
                               headers=bearer(token)) as resp:
            if resp.status != 200:
                return time.perf_counter() - started, pages, items, f"provenance page {pages}: {resp.status}"
            body = await resp.json()
        pages += 1
        items += len(body["events"])
        after = body["next_after"]
        if body["complete"]:
            break
    return time.perf_counter() - started, pages, items, ""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--data-dir", required=True, help="a data directory loaded by bench/load_log.py (kept)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rebuild-rounds", type=int, help="rounds that include a rebuild (default: all)")
    parser.add_argument("--fractions", default="0.1,0.5,0.9", help="at_position points, as fractions of the log")
    parser.add_argument("--max-pages", type=int, default=5000, help="bound on the provenance walk")
    parser.add_argument("--profile-seconds", type=float, default=20.0, help="py-spy duration with --profile-dir")
    add_common_args(parser)
    args = parser.parse_args(argv)
    args.fractions = [float(f) for f in args.fractions.split(",")]
    args.rebuild_rounds = args.rounds if args.rebuild_rounds is None else min(args.rebuild_rounds, args.rounds)
    if args.rounds < 1 or not all(0 < f < 1 for f in args.fractions):
        parser.error("need a round and fractions in (0, 1)")
    return args


def main() -> int:
    args = parse_args()
    data_dir = Path(args.data_dir).resolve()
    if not (data_dir / "pgdata").is_dir():
        print(f"{data_dir} holds no loaded log: run bench/load_log.py --data-dir {data_dir} first", file=sys.stderr)
        return 2
    return run_main(lambda servers, directory: benchmark(args, servers, directory), json_path=args.json,
                    data_dir=data_dir)


if __name__ == "__main__":
    sys.exit(main())
