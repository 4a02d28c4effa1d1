"""The ``qmstats`` command line: serve, migrate, keys, campaigns, regions."""

import asyncio
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import asyncpg
import typer
from rich.console import Console
from rich.table import Table

from events.errors import DomainError
from events.store import Connection
from services import migrate as migrations
from services.apikeys import KeyError_, create_key, list_keys, revoke_key
from services.database import DatabaseUrls, resolve_database
from services.embedded import ensure_service_role
from services.logs import configure_logging
from services.settings import Settings

app = typer.Typer(no_args_is_help=True, add_completion=False, help="qmstats: National Quality Month statistics.")
keys_app = typer.Typer(no_args_is_help=True, help="Create, list and revoke API keys.")
campaigns_app = typer.Typer(no_args_is_help=True, help="Open, close and reopen campaigns.")
regions_app = typer.Typer(no_args_is_help=True, help="Official region code lists.")
app.add_typer(keys_app, name="keys")
app.add_typer(campaigns_app, name="campaigns")
app.add_typer(regions_app, name="regions")

err = Console(stderr=True)
T = TypeVar("T")

DataDir = Annotated[Path | None, typer.Option("--data-dir", help="embedded PostgreSQL data directory")]


def _settings(**overrides: Any) -> Settings:
    return Settings(**{k: v for k, v in overrides.items() if v is not None})


def _run(coro: Coroutine[Any, Any, T]) -> T:
    try:
        return asyncio.run(coro)
    except (DomainError, KeyError_, migrations.MigrationError) as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    except (OSError, asyncpg.PostgresError) as exc:
        err.print(f"[red]database error:[/red] {exc}")
        raise typer.Exit(2) from None


@asynccontextmanager
async def owner_connection(settings: Settings) -> AsyncIterator[Connection]:
    """A connection as the schema owner, on the same database ``serve`` uses, migrated."""
    urls = await resolve_database(settings)
    conn = await asyncpg.connect(urls.admin)
    try:
        await migrations.migrate(conn)
        yield conn
    finally:
        await conn.close()


async def prepare_database(settings: Settings) -> DatabaseUrls:
    """Find or start the database and apply pending migrations."""
    urls = await resolve_database(settings)
    conn = await asyncpg.connect(urls.admin)
    try:
        done = await migrations.migrate(conn)
        if settings.service_role_password and not urls.embedded:
            await ensure_service_role(conn, settings.service_role_password)
    finally:
        await conn.close()
    for m in done:
        err.print(f"applied migration {m.version:04d} {m.name}")
    return urls


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="address to listen on [default: 127.0.0.1]")] = None,
    port: Annotated[int | None, typer.Option(help="port [default: 8080]")] = None,
    data_dir: DataDir = None,
    no_projector: Annotated[bool, typer.Option("--no-projector", help="serve only; run `qmstats project` apart")]
    = False,
) -> None:
    """Run the HTTP API and the projector (embedded PostgreSQL unless QMSTATS_DATABASE_URL is set)."""
    from aiohttp import web

    from services.app import create_app

    settings = _settings(host=host, port=port, data_dir=data_dir, run_projector=False if no_projector else None)
    configure_logging(settings.log_format, settings.log_level)
    urls = _run(prepare_database(settings))
    loop = _new_loop()
    err.print(f"qmstats listening on http://{settings.host}:{settings.port} "
              f"({'embedded PostgreSQL in ' + str(settings.data_dir) if urls.embedded else 'external PostgreSQL'})")
    web.run_app(create_app(settings, urls.service), host=settings.host, port=settings.port, access_log=None,
                print=None, loop=loop, shutdown_timeout=30)


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux and macOS
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


@app.command()
def project(data_dir: DataDir = None) -> None:
    """Run only the projector. With several running, one is active and the others wait as hot standbys."""
    from services.worker import run_projector

    settings = _settings(data_dir=data_dir)
    configure_logging(settings.log_format, settings.log_level)
    urls = _run(prepare_database(settings))
    loop = _new_loop()
    try:
        loop.run_until_complete(run_projector(settings, urls.service))
    except KeyboardInterrupt:
        pass
    finally:
        loop.close()


@app.command()
def rebuild(
    batch_size: Annotated[int, typer.Option(help="events per transaction")] = 5000,
    data_dir: DataDir = None,
) -> None:
    """Rebuild the read tables from position 0 into fresh tables and swap them in; compare with the live ones."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from projections.rebuild import RebuildReport
    from projections.rebuild import rebuild as run_rebuild

    async def run() -> RebuildReport:
        async with owner_connection(_settings(data_dir=data_dir)) as conn:
            with Progress(TextColumn("rebuilding"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                          console=err) as bar:
                task = bar.add_task("rebuild", total=None)
                return await run_rebuild(
                    conn, batch_size=batch_size,
                    progress=lambda done, total: bar.update(task, completed=done, total=total))

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
        Console().print(table)

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


@campaigns_app.command("open")
def campaigns_open(
    campaign_id: Annotated[str, typer.Option("--id", help="campaign id, normally the year")],
    theme: Annotated[str, typer.Option(help="the campaign's theme (主题)")],
    starts_on: Annotated[str, typer.Option(help="first day, YYYY-MM-DD")],
    ends_on: Annotated[str, typer.Option(help="last day, YYYY-MM-DD")],
    data_dir: DataDir = None,
) -> None:
    """Open a campaign: appends campaign_opened to the log, recorded by 'cli'."""
    from services.lifecycle import append_lifecycle

    async def run() -> int:
        async with owner_connection(_settings(data_dir=data_dir)) as conn:
            return await append_lifecycle(conn, "campaign_opened", campaign_id, {
                "id": campaign_id, "theme": theme, "starts_on": date.fromisoformat(starts_on).isoformat(),
                "ends_on": date.fromisoformat(ends_on).isoformat()}, now=datetime.now(UTC))

    position = _run(run())
    err.print(f"campaign {campaign_id} opened at position {position}")


@regions_app.command("import")
def regions_import(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="'code name' per line (MCA list)")],
    year: Annotated[int, typer.Option(help="the year the list is in force")],
    data_dir: DataDir = None,
) -> None:
    """Load an official region code list; events of campaigns in that year must then use its codes."""
    from services.regionlists import import_region_list, read_region_list

    codes = read_region_list(file.read_text("utf-8-sig"))

    async def run() -> int:
        async with owner_connection(_settings(data_dir=data_dir)) as conn:
            return await import_region_list(conn, year, codes, source=file.name)

    count = _run(run())
    err.print(f"imported {count} region codes for {year} from {file}")


def main() -> None:
    """Entry point of the ``qmstats`` script."""
    app(prog_name="qmstats")


if __name__ == "__main__":  # pragma: no cover
    main()
