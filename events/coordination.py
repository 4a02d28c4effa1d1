"""Every advisory lock and NOTIFY channel the processes share, and the statements that take or send them.

Advisory lock keys share one 64-bit space per database, so they are listed here, once,
where a new one cannot collide unseen. NOTIFY is only ever a hint: every listener also
polls, because a notification sent while it was disconnected is lost.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from events.store import Connection

APPEND_LOCK: Final = 0x716D_0001
"""Transaction lock taken before the head is read, held until commit: appends are serialized (see events/store)."""
MIGRATE_LOCK: Final = 0x716D_0002
"""Session lock: one process applies migrations at a time."""
PROJECTOR_LOCK: Final = 0x716D_0003
"""Session lock held by the active projector; its connection dying releases it to a standby."""
TABLES_LOCK: Final = 0x716D_0004
"""Live read-table batches take it shared; a rebuild takes it exclusively to swap its tables in."""
FLAGS_PROJECTOR_LOCK: Final = 0x716D_0F01
"""Session lock held by the active data-quality flags projector (issue 15), independent of PROJECTOR_LOCK."""
INTEGRATOR_LOCK: Final = 0x716D_0007
"""Session lock held by the active integrator (the Merkle tree and checkpoints, services/integrator)."""
REBUILD_LOCK: Final = 0x716D_0008
"""Session lock held by a running rebuild: a second one is refused (they would drop each other's working tables)."""

EVENTS_CHANNEL: Final = "qmstats_events"
"""Sent when events commit; the payload is the new head position."""
PROJECTION_CHANNEL: Final = "qmstats_projection"
"""Sent when a projector batch commits; the payload is the new checkpoint position."""
FLAGS_CHANNEL: Final = "qmstats_flags"
"""Sent when a flags projector batch commits; the payload is the flags checkpoint position."""
KEYS_CHANNEL: Final = "qmstats_keys"
"""Sent when an API key is created or revoked; the payload is the key id."""
REGIONS_CHANNEL: Final = "qmstats_regions"
"""Sent when a region list is imported; the payload is the lists' new version (cached reads key on it)."""


async def lock_transaction(conn: Connection, key: int, *, shared: bool = False) -> None:
    """Take an advisory lock until the current transaction ends (waits for it)."""
    if shared:
        await conn.execute("SELECT pg_advisory_xact_lock_shared($1)", key)
    else:
        await conn.execute("SELECT pg_advisory_xact_lock($1)", key)


async def lock_session(conn: Connection, key: int) -> None:
    """Take an advisory lock until ``unlock_session`` or the connection closes (waits for it)."""
    await conn.execute("SELECT pg_advisory_lock($1)", key)


async def try_lock_session(conn: Connection, key: int) -> bool:
    """Take an advisory lock for the session if nobody holds it; whether it was taken."""
    return bool(await conn.fetchval("SELECT pg_try_advisory_lock($1)", key))


async def unlock_session(conn: Connection, key: int) -> None:
    """Release a session advisory lock taken on this connection."""
    await conn.execute("SELECT pg_advisory_unlock($1)", key)


async def notify(conn: Connection, channel: str, payload: str) -> None:
    """Send a notification (delivered when the current transaction commits)."""
    await conn.execute("SELECT pg_notify($1, $2)", channel, payload)


async def ping(conn: Connection) -> None:
    """One round trip: raises if the connection or the server is gone."""
    await conn.fetchval("SELECT 1")


async def in_recovery(conn: Connection) -> bool:
    """Whether the server is a hot standby (replaying a primary's WAL): it can be read, never written, locked for
    the primary, or LISTENed on."""
    return bool(await conn.fetchval("SELECT pg_is_in_recovery()"))
