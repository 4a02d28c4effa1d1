"""The one way a handler gets a database connection: a snapshot read (a replica or the primary) or the primary.

``snapshot(request, basis)`` opens a read-only repeatable-read transaction and reads the position
it reflects first (the projection checkpoint, or the log head), so everything the handler reads in
it is as of that position, and the answer carries it in ``X-Qmstats-Position``. It reads from a
replica in use when there is one; with ``min_position=N`` it waits up to
``min_position_wait_seconds`` for that replica to reach N, then asks the primary. It never answers
older than asked: a primary whose projection has not reached N either answers 503 (Retry-After),
and an N beyond the log's head is 422.

``primary(request)`` is for what must see the primary: appends' read-backs, campaign changes.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from enum import Enum

import asyncpg
from aiohttp import web
from asyncpg.transaction import Transaction

from events.errors import StoreUnavailable
from events.store import UNAVAILABLE_ERRORS, Connection, head, translated_errors
from projections.flag_tables import flags_checkpoint
from projections.tables import checkpoint_status
from services.appkeys import POOL, READ_POSITION, REPLICAS, SETTINGS, TELEMETRY
from services.errors import InvalidParameter
from services.handlers.params import int_param
from services.replicas import Replica

POSITION_HEADER = "X-Qmstats-Position"
_POLL_SECONDS = 0.02
# A standby cancels a query whose snapshot replay must remove ("conflict with recovery", SQLSTATE 40001):
# transient, so the client is told to retry (and a retry may land on the primary).
_RECOVERY_CONFLICT = asyncpg.SerializationError


class Basis(Enum):
    """What the answer's position means: how far the projection got, or how far the log has been replayed."""

    PROJECTION = "projection"
    LOG = "log"
    FLAGS = "flags"
    """How far the flags projection (issue 15) got: its own checkpoint."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A connection inside a read-only snapshot, and the position the snapshot reflects."""

    conn: Connection
    position: int
    updated_at: datetime | None
    source: str


async def _position(conn: Connection, basis: Basis) -> tuple[int, datetime | None]:
    if basis is Basis.PROJECTION:
        status = await checkpoint_status(conn)
        return status.position, status.updated_at
    if basis is Basis.FLAGS:
        return await flags_checkpoint(conn), None
    position, _ = await head(conn)
    return position, None


def min_position(request: web.Request) -> int:
    """The ``min_position`` query parameter (0 when absent)."""
    return int_param(request, "min_position", 0, low=0, high=2**62)


async def _open_at_least(conn: Connection, basis: Basis, wanted: int,
                         budget: float) -> tuple[Transaction, int, datetime | None] | None:
    """A started snapshot transaction whose position is ≥ ``wanted``, polling up to ``budget`` s; else None."""
    deadline = asyncio.get_running_loop().time() + budget
    while True:
        txn = conn.transaction(isolation="repeatable_read", readonly=True)
        await txn.start()
        position, updated_at = await _position(conn, basis)
        if position >= wanted:
            return txn, position, updated_at
        await txn.rollback()
        if asyncio.get_running_loop().time() >= deadline:
            return None
        await asyncio.sleep(_POLL_SECONDS)


@contextlib.asynccontextmanager
async def _on(pool: asyncpg.Pool, basis: Basis, wanted: int, budget: float,
              source: str) -> AsyncIterator[Snapshot | None]:
    async with pool.acquire() as conn:
        opened = await _open_at_least(conn, basis, wanted, budget)
        if opened is None:
            yield None
            return
        txn, position, updated_at = opened
        try:
            yield Snapshot(conn, position, updated_at, source)
        except BaseException:
            with contextlib.suppress(*UNAVAILABLE_ERRORS, asyncpg.PostgresError):
                await txn.rollback()
            raise
        await txn.commit()


@contextlib.asynccontextmanager
async def _replica_snapshot(request: web.Request, replica: Replica, basis: Basis,
                            wanted: int) -> AsyncIterator[Snapshot | None]:
    assert replica.pool is not None
    budget = request.app[SETTINGS].min_position_wait_seconds if wanted else 0.0
    entered = False
    try:
        async with _on(replica.pool, basis, wanted, budget, replica.name) as snap:
            entered = True
            yield snap
    except (*UNAVAILABLE_ERRORS, StoreUnavailable) as exc:
        replica.failed(exc)
        if entered:
            raise
        yield None  # it failed before the handler read anything: the primary answers instead


async def refuse_beyond_head(request: web.Request, wanted: int) -> None:
    """422 when ``wanted`` is beyond the primary's log: no wait could reach it."""
    async with translated_errors(), request.app[POOL].acquire() as conn:
        head, _ = await _position(conn, Basis.LOG)
    if wanted > head:
        raise InvalidParameter(f"min_position {wanted} is beyond the log's last position {head}")


async def _primary_refusal(request: web.Request, basis: Basis, wanted: int) -> Exception:
    """The projection on the primary has not reached ``wanted`` within the wait: 503, retry shortly."""
    async with request.app[POOL].acquire() as conn:
        reached, _ = await _position(conn, basis)
    return StoreUnavailable(f"the projection has reached position {reached}, not yet min_position {wanted}; "
                            "retry shortly")


@contextlib.asynccontextmanager
async def snapshot(request: web.Request, basis: Basis) -> AsyncIterator[Snapshot]:
    """A read-only snapshot at or beyond the request's ``min_position``, from a replica in use or the primary."""
    wanted = min_position(request)
    settings, telemetry = request.app[SETTINGS], request.app[TELEMETRY]
    async with translated_errors():
        replica = request.app[REPLICAS].choose()
        if replica is not None:
            try:
                async with _replica_snapshot(request, replica, basis, wanted) as snap:
                    if snap is not None:
                        telemetry.reads.labels("replica").inc()
                        request[READ_POSITION] = snap.position
                        yield snap
                        return
            except _RECOVERY_CONFLICT as exc:
                raise StoreUnavailable(f"the replica cancelled the read (conflict with recovery): {exc}") from exc
            telemetry.replica_fallbacks.inc()
        if wanted:
            await refuse_beyond_head(request, wanted)
        primary_budget = settings.min_position_wait_seconds if wanted and basis is not Basis.LOG else 0.0
        async with _on(request.app[POOL], basis, wanted, primary_budget, "primary") as snap:
            if snap is not None:
                telemetry.reads.labels("primary").inc()
                request[READ_POSITION] = snap.position
                yield snap
                return
        raise await _primary_refusal(request, basis, wanted)


@contextlib.asynccontextmanager
async def primary(request: web.Request) -> AsyncIterator[Connection]:
    """A connection to the primary, for what must see the latest writes (campaign changes, keys)."""
    async with translated_errors(), request.app[POOL].acquire() as conn:
        yield conn


def position_headers(request: web.Request) -> dict[str, str]:
    """The X-Qmstats-Position header for a response prepared by the handler itself (streams)."""
    position = request.get(READ_POSITION)
    return {POSITION_HEADER: str(position)} if position is not None else {}

