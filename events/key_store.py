"""API keys in PostgreSQL: stored hashes (never tokens), roles, region scopes and revocation.

Every change sends NOTIFY on KEYS_CHANNEL, which each running service listens to so it
reloads its keys (services/keyring).
"""

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from events.coordination import KEYS_CHANNEL, notify
from events.decide import Actor, Role
from events.regions import NATION
from events.store import Connection, translating


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A stored key (never the token itself)."""

    id: str
    name: str
    role: Role
    region: str | None
    token_hash: bytes
    created_at: datetime
    revoked_at: datetime | None

    @property
    def actor(self) -> Actor:
        """Who this key acts as when it appends events."""
        scope = self.region if self.role == "reporter" and self.region != NATION else None
        return Actor(self.id, self.role, scope)


def _from_row(row: asyncpg.Record) -> ApiKey:
    return ApiKey(row["id"], row["name"], row["role"], row["region"], bytes(row["token_hash"]),
                  row["created_at"], row["revoked_at"])


@translating
async def insert_key(conn: Connection, *, key_id: str, name: str, role: str, region: str | None,
                     token_hash: bytes) -> ApiKey:
    """Store a new key and tell every service."""
    row = await conn.fetchrow(
        "INSERT INTO api_keys (id, name, role, region, token_hash) VALUES ($1, $2, $3, $4, $5) RETURNING *",
        key_id, name, role, region, token_hash)
    await notify(conn, KEYS_CHANNEL, key_id)
    assert row is not None  # INSERT ... RETURNING yields the row it inserted
    return _from_row(row)


@translating
async def list_keys(conn: Connection) -> list[ApiKey]:
    """Every key, oldest first, revoked ones included."""
    return [_from_row(r) for r in await conn.fetch("SELECT * FROM api_keys ORDER BY created_at, id")]


@translating
async def revoke_key(conn: Connection, key_id: str) -> bool:
    """Revoke a key and tell every service; False if there is no such active key."""
    done = await conn.fetchval(
        "UPDATE api_keys SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL RETURNING id", key_id)
    await notify(conn, KEYS_CHANNEL, key_id)
    return done is not None
