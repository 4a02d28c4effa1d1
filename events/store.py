"""The PostgreSQL event store: read what a group needs (in one snapshot, or under the lock), append, read back.

Driver errors are translated here and only here: a lost or refused connection becomes
``StoreUnavailable``; everything else the driver raises is a bug and propagates.
"""

import contextlib
import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final, ParamSpec, TypeAlias, TypeVar

import asyncpg
import orjson
from asyncpg.pool import PoolConnectionProxy

from events.campaigns import CampaignHistory, fold_lifecycle
from events.canonical import GENESIS_HASH, RecordParts
from events.coordination import APPEND_LOCK, EVENTS_CHANNEL, notify
from events.decide import KnownEvent, LogState
from events.drafts import DraftEvent
from events.errors import StoreUnavailable
from events.records import EventRow, RecordedEvent

# Appends are serialized by one transaction-scoped advisory lock taken before the head is
# read and held until commit. Positions are therefore assigned and become visible in the
# same order, so a reader following ``position > checkpoint`` can never skip an event that
# commits late (the lost-event problem of sequence-ordered logs). The hash chain needs this
# order anyway. An advisory lock rather than LOCK TABLE: the service role has only INSERT
# and SELECT on the log, and LOCK TABLE ... EXCLUSIVE would need UPDATE or DELETE.
if TYPE_CHECKING:
    Connection: TypeAlias = asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]
else:  # asyncpg's classes are not subscriptable at run time
    Connection = asyncpg.Connection | PoolConnectionProxy

_P = ParamSpec("_P")
_R = TypeVar("_R")
LIFECYCLE_TYPES: Final = ("campaign_opened", "campaign_closed", "campaign_reopened")
# Spelled out in the SQL text so the planner can use the partial index events_campaign_lifecycle.
_LIFECYCLE_SQL: Final = "(" + ", ".join(f"'{t}'" for t in LIFECYCLE_TYPES) + ")"

_COLUMNS: Final = ("position, event_id, type, schema_version, campaign, region, occurred_at, recorded_at, "
                   "recorded_by, request_id, target_event_id, data, content_hash, prev_hash, hash")

COPY_FROM_EVENTS: Final = 200
"""Groups of at least this many events are appended with COPY."""

UNAVAILABLE_ERRORS: Final = (
    OSError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.TooManyConnectionsError,
    # What asyncpg raises on the next query when the server terminated an idle pooled connection
    # (pg_terminate_backend, failover): "cannot switch to state 15" (MagicStack/asyncpg#784).
    asyncpg.InternalClientError,
    TimeoutError,
)


@asynccontextmanager
async def translated_errors() -> AsyncIterator[None]:
    """Turn connection-level driver errors into StoreUnavailable."""
    try:
        yield
    except UNAVAILABLE_ERRORS as exc:
        raise StoreUnavailable(f"database unavailable: {exc.__class__.__name__}: {exc}") from exc


def translating(query: Callable[_P, Awaitable[_R]]) -> Callable[_P, Awaitable[_R]]:
    """Mark a store function: a lost or refused connection surfaces from it as StoreUnavailable."""
    @functools.wraps(query)
    async def translated(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return await query(*args, **kwargs)
        except UNAVAILABLE_ERRORS as exc:
            raise StoreUnavailable(f"database unavailable: {exc.__class__.__name__}: {exc}") from exc
    return translated


# The context function takes APPEND_LOCK for its transaction and reads under it with fresh snapshots
# (plpgsql, volatile). With ``hold``, the same statement also takes it for the session: granted at once to
# a session already holding it, whichever of the two is evaluated first, and kept after this statement's
# own (implicit) transaction ends, until ``release_append_lock``.
_CONTEXT: Final = "SELECT qmstats_append_context($1, $2::uuid[], $3::text[], $4::text[], $5::text[])"
_CONTEXT_HELD: Final = _CONTEXT + ", pg_advisory_lock($1)"
_SNAPSHOT: Final = "SELECT qmstats_append_snapshot($1::uuid[], $2::text[], $3::text[], $4::text[])"


def named_ids(drafts: Sequence[DraftEvent]) -> set[str]:
    """The event ids drafts name: their own and their targets' (what deciding them looks up in the log)."""
    return {d.event_id for d in drafts} | {t for d in drafts if (t := d.target) is not None}


def _context_args(drafts: Sequence[DraftEvent], key_ids: Sequence[str]) -> tuple[list[str], list[str], list[str],
                                                                                   list[str]]:
    return list(named_ids(drafts)), list({d.campaign for d in drafts}), list({d.region for d in drafts}), \
        list(set(key_ids))


@translating
async def load_state(conn: Connection, drafts: Sequence[DraftEvent], key_ids: Sequence[str] = (), *,
                     hold: bool = False) -> LogState:
    """Take the append lock and read what deciding these drafts needs, in one round trip.

    Call in a transaction, which holds the lock until it ends; or, with ``hold``, outside one: the lock is then
    held by the session until ``release_append_lock`` (or the connection closing) releases it.
    """
    raw = await conn.fetchval(_CONTEXT_HELD if hold else _CONTEXT, APPEND_LOCK, *_context_args(drafts, key_ids))
    return _state(orjson.loads(raw))


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What deciding a group needs, as one snapshot of the database saw it, without the append lock."""

    state: LogState
    head: int
    """The head position it saw (``state``'s moves as a decider accepts requests)."""
    lists_mark: str
    """Names the imported region lists as they were (they are not in the log): ``append_decided`` compares it."""


@translating
async def read_snapshot(conn: Connection, drafts: Sequence[DraftEvent], key_ids: Sequence[str] = ()) -> Snapshot:
    """Read what deciding these drafts needs without the append lock, in one statement (one snapshot, whose
    log is a prefix: positions become visible in lock order); ``append_decided`` then appends what was decided."""
    raw = await conn.fetchval(_SNAPSHOT, *_context_args(drafts, key_ids))
    context = orjson.loads(raw)
    state = _state(context)
    return Snapshot(state, state.head_position, context["lists_mark"])


def _state(context: dict[str, Any]) -> LogState:
    head = context["head"]
    state = LogState(head[0], bytes.fromhex(head[1])) if head else LogState(0, GENESIS_HASH)
    for event_id, position, type_, version, campaign, region, digest, retracted in context["events"]:
        state.events[event_id] = KnownEvent(event_id, position, type_, version, campaign, region,
                                            bytes.fromhex(digest), retracted)
    by_campaign: dict[str, list[tuple[int, str, str, dict[str, Any]]]] = {}
    for position, event_id, campaign, type_, data in context["lifecycle"]:
        by_campaign.setdefault(campaign, []).append((position, event_id, type_, data))
    for campaign_id, lifecycle in by_campaign.items():
        if (history := fold_lifecycle(lifecycle)) is not None:
            state.campaigns[campaign_id] = history.state
    years = {c.starts_on.year for c in state.campaigns.values()} & set(context["lists"])
    if years:
        listed: dict[int, set[str]] = {year: set() for year in years}
        for year, code in context["codes"]:
            if year in listed:
                listed[year].add(code)
        state.region_lists = {year: frozenset(codes) for year, codes in listed.items()}
    state.revoked_keys = frozenset(context["revoked"])
    return state


@dataclass(frozen=True, slots=True)
class Footprint:
    """What the decisions to append a group's rows read from the log: the event ids and targets its appending
    requests name, their campaigns, and their keys."""

    ids: frozenset[str]
    campaigns: frozenset[str]
    keys: frozenset[str]


# What ``append_decided`` sends of each row, as EventRow indexes: the function derives the position, the group's
# one recorded_at and each prev_hash.
_APPENDED_COLUMNS: Final = tuple(EventRow._fields.index(name) for name in (
    "event_id", "type", "schema_version", "campaign", "region", "occurred_at", "recorded_by", "request_id",
    "target_event_id", "data", "content_hash", "hash"))


@translating
async def append_decided(conn: Connection, snapshot: Snapshot, footprint: Footprint, rows: Sequence[EventRow],
                         parts: Sequence[RecordParts], stamp: bytes) -> int | None:
    """Append rows decided against ``snapshot`` (positions from its head + 1, ``parts`` each row's canonical parts,
    ``stamp`` the group's recorded_at fragment) under the append lock, in one statement that also notifies.

    Returns the head the rows went after: the snapshot's, or a later one when nothing appended since touches
    ``footprint`` (the rows then moved after it, their hashes chained again from it). None, with nothing written,
    when something did, or a key was revoked or a region list imported since: decide the group again under the lock.
    """
    columns = list(zip(*rows, strict=True))
    head: int | None = await conn.fetchval(
        """SELECT qmstats_append_decided($1, $2, $3, $4, $5::uuid[], $6::text[], $7::text[], $8, $9, $10::uuid[],
                  $11::text[], $12::smallint[], $13::text[], $14::text[], $15::timestamptz[], $16::text[],
                  $17::text[], $18::uuid[], $19::jsonb[], $20::bytea[], $21::bytea[], $22::bytea[], $23::bytea[])""",
        APPEND_LOCK, EVENTS_CHANNEL, snapshot.head, snapshot.lists_mark, list(footprint.ids),
        list(footprint.campaigns), list(footprint.keys), rows[0].recorded_at, stamp,
        *(list(columns[i]) for i in _APPENDED_COLUMNS),
        [p.before for p in parts], [p.after for p in parts])
    return head


@translating
async def read_campaigns(conn: Connection, ids: list[str] | None = None) -> dict[str, CampaignHistory]:
    """Every campaign's history (or only those named), folded from its lifecycle events."""
    rows = await conn.fetch(
        "SELECT position, event_id::text AS event_id, campaign, type, data FROM events "
        f"WHERE type IN {_LIFECYCLE_SQL} AND ($1::text[] IS NULL OR campaign = ANY($1::text[])) ORDER BY position",
        ids)
    by_campaign: dict[str, list[tuple[int, str, str, dict[str, Any]]]] = {}
    for row in rows:
        by_campaign.setdefault(row["campaign"], []).append(
            (row["position"], row["event_id"], row["type"], orjson.loads(row["data"])))
    folded = {campaign_id: fold_lifecycle(lifecycle) for campaign_id, lifecycle in by_campaign.items()}
    return {campaign_id: history for campaign_id, history in folded.items() if history is not None}


@dataclass(frozen=True, slots=True)
class WithChanges:
    """An event as recorded and the corrections and retractions aimed at it, in position order."""

    original: RecordedEvent
    changes: list[RecordedEvent]


END_OF_LOG: Final = 2**63 - 1
"""A position after every event: ``before=END_OF_LOG`` means no bound."""


@translating
async def with_changes(conn: Connection, event_ids: Sequence[str], *,
                       before: int = END_OF_LOG) -> dict[str, WithChanges]:
    """Each of these events that exists, with its corrections and retractions recorded before ``before``."""
    wanted = list(dict.fromkeys(event_ids))
    if not wanted:
        return {}
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM events WHERE event_id = ANY($1::uuid[]) "
        "OR (target_event_id = ANY($1::uuid[]) AND position < $2) ORDER BY position", wanted, before)
    asked = set(wanted)
    originals: dict[str, RecordedEvent] = {}
    later: dict[str, list[RecordedEvent]] = {}
    for row in rows:
        record = record_from_row(row)
        if record.event_id in asked:
            originals[record.event_id] = record
        elif record.target is not None:
            later.setdefault(record.target, []).append(record)
    return {i: WithChanges(originals[i], later.get(i, [])) for i in wanted if i in originals}


@translating
async def feeding_with_changes(conn: Connection, campaign: str, types: Sequence[str], *, after: int, until: int,
                               limit: int, region_prefix: str = "") -> list[WithChanges]:
    """A page (in position order) of a campaign's events of these types with after < position <= until, each with
    its corrections and retractions up to ``until``; only those reported under ``region_prefix`` or moved under it
    by a correction up to ``until``."""
    # One statement: the page is found and read in the same pass over the log, and its changes come from
    # events_by_target. Reading ids first and the events by id after looked every original up again. The
    # ids go to the index as an array: as a join, the planner merge-joins the whole of events_by_target.
    # The moved-in set comes from the partial index events_corrections_by_region (migration 0005); a
    # correction at or before ``after`` cannot concern an original after it. That index serves ``region LIKE
    # '33%'`` only when the planner sees the pattern: a statement prepared anew each time is planned with its
    # values, where the connection's cached one turns generic after five runs and then scans the whole log
    # for the moved-in set (240 ms a page instead of 30 on the 1M-event log).
    statement = await conn.prepare(
        f"""WITH page AS MATERIALIZED (
                SELECT {_COLUMNS} FROM events WHERE campaign = $1 AND type = ANY($2::text[])
                AND position > $3 AND position <= $4 AND (region LIKE $6 OR event_id IN (
                    SELECT target_event_id FROM events WHERE type = 'event_corrected' AND campaign = $1
                    AND region LIKE $6 AND position > $3 AND position <= $4))
                ORDER BY position LIMIT $5)
            SELECT * FROM page
            UNION ALL
            SELECT {_COLUMNS} FROM events
            WHERE target_event_id = ANY(ARRAY(SELECT event_id FROM page)) AND position <= $4
            ORDER BY position""")
    rows = await statement.fetch(campaign, list(types), after, until, limit, region_prefix + "%")
    page: dict[str, WithChanges] = {}
    for row in rows:  # in position order: an original comes before every change aimed at it
        record = record_from_row(row)
        target = row["target_event_id"]
        if target is None:
            page[record.event_id] = WithChanges(record, [])
        else:
            page[str(target)].changes.append(record)
    return list(page.values())


@translating
async def find_event(conn: Connection, event_id: str) -> RecordedEvent | None:
    """One event by its event_id."""
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM events WHERE event_id = $1::uuid", event_id)
    return record_from_row(row) if row else None


@translating
async def insert_records(conn: Connection, records: Sequence[RecordedEvent] | Sequence[EventRow]) -> None:
    """Insert recorded events (or rows as the writer builds them) and wake every listener, atomically. Call
    inside the lock, in a transaction or not.

    A large group goes in by binary COPY (cheapest per row, then a second round trip for the NOTIFY); a
    small one by one INSERT … unnest that also notifies, since there the round trip costs more than the rows.
    """
    rows = [r if isinstance(r, EventRow) else r.row() for r in records]
    if not rows:
        return
    if len(rows) >= COPY_FROM_EVENTS:
        async with contextlib.AsyncExitStack() as stack:
            if not conn.is_in_transaction():  # a writer holding the lock for its session: two statements, one tx
                await stack.enter_async_context(conn.transaction())
            await conn.copy_records_to_table("events", records=rows, columns=EventRow._fields)
            await notify(conn, EVENTS_CHANNEL, str(rows[-1].position))
        return
    # One statement inserts and notifies: fewer round trips while holding the append lock.
    await conn.execute(
        f"""WITH inserted AS (
                INSERT INTO events ({_COLUMNS})
                SELECT * FROM unnest($1::bigint[], $2::uuid[], $3::text[], $4::smallint[], $5::text[], $6::text[],
                                     $7::timestamptz[], $8::timestamptz[], $9::text[], $10::text[], $11::uuid[],
                                     $12::jsonb[], $13::bytea[], $14::bytea[], $15::bytea[])
                RETURNING position)
            SELECT pg_notify($16, max(position)::text) FROM inserted""",
        *(list(column) for column in zip(*rows, strict=True)), EVENTS_CHANNEL,
    )


@translating
async def release_append_lock(conn: Connection) -> None:
    """Release the append lock ``load_state(..., hold=True)`` took for the session."""
    await conn.execute("SELECT pg_advisory_unlock($1)", APPEND_LOCK)


@translating
async def copy_records(conn: Connection, records: Sequence[RecordedEvent]) -> None:
    """Bulk-load recorded events as they are (an import: the caller checked the chain and holds the lock)."""
    await conn.copy_records_to_table("events", records=[r.row() for r in records], columns=EventRow._fields)


def record_columns() -> str:
    """The column list ``record_from_row`` expects."""
    return _COLUMNS


def record_from_row(row: asyncpg.Record) -> RecordedEvent:
    """Build a RecordedEvent from a row selected with ``_COLUMNS``."""
    return RecordedEvent(
        position=row["position"], event_id=str(row["event_id"]), type=row["type"],
        schema_version=row["schema_version"], campaign=row["campaign"], region=row["region"],
        occurred_at=row["occurred_at"], recorded_at=row["recorded_at"], recorded_by=row["recorded_by"],
        request_id=row["request_id"], data=orjson.loads(row["data"]), content_hash=bytes(row["content_hash"]),
        prev_hash=bytes(row["prev_hash"]), hash=bytes(row["hash"]),
    )


@dataclass(frozen=True, slots=True)
class LogFilter:
    """Which events a read wants: after a position (up to ``until``), optionally one campaign, type or region
    subtree."""

    after: int = 0
    campaign: str | None = None
    type: str | None = None
    region_prefix: str | None = None
    until: int | None = None


def _where(flt: LogFilter) -> tuple[str, list[Any]]:
    clauses: list[str] = ["position > $1"]
    args: list[Any] = [flt.after]
    for column, value in (("campaign", flt.campaign), ("type", flt.type)):
        if value is not None:
            args.append(value)
            clauses.append(f"{column} = ${len(args)}")
    if flt.region_prefix is not None:
        args.append(flt.region_prefix + "%")
        clauses.append(f"region LIKE ${len(args)}")
    if flt.until is not None:
        args.append(flt.until)
        clauses.append(f"position <= ${len(args)}")
    return " AND ".join(clauses), args


@translating
async def read_page(conn: Connection, flt: LogFilter, limit: int) -> list[RecordedEvent]:
    """One keyset page of the log in position order."""
    where, args = _where(flt)
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM events WHERE {where} ORDER BY position LIMIT ${len(args) + 1}", *args, limit)
    return [record_from_row(r) for r in rows]


# The exported form of an event (RecordedEvent.exported serialised by orjson), written by PostgreSQL around its
# payload: the members in the same order, strings escaped by to_json as orjson escapes them, timestamps in the
# canonical UTC form. Only ``data`` passes through Python (orjson.loads + dumps: jsonb's text has spaces).
_EXPORT_HEAD: Final = """convert_to('{"campaign":' || to_json(campaign)::text || ',"data":', 'UTF8')"""
_EXPORT_TAIL: Final = """convert_to(',"event_id":"' || event_id::text
    || '","occurred_at":"' || to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
    || '","position":' || position::text
    || ',"recorded_at":"' || to_char(recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
    || '","recorded_by":' || to_json(recorded_by)::text || ',"region":' || to_json(region)::text
    || ',"request_id":' || to_json(request_id)::text || ',"schema_version":' || schema_version::text
    || ',"type":' || to_json(type)::text || ',"prev_hash":"' || encode(prev_hash, 'hex')
    || '","hash":"' || encode(hash, 'hex') || '"}', 'UTF8')"""


ExportRow: TypeAlias = asyncpg.Record
"""One row of ``read_export_page``: position, region, and the pieces ``export_chunk`` joins into its line."""


@translating
async def read_export_page(conn: Connection, flt: LogFilter, limit: int) -> list[ExportRow]:
    """One keyset page of the log in position order, as rows for ``export_chunk``."""
    where, args = _where(flt)
    rows: list[ExportRow] = await conn.fetch(
        f"SELECT position, region, {_EXPORT_HEAD} AS head, convert_to(data::text, 'UTF8') AS data, "
        f"{_EXPORT_TAIL} AS tail FROM events WHERE {where} ORDER BY position LIMIT ${len(args) + 1}", *args, limit)
    return rows


def export_chunk(rows: Sequence[ExportRow], keep: Callable[[str], bool] | None = None) -> bytes:
    """The exported NDJSON lines of ``rows`` (those whose region ``keep`` accepts), joined."""
    dumps, loads = orjson.dumps, orjson.loads
    return b"".join([r[2] + dumps(loads(r[3])) + r[4] + b"\n" for r in rows if keep is None or keep(r[1])])


@translating
async def recorded_at(conn: Connection, position: int) -> datetime | None:
    """When the event at ``position`` was recorded; None when there is none."""
    moment: datetime | None = await conn.fetchval("SELECT recorded_at FROM events WHERE position = $1", position)
    return moment


@translating
async def is_empty(conn: Connection) -> bool:
    """Whether the log holds no event at all."""
    return not await conn.fetchval("SELECT EXISTS (SELECT FROM events)")


@translating
async def hashes_at(conn: Connection, positions: Sequence[int]) -> dict[int, bytes]:
    """position → stored hash for those of ``positions`` that hold an event."""
    rows = await conn.fetch("SELECT position, hash FROM events WHERE position = ANY($1::bigint[])", list(positions))
    return {r["position"]: bytes(r["hash"]) for r in rows}


@translating
async def last_position_before(conn: Connection, position: int) -> int:
    """The highest position below ``position`` that holds an event (0 if none)."""
    return int(await conn.fetchval("SELECT coalesce(max(position), 0) FROM events WHERE position < $1", position))


@translating
async def head(conn: Connection) -> tuple[int, bytes]:
    """The last position and its hash (0 and 32 zero bytes for an empty log)."""
    row = await conn.fetchrow("SELECT position, hash FROM events ORDER BY position DESC LIMIT 1")
    return (row["position"], bytes(row["hash"])) if row else (0, GENESIS_HASH)
