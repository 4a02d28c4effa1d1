"""Exporting the log as NDJSON and importing such a file into an empty database."""

import asyncio
import contextlib
import functools
from collections.abc import AsyncGenerator, Iterable
from dataclasses import dataclass

import orjson

from events.catalogue import CATALOGUE
from events.chain_check import ChainVerifier
from events.coordination import APPEND_LOCK, EVENTS_CHANNEL, lock_transaction, notify
from events.errors import DomainError
from events.records import RecordedEvent, from_exported
from events.regions import code_prefix, is_within
from events.store import (
    Connection,
    ExportRow,
    LogFilter,
    copy_records,
    export_chunk,
    is_empty,
    read_export_page,
)


async def export_lines(conn: Connection, flt: LogFilter, *, region: str | None = None,
                       page: int = 2000, piece: int = 100) -> AsyncGenerator[bytes, None]:
    """The log (or the filtered part of it) as NDJSON, in chunks of at most ``piece`` events.

    With ``region``, only that region's subtree (exactly, see regions.code_prefix) is kept.

    PostgreSQL writes most of each line (see store._EXPORT_TAIL) and Python re-serialises ``data``; the two
    overlap: the next page is asked for before this one is turned into lines, and the loop is given back
    after every piece so the rows PostgreSQL sends meanwhile are read off the socket (otherwise it stalls once
    the socket buffer, a few hundred rows, is full). At most two pages are in memory. Close the iterator
    (``contextlib.aclosing``) when stopping early: that cancels the read in flight.
    """
    prefix = code_prefix(region) if region is not None else None
    keep = None if region is None else functools.partial(_within, region)

    def read(after: int) -> asyncio.Future[list[ExportRow]]:
        return asyncio.ensure_future(read_export_page(conn, LogFilter(after, flt.campaign, flt.type, prefix), page))

    pending: asyncio.Future[list[ExportRow]] | None = read(flt.after)
    try:
        while pending is not None and (rows := await pending):
            pending = read(rows[-1][0]) if len(rows) == page else None
            for start in range(0, len(rows), piece):
                if chunk := export_chunk(rows[start:start + piece], keep):
                    yield chunk
                await asyncio.sleep(0)
    finally:
        if pending is not None and not pending.done():
            pending.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pending


def _within(region: str, code: str) -> bool:
    return is_within(code, region)


class ImportRefused(DomainError):
    """The file cannot be imported (broken chain, gap, unknown type, non-empty log)."""


@dataclass(frozen=True, slots=True)
class ImportReport:
    """What an import loaded."""

    events: int
    head_position: int
    head_hash: bytes


def parse_line(number: int, line: bytes | str) -> RecordedEvent:
    """One exported event; refuses lines that are not exported events."""
    try:
        return from_exported(orjson.loads(line))
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ImportRefused(f"line {number} is not an exported qmstats event: {exc}") from None


async def import_lines(conn: Connection, lines: Iterable[bytes | str], *, page: int = 5000) -> ImportReport:
    """Load an exported log into an empty log, verifying the chain as it goes; all or nothing."""
    verifier = ChainVerifier()
    count = 0
    async with conn.transaction():
        await lock_transaction(conn, APPEND_LOCK)
        if not await is_empty(conn):
            raise ImportRefused("the log is not empty; import only into a fresh database")
        batch: list[RecordedEvent] = []
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            event = parse_line(number, line)
            if event.type not in CATALOGUE:
                raise ImportRefused(f"position {event.position}: unknown event type {event.type!r}")
            batch.append(event)
            if len(batch) >= page:
                count += await _load(conn, verifier, batch)
                batch = []
        count += await _load(conn, verifier, batch)
        report = verifier.report()
        if count:
            await notify(conn, EVENTS_CHANNEL, str(report.last_position))
    return ImportReport(count, report.last_position, report.last_hash)


async def _load(conn: Connection, verifier: ChainVerifier, batch: list[RecordedEvent]) -> int:
    if not batch:
        return 0
    verifier.feed(batch)
    report = verifier.report()
    if not report.ok:
        raise ImportRefused(f"the chain is broken at position {report.first_bad_position}; nothing was imported "
                            "(a --campaign export has gaps: import a whole-log export)")
    await copy_records(conn, batch)
    return len(batch)
