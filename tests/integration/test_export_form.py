"""The NDJSON export, written mostly by PostgreSQL, is byte for byte the exported form of each event
(RecordedEvent.exported serialised by orjson), whatever the strings and timestamps hold."""

import contextlib
import os
import uuid
from datetime import UTC, datetime, timedelta, timezone

import asyncpg
import orjson

from events.exchange import export_lines
from events.records import RecordedEvent
from events.store import APPEND_LOCK, LogFilter, insert_records, read_page

ODD = ['plain', 'quote " and \\ backslash', 'tab\tnew\nline\r', 'ctl \x01\x1f\x7f', '全国质量月 ✓ 😀', '/slash/',
       "apostrophe ' here", '\u2028\u2029', '']


async def test_export_lines_are_the_exported_form_byte_for_byte(admin_conn: asyncpg.Connection) -> None:
    events = []
    base = datetime(2017, 9, 8, 1, 2, 3, 456789, tzinfo=timezone(timedelta(hours=8)))
    for i, text in enumerate(ODD * 3, start=1):
        data = ({"retracts": str(uuid.uuid4()), "reason": text} if i % 3 == 0 else
                {"dens_busted": i, "personnel": 10**9, "vehicles": 0, "cases": 2, "seized_value_yuan": "152000.50",
                 "category": text or "x"})
        events.append(RecordedEvent(
            i, str(uuid.uuid4()), "event_retracted" if i % 3 == 0 else "raid_conducted", 1, text or "2017",
            "330102", base + timedelta(days=i, microseconds=i), base + timedelta(seconds=i * 1.5 if i % 2 else i),
            text, text + "-req", data, os.urandom(32), os.urandom(32), os.urandom(32)))
    async with admin_conn.transaction():
        await admin_conn.execute("SELECT pg_advisory_xact_lock($1)", APPEND_LOCK)
        await insert_records(admin_conn, events)
    expected = b"".join(orjson.dumps(e.exported()) + b"\n" for e in await read_page(admin_conn, LogFilter(), 100))
    exported = b"".join([chunk async for chunk in export_lines(admin_conn, LogFilter(), page=4)])
    assert exported.count(b"\n") == len(events)
    assert exported == expected


async def test_pieces_pages_and_region_filter_give_the_same_bytes_and_an_early_close_frees_the_connection(
        admin_conn: asyncpg.Connection) -> None:
    regions = ["330102", "440103", "330000", "110101"]
    events = [RecordedEvent(
        i, str(uuid.uuid4()), "raid_conducted", 1, "2017", regions[i % len(regions)],
        datetime(2017, 9, 8, tzinfo=UTC) + timedelta(minutes=i),
        datetime(2017, 9, 9, tzinfo=UTC) + timedelta(seconds=i),
        "cli", f"req-{i}", {"dens_busted": i}, os.urandom(32), os.urandom(32), os.urandom(32)) for i in range(1, 42)]
    async with admin_conn.transaction():
        await admin_conn.execute("SELECT pg_advisory_xact_lock($1)", APPEND_LOCK)
        await insert_records(admin_conn, events)
    lines = [orjson.dumps(e.exported()) + b"\n" for e in await read_page(admin_conn, LogFilter(), 100)]
    zhejiang = b"".join(line for line, e in zip(lines, events, strict=True) if e.region.startswith("33"))
    for page, piece in ((41, 100), (40, 100), (7, 3), (5, 5), (1, 1), (1000, 2)):
        chunks = [chunk async for chunk in export_lines(admin_conn, LogFilter(), page=page, piece=piece)]
        assert b"".join(chunks) == b"".join(lines)
        assert max(chunk.count(b"\n") for chunk in chunks) <= piece
        exported = b"".join([c async for c in export_lines(admin_conn, LogFilter(3), region="330000", page=page,
                                                          piece=piece)])
        assert exported == b"".join(line for line in zhejiang.splitlines(keepends=True)
                                    if orjson.loads(line)["position"] > 3)
    async with contextlib.aclosing(export_lines(admin_conn, LogFilter(), page=4, piece=2)) as stream:
        async for _ in stream:
            break  # the next page is being read: closing cancels it
    assert await admin_conn.fetchval("SELECT count(*) FROM events") == len(events)
