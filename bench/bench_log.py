"""Verifiable-log benchmark: ingest with and without the integrator, proof latency, tree storage per event.

Run from the repository root:

    .venv/bin/python bench/bench_log.py [--seconds 5] [--rounds 3] [--log-dir DIR] [--json out.json]

1. **Ingest, same run**: two ``qmstats serve`` on fresh embedded PostgreSQL data directories, one with
   ``QMSTATS_RUN_INTEGRATOR=false`` and one with the integrator (both with their projector), take
   1000-event batched POSTs from ``--clients`` clients in interleaved rounds (off, on, off, on, …). Each
   phase starts once both servers' projections (the flags projection too) and the "on" server's signed tree
   have caught up with the previous bursts, so the other server is idle meanwhile. Figure: events/s of each,
   ratio on/off. After each "on" round: how long until a signed checkpoint covers the last event (integration
   lag after a burst), and of that how long until the stored tiles reached it (the tree built).
2. **Proofs**: on the loaded log of ``--log-dir`` (bench/run's 1M-event log) or else the "on" server's log:
   time until the tree covers the whole log (the backfill on first start), then sequential latency of
   ``GET /v1/events/{id}/proof`` (JSON and tlog-proof receipt) for random events, ``/v1/log/consistency``,
   ``/v1/log/checkpoint`` and a full tile; a sample of the proofs is verified client-side.
3. **Storage**: ``log_tiles`` and ``log_checkpoints`` on disk (pg_total_relation_size) per event.

Bounded in time; every server is stopped and temporary directories removed, even on error or Ctrl-C.
"""

import argparse
import asyncio
import random
import time
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import orjson
from bench_batch import bodies, post_batches
from common import (
    QmstatsServer,
    Row,
    add_common_args,
    bearer,
    client_session,
    create_keys,
    header,
    markdown_table,
    median,
    open_campaign,
    percentile,
    ratio_cell,
    ratio_of_medians,
    rows_json,
    run_main,
    spread,
    start_server,
    wait_followers,
    wait_projected,
)

from events.checkpoints import check_inclusion, parse_checkpoint_text
from events.notes import Verifier

MIB = 1024 * 1024


async def covered_after(session: aiohttp.ClientSession, url: str, token: str, size: int, limit: float) -> float:
    """Seconds until GET /v1/log/checkpoint states a tree of at least ``size`` events."""
    started = time.perf_counter()
    while time.perf_counter() - started < limit:
        async with session.get(f"{url}/v1/log/checkpoint", headers=bearer(token)) as resp:
            if resp.status == 200 and int((await resp.text()).split("\n")[1]) >= size:
                return time.perf_counter() - started
        await asyncio.sleep(0.01)
    raise RuntimeError(f"no checkpoint covering {size} events after {limit:.0f} s")


async def after_burst(session: aiohttp.ClientSession, url: str, token: str, admin: asyncpg.Connection, size: int,
                      limit: float) -> tuple[float, float, int]:
    """After a burst that left the log at ``size`` events: seconds until the stored full tiles reach the last full
    tile of it (the tree is built), seconds until GET /v1/log/checkpoint covers it, and how many events the tree
    (full tiles) lacked when the burst ended."""
    started = time.perf_counter()
    goal = size // 256 * 256
    built_at: float | None = None
    lacked = -1
    while time.perf_counter() - started < limit:
        if built_at is None:
            tiles = int(await admin.fetchval("SELECT coalesce(max(idx) + 1, 0) FROM log_tiles WHERE level = 0"))
            if lacked < 0:
                lacked = max(0, goal - tiles * 256)
            if tiles * 256 >= goal:
                built_at = time.perf_counter() - started
        async with session.get(f"{url}/v1/log/checkpoint", headers=bearer(token)) as resp:
            if resp.status == 200 and int((await resp.text()).split("\n")[1]) >= size:
                done = time.perf_counter() - started
                return (done if built_at is None else built_at), done, lacked
        await asyncio.sleep(0.01)
    raise RuntimeError(f"no checkpoint covering {size} events after {limit:.0f} s")


async def timed(session: aiohttp.ClientSession, url: str, token: str, **headers: str) -> tuple[float, int, bytes]:
    started = time.perf_counter()
    async with session.get(url, headers={**bearer(token), **headers}) as resp:
        body = await resp.read()
        return time.perf_counter() - started, resp.status, body


async def ingest(args: argparse.Namespace, servers: list[QmstatsServer], data_dir: Path,
                 session: aiohttp.ClientSession) -> tuple[list[Row], dict[str, Any], QmstatsServer, str, str]:
    off = await start_server(servers, data_dir / "without", session, env={"QMSTATS_RUN_INTEGRATOR": "false"})
    on = await start_server(servers, data_dir / "with", session)
    tokens = {}
    for name, server in (("off", off), ("on", on)):
        keys = await create_keys(server, ("admin", "reporter", "auditor"))
        await open_campaign(session, server.url, keys.admin)
        tokens[name] = keys
    per_round = int(args.max_events)
    pool = await asyncio.to_thread(bodies, 11, per_round * (args.rounds + 1))
    chunks = [pool[i::args.rounds + 1] for i in range(args.rounds + 1)]
    rates: dict[str, list[float]] = {"off": [], "on": []}
    lags: list[float] = []
    builds: list[float] = []
    admin = await on.connect_superuser()
    admins = {"off": await off.connect_superuser(), "on": admin}

    async def settle() -> None:
        # Each phase starts on a quiet machine: the other server's projectors (the flags projector above all)
        # catch up on the previous burst for many seconds, and would be measured as much as this phase.
        for name, server in (("off", off), ("on", on)):
            await wait_projected(session, server.url, heads[name], limit=600)
            await wait_followers(admins[name], heads[name], 600, tree=name == "on")

    heads = {"off": 1, "on": 1}
    print(f"ingest:     {args.clients} clients POST 1000-event batches; {args.seconds:g} s per phase, 1 warm-up + "
          f"{args.rounds} interleaved rounds (without the integrator, with it)\n", flush=True)
    for n, chunk in enumerate(chunks):
        for name, server in (("off", off), ("on", on)):
            await settle()
            phase = await post_batches(session, server.url, tokens[name].reporter, chunk, args.clients, args.seconds)
            if phase.failures:
                raise RuntimeError(f"{name}: failed requests {phase.failures}: {phase.first_failure}")
            heads[name] += phase.events
            label = "warm-up" if n == 0 else f"round {n}"
            extra = ""
            if name == "on":
                built, lag, lacked = await after_burst(session, server.url, tokens["on"].auditor, admin,
                                                       heads["on"], 120)
                extra = (f"; checkpoint covered the last event {lag * 1000:,.0f} ms after the burst (the tree lacked "
                         f"{lacked:,} events at its end and was built {built * 1000:,.0f} ms after it)")
                if n:
                    lags.append(lag)
                    builds.append(built)
            if n:
                rates[name].append(phase.rate)
            print(f"{label} {'with' if name == 'on' else 'without'} integrator: {phase.rate:,.0f} events/s, "
                  f"p99 {percentile(phase.latencies, 0.99) * 1000:,.0f} ms/request{extra}", flush=True)
    ratio = ratio_of_medians(rates["on"], rates["off"])
    rows = [
        Row(f"batched ingest with the integrator, {args.clients} clients: events/s", spread(rates["on"]),
            f"{spread(rates['off'])} (same, integrator off)", ratio_cell(rates["on"], rates["off"]),
            "≥ 90% of without", "met" if ratio >= 0.9 else "not met",
            {"ours": rates["on"], "limit": rates["off"], "ratio": ratio}),
        Row("signed checkpoint covers the last event after a burst, ms", spread([x * 1000 for x in lags]),
            "–", "–", "≤ 1000 ms", "met" if lags and median(lags) <= 1.0 else "not met",
            {"ours": lags, "built": builds}),
    ]
    for conn in admins.values():
        await conn.close()
    off.stop()
    return rows, {"rates": rates, "lags": lags, "built": builds}, on, tokens["on"].auditor, tokens["on"].admin


async def proofs(args: argparse.Namespace, server: QmstatsServer, token: str,
                 session: aiohttp.ClientSession) -> tuple[list[Row], dict[str, Any]]:
    admin = await server.connect_superuser()
    head = int(await admin.fetchval("SELECT max(position) FROM events"))
    catch_up = await covered_after(session, server.url, token, head, 3600)
    print(f"\nproofs:     log of {head:,} events; a checkpoint covered all of it {catch_up:,.1f} s after serve was "
          f"ready; {args.samples} sequential requests each\n", flush=True)
    vkey = (await timed(session, f"{server.url}/v1/log/key", token))[2].decode()
    verifier = Verifier.parse(vkey)
    checkpoint = parse_checkpoint_text((await timed(session, f"{server.url}/v1/log/checkpoint", token))[2]
                                       .decode().split("\n\n")[0] + "\n")
    ids = [str(r["event_id"]) for r in await admin.fetch(
        "SELECT event_id FROM events WHERE position <= $1 ORDER BY random() LIMIT $2", checkpoint.size, args.samples)]
    sizes = [r["tree_size"] for r in await admin.fetch("SELECT DISTINCT tree_size FROM log_checkpoints "
                                                       "WHERE tree_size > 0")]
    times: dict[str, list[float]] = {"proof": [], "receipt": [], "consistency": [], "checkpoint": [], "tile": []}
    verified = 0
    rng = random.Random(5)
    for n, event_id in enumerate(ids):
        seconds, status, body = await timed(session, f"{server.url}/v1/events/{event_id}/proof", token)
        assert status == 200, body[:300]
        times["proof"].append(seconds)
        if n < 20:
            doc = orjson.loads(body)
            check_inclusion(bytes.fromhex(doc["leaf_hash"]), doc["leaf_index"],
                            [bytes.fromhex(h) for h in doc["audit_path"]], doc["checkpoint"], verifier)
            verified += 1
        seconds, status, _ = await timed(session, f"{server.url}/v1/events/{event_id}/proof?format=tlog-proof",
                                         token)
        times["receipt"].append(seconds)
        old = rng.choice(sizes)
        seconds, status, body = await timed(session, f"{server.url}/v1/log/consistency?from={old}", token)
        assert status == 200, body[:300]
        times["consistency"].append(seconds)
        times["checkpoint"].append((await timed(session, f"{server.url}/v1/log/checkpoint", token))[0])
        if checkpoint.size >= 256:
            tile = rng.randrange(checkpoint.size // 256)
            path = f"{tile % 1000:03d}" if tile < 1000 else f"x{tile // 1000:03d}/{tile % 1000:03d}"
            times["tile"].append((await timed(session, f"{server.url}/v1/log/tile/0/{path}", token))[0])
    storage = await admin.fetchrow(
        "SELECT pg_total_relation_size('log_tiles') AS tiles, pg_total_relation_size('log_checkpoints') AS cps, "
        "pg_total_relation_size('events') AS events, (SELECT count(*) FROM log_checkpoints) AS checkpoints, "
        "(SELECT count(*) FROM log_tiles) AS tile_rows")
    await admin.close()
    per_event = (storage["tiles"] + storage["cps"]) / head
    rows = [Row(f"{name} latency on {head:,} events: p50 / p95 ms",
                f"{percentile(t, 0.5) * 1000:,.1f} / {percentile(t, 0.95) * 1000:,.1f}", "–", "–", "–", "–",
                {"ours": t}) for name, t in times.items() if t]
    rows.append(Row(f"tree storage per event ({storage['tile_rows']:,} tiles, {storage['checkpoints']:,} "
                    "checkpoints), bytes", f"{per_event:,.1f}",
                    f"events table {storage['events'] / head:,.0f} B/event", "–", "≈ 32 B (tiles)", "–",
                    {"ours": per_event}))
    print(f"verified {verified} proofs client-side against the signed checkpoint")
    return rows, {"head": head, "catch_up_s": catch_up, "storage": dict(storage), "verified": verified,
                  "times": times}


async def benchmark(args: argparse.Namespace, servers: list[QmstatsServer], data_dir: Path) \
        -> tuple[int, dict[str, Any]]:
    async with client_session(args.clients + 4, timeout=600) as session:
        rows, ingest_report, on, auditor, _ = await ingest(args, servers, data_dir, session)
        facts = await header("qmstats verifiable-log benchmark", await on.connect_superuser())
        target, token = on, auditor
        if args.log_dir:
            on.stop()
            target = await start_server(servers, Path(args.log_dir), session)
            token = (await create_keys(target, ("auditor",))).auditor
        proof_rows, proof_report = await proofs(args, target, token, session)
    table = markdown_table([*rows, *proof_rows])
    print(f"\n## medians ({args.rounds} rounds), min–max\n\n{table}")
    return 0, {"benchmark": "log", "machine": facts, "args": vars(args), "rows": rows_json([*rows, *proof_rows]),
               "table_md": table, "ingest": ingest_report, "proofs": proof_report}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each ingest phase")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--max-events", type=int, default=60_000, help="pre-generated events per phase")
    parser.add_argument("--samples", type=int, default=200, help="proof requests (random events)")
    parser.add_argument("--log-dir", help="a loaded data directory (bench/run's load step) to measure proofs on")
    add_common_args(parser)
    return parser.parse_args(argv)


def main() -> int:
    args = parse_args()
    return run_main(lambda servers, data_dir: benchmark(args, servers, data_dir), json_path=args.json)


if __name__ == "__main__":
    raise SystemExit(main())
