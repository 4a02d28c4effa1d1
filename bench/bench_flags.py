"""Flag projection throughput beside the dashboard projector's, on the same log in the same run.

Run from the repository root:

    .venv/bin/python bench/bench_flags.py [--events 20000] [--rounds 3] [--batch-size 1000]

1. Starts ``qmstats serve --no-projector`` on a temp data dir (neither projector runs in it), opens campaign
   2017 and loads ``--events`` generated events (bench/load_log.py's generator: realistic facts with
   corrections and retractions) as 1000-event POSTs; the ingest rate of that load is the bar to keep up with.
2. Then, over the Unix socket as the postgres superuser, in interleaved rounds on that one log:
   * **dashboard**: ``projections.rebuild.fill`` of a fresh shadow table set from position 0 to the head
     (the dashboard projector's own batch function, ``apply_batch``);
   * **flags**: ``reset_flags`` then ``project_flags`` from 0 to the head (the flags projector's batch).
3. Reports events/s of each, the flags/dashboard ratio (same run, same log), and whether the flags
   projector keeps up with the ingest rate measured in step 1.

Bounded in time; serve is stopped and the temp dir removed in ``finally``.
"""

import argparse
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from common import (
    Row,
    add_common_args,
    client_session,
    create_keys,
    header,
    markdown_table,
    open_campaign,
    ratio_cell,
    rows_json,
    run_main,
    spread,
    start_server,
    verdict,
)
from load_log import load_events

from projections.flag_runner import project_flags
from projections.flag_tables import reset_flags
from projections.rebuild import SHADOW, create_shadow, fill


async def benchmark(args: argparse.Namespace, servers: list[Any], data_dir: Path) -> tuple[int, dict[str, Any]]:
    async with client_session(16, timeout=120) as session:
        server = await start_server(servers, data_dir, session, serve_args=["--no-projector"])
        keys = await create_keys(server, ("admin", "reporter"))
        await open_campaign(session, server.url, keys.admin)
        loaded = await load_events(session, server.url, keys.reporter, args.events, clients=4, batch=1000,
                                   progress=False, time_limit=args.time_limit)
        admin = await server.connect_superuser()
        facts = await header("qmstats flags projection", admin)
        head = int(await admin.fetchval("SELECT max(position) FROM events"))
        print(f"log:        {head:,} events loaded at {loaded.rate:,.0f} events/s (1000-event POSTs, 4 clients)")
        dashboard: list[float] = []
        flags: list[float] = []
        for round_ in range(args.rounds):
            await create_shadow(admin)
            started = time.perf_counter()
            done = await fill(admin, SHADOW, head, batch_size=args.batch_size)
            dashboard.append(done / (time.perf_counter() - started))
            await reset_flags(admin)
            started = time.perf_counter()
            # The generated log is dated 2017 and recorded now: every fact would be "late"; lateness is not
            # what this measures (it costs the same either way), so the threshold is set beyond it.
            scored = await project_flags(admin, batch_size=args.batch_size, until=head,
                                         late_after=timedelta(days=36500))
            flags.append(scored / (time.perf_counter() - started))
            raised = await admin.fetchval("SELECT count(*) FROM quality_flags")
            print(f"round {round_ + 1}:    dashboard {dashboard[-1]:,.0f} events/s, flags {flags[-1]:,.0f} events/s "
                  f"({raised:,} flags raised)", flush=True)
        for table in ("projection_checkpoints", "projection_totals", "projection_daily", "projection_categories",
                      "projection_reports"):
            await admin.execute(f"DROP TABLE IF EXISTS {SHADOW.name(table)}")
        await admin.close()
    keeps_up = min(flags) >= loaded.rate
    rows = [
        Row("flags projector from position 0, events/s (limit: dashboard projector, same log)", spread(flags),
            spread(dashboard), ratio_cell(flags, dashboard), "≥ ingest rate", "–",
            {"flags": flags, "dashboard": dashboard}),
        Row(f"flags projector vs this run's ingest ({loaded.rate:,.0f} events/s)", f"{min(flags):,.0f} (slowest)",
            f"{loaded.rate:,.0f}", f"**{min(flags) / loaded.rate:.2f}×**", "≥ 1×", verdict(keeps_up),
            {"ingest": loaded.rate}),
    ]
    print()
    print(markdown_table(rows))
    report = {"benchmark": "flags", "machine": facts, "args": vars(args), "head": head, "ingest": loaded.summary(),
              "dashboard_events_per_s": dashboard, "flags_events_per_s": flags, "rows": rows_json(rows)}
    return 0, report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--time-limit", type=float, default=600.0)
    add_common_args(parser)
    args = parser.parse_args()
    return run_main(lambda servers, directory: benchmark(args, servers, directory), json_path=args.json)


if __name__ == "__main__":
    sys.exit(main())
