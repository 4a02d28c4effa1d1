"""``qmstats simulate``: the command line and its output (the expected totals as tables, optionally JSON)."""

import asyncio
import json
import sys
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from events.catalogue import CATALOGUE, METRICS
from services.settings import Settings
from services.simulate.ledger import province_name, ratio
from services.simulate.profile import DEFAULT_EVENTS

if TYPE_CHECKING:
    from services.simulate.run import SimulationReport

HELP = "\n\n".join((
    "Play the regional systems: post a realistic Quality Month to a running service.",
    "Every expected province reports on most days (a few miss some days), with a sample of its prefectures and "
    f"counties and every fact type at realistic sizes: a month of {DEFAULT_EVENTS} events (--scale 1) lands near "
    "the national figures of a real year, and totals grow linearly with --events or --scale. About 2% of facts "
    "are corrected (some moving region or day), 0.5% retracted, 1% resent unchanged (plus one whole batch "
    "resent), and 0.1% of events are invalid (refused 422, or 409 for a reused event_id). Network errors, "
    "timeouts, 5xx and 429 are retried with the same event_ids. The same --seed always sends the same events.",
    "At the end it prints the totals the dashboard must show (after corrections, without refused events), "
    "nationally and per province; --check waits for the projection and compares them with the dashboard (so "
    "the campaign must hold nothing but this simulation, run once or rerun with the same --seed).",
    "The token must be an ADMIN key (it may post anywhere, open the campaign with --open-campaign and read the "
    "dashboard for --check) or a REPORTER key scoped to the nation (qmstats keys create --role reporter "
    "--region 000000). A reporter key for a smaller region is refused (403), which stops the run. Load goes "
    "only to a loopback address unless --allow-remote is given.",
    "Exit status: 0 all as planned; 1 an unexpected answer or a request given up; 2 cannot start (host "
    "refused, campaign missing or closed, token refused); 3 --check found differences.",
))


def simulate(
    campaign: Annotated[str, typer.Option(help="campaign id, e.g. 2017")],
    token: Annotated[str, typer.Option(help="bearer token: admin, or reporter scoped to 000000")],
    url: Annotated[str | None, typer.Option(help="base URL of the service [default: http://QMSTATS_HOST:QMSTATS_PORT, "
                                                 "as `qmstats serve` listens]")] = None,
    seed: Annotated[int, typer.Option(help="random seed; the same seed sends the same events")] = 1,
    events: Annotated[int | None, typer.Option(min=1, help=f"events to submit (default {DEFAULT_EVENTS} × scale)")]
    = None,
    scale: Annotated[float, typer.Option(min=0.0001, help="months of national activity to simulate")] = 1.0,
    batch: Annotated[int, typer.Option(min=1, max=1000, help="events per request (1 = single-event posts)")] = 200,
    concurrency: Annotated[int, typer.Option(min=1, max=256, help="requests in flight")] = 8,
    regions: Annotated[Path | None, typer.Option(exists=True, dir_okay=False, help="MCA code list ('code name' "
                                                 "per line) to take prefecture and county codes from (default: "
                                                 "the service's list for the year, else synthesized codes)")] = None,
    starts_on: Annotated[str | None, typer.Option(help="first day to report, YYYY-MM-DD (default: the campaign's)")]
    = None,
    ends_on: Annotated[str | None, typer.Option(help="last day to report, YYYY-MM-DD (default: the campaign's)")]
    = None,
    open_campaign: Annotated[bool, typer.Option("--open-campaign", help="open the campaign if it does not exist "
                                                "(admin; Sept 1-30 of the id's year unless given)")] = False,
    expect_json: Annotated[Path | None, typer.Option(help="also write the expected totals to this JSON file")] = None,
    check: Annotated[bool, typer.Option("--check", help="wait for the projection, then compare the dashboard")]
    = False,
    max_seconds: Annotated[float, typer.Option(min=1, help="stop sending after this long")] = 300.0,
    allow_remote: Annotated[bool, typer.Option("--allow-remote", help="allow a non-loopback --url")] = False,
) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from services.simulate.regionsample import read_code_list
    from services.simulate.run import SimulationOptions, SimulationReport
    from services.simulate.run import simulate as run_simulation
    from services.simulate.server import SimulationError

    err = Console(stderr=True, width=None if sys.stderr.isatty() else 10_000)
    try:
        options = SimulationOptions(
            url=url or Settings().service_url(), token=token, campaign=campaign, seed=seed,
            events=events or max(1, round(DEFAULT_EVENTS * scale)),
            batch=batch, concurrency=concurrency,
            region_codes=tuple(read_code_list(regions.read_text("utf-8-sig"))) if regions else None,
            starts_on=date.fromisoformat(starts_on) if starts_on else None,
            ends_on=date.fromisoformat(ends_on) if ends_on else None, open_campaign=open_campaign,
            max_seconds=max_seconds, allow_remote=allow_remote, check=check)
    except ValidationError as exc:
        err.print(f"[red]error:[/red] bad setting: {exc.errors()[0]['msg']}", soft_wrap=True)
        raise typer.Exit(2) from None
    except ValueError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None

    async def run() -> SimulationReport:
        if not err.is_terminal:
            return await run_simulation(options)
        with Progress(TextColumn("simulating"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                      console=err, transient=True) as bar:
            task = bar.add_task("events", total=options.events)
            return await run_simulation(options, progress=lambda n: bar.advance(task, n))

    try:
        report = asyncio.run(run())
    except (SimulationError, ValueError) as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    print_report(report, Console(width=None if sys.stdout.isatty() else 10_000))
    for problem in report.tally.problems[:20]:
        err.print(f"[yellow]unexpected:[/yellow] {problem}")
    for difference in (report.check or [])[:40]:
        err.print(f"[red]dashboard differs:[/red] {difference}")
    if expect_json is not None:
        expect_json.write_text(json.dumps(report.as_json(), ensure_ascii=False, indent=2) + "\n", "utf-8")
    if report.check:
        raise typer.Exit(3)
    if report.check is not None:
        err.print(f"check: the dashboard of campaign {report.campaign} shows every expected figure "
                  f"(national and {len(report.expected.provinces)} provinces)", soft_wrap=True)
    if not report.ok:
        raise typer.Exit(1)


simulate.__doc__ = HELP


def print_report(report: "SimulationReport", console: Console) -> None:
    """The run's counts, then the expected national and per-province totals."""
    t, e = report.tally, report.expected
    console.print(f"campaign {report.campaign}, reports on {report.days[0]}..{report.days[1]}, seed {report.seed}, "
                  f"regions from {report.regions}, {report.seconds:.1f} s"
                  + ("" if report.complete else " [yellow](stopped at --max-seconds: partial month)[/yellow]"))
    console.print(f"events sent {t.sent}, accepted {t.accepted}, duplicates {t.duplicates} "
                  f"(after a retry {t.retried_duplicates}, stored by an earlier run {t.already_stored}), "
                  f"rejected {t.rejected}, failed {t.failed}; HTTP retries {t.retries}; "
                  f"log position {t.last_position}")
    national = Table("metric", "指标", "unit", "expected national total", title="Expected national totals")
    for name, metric in METRICS.items():
        national.add_row(name, metric.label_zh, metric.unit, str(e.national[name]))
    national.add_row("pass_rate", "合格率", "", str(e.pass_rate))
    console.print(national)
    for title, types in _PROVINCE_TABLES:
        metrics = [m.name for t in types for m in CATALOGUE[t].metrics]
        rates = "inspection_completed" in types
        table = Table("code", "省份", *(METRICS[m].label_zh for m in metrics), *(["合格率"] if rates else []),
                      title=f"Expected totals per province: {title}")
        for code, figures in e.provinces.items():
            rate = [str(ratio(int(figures["batches_passed"]), int(figures["batches_sampled"])))] if rates else []
            table.add_row(code, province_name(code), *(str(figures[m]) for m in metrics), *rate)
        console.print(table)


_PROVINCE_TABLES = (
    ("enforcement and spot checks", ("raid_conducted", "goods_destroyed", "inspection_completed")),
    ("publicity and recognition", ("publicity_held", "materials_distributed", "media_reported", "lab_open_day_held",
                                   "pledge_signed", "brand_awarded")),
)
