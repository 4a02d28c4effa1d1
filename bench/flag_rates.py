"""False alarms on the simulator's month and the catch rate on injected slips, through a real service.

Run from the repository root:

    .venv/bin/python bench/flag_rates.py [--events 20000] [--slips 200] [--seed 1] [--json out.json]

1. Starts ``qmstats serve`` (its projectors on) on a temp data dir and runs ``qmstats simulate`` against it:
   campaign 2017, ``--events`` events of a realistic month (corrections, retractions, resends, refused
   invalid events included). Every stored fact is a clean report, so **every flag on it is a false alarm**.
   ``late_report`` is switched off for the run (``QMSTATS_FLAG_LATE_AFTER_DAYS``): the simulator posts the
   whole 2017 month now, so every event would be years late; lateness is measured by the unit tests.
2. Waits for the flags projection, counts flags per 1,000 stored facts, by code.
3. Injects ``--slips`` slips, each a copy of a random stored fact under a new event_id with one change:
   money ×10⁴ (万元 typed as 元) or ÷10⁴ (元 typed as 万元), a count ×10³, or no change at all (a double
   submission). Posts them one by one, waits, and counts how many got a flag on the changed metric (or, for
   a double submission, a possible_duplicate flag), or were refused at ingest by an in-event rule (a
   ×10³ batches_passed breaks passed ≤ sampled). Catch rate = caught ÷ injected, overall and per kind.
"""

import argparse
import asyncio
import random
import subprocess
import sys
import uuid
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
from common import QMSTATS, bearer, client_session, create_keys, run_main, start_server

from events.catalogue import CATALOGUE

KINDS = ("money_x10000", "money_div10000", "count_x1000", "double_submission")


async def _get(session: aiohttp.ClientSession, url: str, token: str, path: str) -> Any:
    async with session.get(url + path, headers=bearer(token)) as response:
        response.raise_for_status()
        return await response.json()


async def _flags_at(session: aiohttp.ClientSession, url: str, token: str, head: int) -> list[dict[str, Any]]:
    for _ in range(1200):
        body = await _get(session, url, token, "/v1/campaigns/2017/flags?status=all&limit=10000")
        if body["position"] >= head:
            return list(body["flags"])
        await asyncio.sleep(0.25)
    raise RuntimeError(f"flags projection did not reach {head}")


async def _stored_facts(session: aiohttp.ClientSession, url: str, token: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    after = 0
    while True:
        page = await _get(session, url, token, f"/v1/events?after={after}&limit=10000&campaign=2017")
        events.extend(page["events"])
        if page["next_after"] == after:
            return events
        after = page["next_after"]


def _slip(rng: random.Random, fact: dict[str, Any], kind: str) -> tuple[dict[str, Any], str | None] | None:
    """A copy of ``fact`` under a new id with one slip; (envelope, changed metric) or None if it cannot carry it."""
    event_type = CATALOGUE[fact["type"]]
    data = dict(fact["data"])
    metric = None
    if kind.startswith("money"):
        money = [m for m in event_type.metrics if m.kind == "money" and Decimal(data[m.field]) >= 100]
        if not money:
            return None
        chosen = rng.choice(money)
        value = Decimal(data[chosen.field])
        value = value * 10000 if kind == "money_x10000" else value / 10000
        if value > Decimal("1000000000000") or value < Decimal("0.01"):
            return None
        data[chosen.field], metric = f"{value:.2f}", chosen.name
    elif kind == "count_x1000":
        counts = [m for m in event_type.metrics if m.kind == "count" and 1 <= int(data[m.field]) <= 1_000_000]
        if not counts:
            return None
        chosen = rng.choice(counts)
        data[chosen.field], metric = int(data[chosen.field]) * 1000, chosen.name
    envelope = {"event_id": str(uuid.uuid4()), "type": fact["type"], "schema_version": 1, "campaign": "2017",
                "region": fact["region"], "occurred_at": fact["occurred_at"], "data": data}
    return envelope, metric


async def benchmark(args: argparse.Namespace, servers: list[Any], data_dir: Path) -> tuple[int, dict[str, Any]]:
    rng = random.Random(args.seed)
    async with client_session(16, timeout=120) as session:
        server = await start_server(servers, data_dir, session, env={"QMSTATS_FLAG_LATE_AFTER_DAYS": "36500"})
        keys = await create_keys(server, ("admin", "auditor", "viewer"))
        simulated = await asyncio.to_thread(subprocess.run, [
            str(QMSTATS), "simulate", "--campaign", "2017", "--token", keys.admin, "--url", server.url,
            "--open-campaign", "--events", str(args.events), "--seed", str(args.seed)],
            capture_output=True, text=True, timeout=args.time_limit)
        print(simulated.stdout[-1500:], simulated.stderr[-1500:], sep="\n")
        if simulated.returncode != 0:
            raise RuntimeError(f"qmstats simulate exited {simulated.returncode}")
        log = await _stored_facts(session, server.url, keys.auditor)
        facts = [e for e in log if CATALOGUE[e["type"]].kind == "fact"]
        head = max(e["position"] for e in log)
        clean = await _flags_at(session, server.url, keys.viewer, head)
        by_code = Counter(f["code"] for f in clean)
        per_thousand = 1000 * len(clean) / len(facts)
        print(f"simulated month: {len(log):,} events stored, {len(facts):,} facts; {len(clean)} flags = "
              f"{per_thousand:.2f} per 1,000 clean facts; by code {dict(by_code)}")

        injected: list[tuple[str, dict[str, Any], str | None]] = []
        while len(injected) < args.slips:
            kind = KINDS[len(injected) % len(KINDS)]
            made = _slip(rng, rng.choice(facts), kind)
            if made is not None:
                injected.append((kind, *made))
        refused: set[str] = set()  # a slip that breaks an in-event rule is refused at ingest: caught by tier 1
        for _, envelope, _ in injected:
            async with session.post(server.url + "/v1/events", json=envelope, headers=bearer(keys.admin)) as response:
                body = await response.json(content_type=None)
                if response.status == 422:
                    refused.add(envelope["event_id"])
                elif response.status != 201:
                    raise RuntimeError(f"slip answered {response.status}: {body}")
                else:
                    head = body["last_position"]
        flags = await _flags_at(session, server.url, keys.viewer, head)
        on_event: dict[str, list[dict[str, Any]]] = {}
        for flag in flags:
            on_event.setdefault(flag["event_id"], []).append(flag)
        caught: Counter[str] = Counter()
        codes: Counter[str] = Counter()
        for kind, envelope, metric in injected:
            hits = [f for f in on_event.get(envelope["event_id"], [])
                    if (f["code"] == "possible_duplicate" if metric is None else f["metric"] == metric)]
            if envelope["event_id"] in refused:
                caught[kind] += 1
                codes["refused_422"] += 1
            elif hits:
                caught[kind] += 1
                codes[hits[0]["code"]] += 1
        total = Counter(kind for kind, _, _ in injected)
        rate = sum(caught.values()) / len(injected)
        print(f"injected slips: {len(injected)}; caught {sum(caught.values())} = {100 * rate:.1f}%; by kind "
              + ", ".join(f"{k} {caught[k]}/{total[k]}" for k in KINDS) + f"; flagged as {dict(codes)}")
        missed = [(kind, envelope["region"], metric) for kind, envelope, metric in injected
                  if envelope["event_id"] not in refused and not any(
                      (f["code"] == "possible_duplicate" if metric is None else f["metric"] == metric)
                      for f in on_event.get(envelope["event_id"], []))]
        print(f"missed: {missed[:20]}")
    report = {"benchmark": "flag_rates", "args": vars(args), "facts": len(facts), "clean_flags": len(clean),
              "false_alarms_per_1000": round(per_thousand, 3), "clean_by_code": dict(by_code),
              "slips": len(injected), "caught": dict(caught), "injected": dict(total), "catch_rate": round(rate, 4),
              "caught_as": dict(codes)}
    return 0, report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--slips", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--time-limit", type=float, default=1200.0)
    parser.add_argument("--json")
    args = parser.parse_args()
    return run_main(lambda servers, directory: benchmark(args, servers, directory), json_path=args.json)


if __name__ == "__main__":
    sys.exit(main())
