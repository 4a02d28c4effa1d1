"""The PostgreSQL event store: load what a group needs under the lock, append, read back.

Driver errors are translated here and only here: a lost or refused connection becomes
``StoreUnavailable``; everything else the driver raises is a bug and propagates.
"""

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, TypeAlias

import asyncpg
import orjson
from asyncpg.pool import PoolConnectionProxy

from events.campaigns import CampaignHistory, fold_lifecycle
from events.canonical import GENESIS_HASH
from events.decide import KnownEvent, LogState
from events.errors import StoreUnavailable
from events.intake import DraftEvent
from events.records import RecordedEvent

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

APPEND_LOCK: Final = 0x716D_0001
NOTIFY_CHANNEL: Final = "qmstats_events"
LIFECYCLE_TYPES: Final = ("campaign_opened", "campaign_closed", "campaign_reopened")
# Spelled out in the SQL text so the planner can use the partial index events_campaign_lifecycle.
_LIFECYCLE_SQL: Final = "(" + ", ".join(f"'{t}'" for t in LIFECYCLE_TYPES) + ")"

_COLUMNS: Final = ("position, event_id, type, schema_version, campaign, region, occurred_at, recorded_at, "
                   "recorded_by, request_id, target_event_id, data, content_hash, prev_hash, hash")

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


async def load_state(conn: Connection, drafts: Sequence[DraftEvent], key_ids: Sequence[str] = ()) -> LogState:
    """Take the append lock and read what deciding these drafts needs, in one round trip. Call in a transaction."""
    ids = {d.event_id for d in drafts} | {t for d in drafts if (t := d.target) is not None}
    raw = await conn.fetchval(
        "SELECT qmstats_append_context($1, $2::uuid[], $3::text[], $4::text[], $5::text[])", APPEND_LOCK,
        list(ids), list({d.campaign for d in drafts}), list({d.region for d in drafts}), list(set(key_ids)))
    context = orjson.loads(raw)
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


async def find_event(conn: Connection, event_id: str) -> RecordedEvent | None:
    """One event by its event_id."""
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM events WHERE event_id = $1::uuid", event_id)
    return record_from_row(row) if row else None


async def insert_records(conn: Connection, records: Sequence[RecordedEvent]) -> None:
    """Insert recorded events in one statement and wake every listener. Call inside the lock."""
    # One statement inserts and notifies: fewer round trips while holding the append lock.
    await conn.execute(
        f"""WITH inserted AS (
                INSERT INTO events ({_COLUMNS})
                SELECT * FROM unnest($1::bigint[], $2::uuid[], $3::text[], $4::smallint[], $5::text[], $6::text[],
                                     $7::timestamptz[], $8::timestamptz[], $9::text[], $10::text[], $11::uuid[],
                                     $12::jsonb[], $13::bytea[], $14::bytea[], $15::bytea[])
                RETURNING position)
            SELECT pg_notify($16, max(position)::text) FROM inserted""",
        [r.position for r in records], [r.event_id for r in records], [r.type for r in records],
        [r.schema_version for r in records], [r.campaign for r in records], [r.region for r in records],
        [r.occurred_at for r in records], [r.recorded_at for r in records], [r.recorded_by for r in records],
        [r.request_id for r in records], [r.target for r in records],
        [orjson.dumps(r.data).decode() for r in records], [r.content_hash for r in records],
        [r.prev_hash for r in records], [r.hash for r in records], NOTIFY_CHANNEL,
    )


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
    """Which events a read wants: after a position, optionally one campaign, type or region subtree."""

    after: int = 0
    campaign: str | None = None
    type: str | None = None
    region_prefix: str | None = None


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
    return " AND ".join(clauses), args


async def read_page(conn: Connection, flt: LogFilter, limit: int) -> list[RecordedEvent]:
    """One keyset page of the log in position order."""
    where, args = _where(flt)
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM events WHERE {where} ORDER BY position LIMIT ${len(args) + 1}", *args, limit)
    return [record_from_row(r) for r in rows]


async def head(conn: Connection) -> tuple[int, bytes]:
    """The last position and its hash (0 and 32 zero bytes for an empty log)."""
    row = await conn.fetchrow("SELECT position, hash FROM events ORDER BY position DESC LIMIT 1")
    return (row["position"], bytes(row["hash"])) if row else (0, GENESIS_HASH)
