"""API keys: tokens shown once and stored as sha256 hashes, roles and region scopes, revocation.

Tokens look like ``qm.<key id>.<secret>``. The key id selects the stored hash and the
hashes are compared in constant time. Every running service keeps the keys in memory and
reloads them on ``NOTIFY qmstats_keys``, which creating or revoking a key sends, so a
revoked key fails on its next request without a database query on every request.
"""

import asyncio
import hashlib
import hmac
import secrets
from typing import Final, get_args

import asyncpg

from events.decide import Role
from events.key_store import ApiKey, insert_key, list_keys
from events.region_store import listed_anywhere
from events.regions import NATION, PROVINCES, is_structurally_valid
from events.store import Connection, translated_errors

ROLES: Final[tuple[Role, ...]] = get_args(Role)


class KeyRequestError(ValueError):
    """A key cannot be created as asked (bad role or region)."""


def hash_token(token: str) -> bytes:
    """The stored form of a token."""
    return hashlib.sha256(token.encode()).digest()


def _key_id(token: str) -> str | None:
    if not token.isascii():  # every token we issue is ASCII; header bytes that are not cannot match
        return None
    parts = token.split(".")
    return parts[1] if len(parts) == 3 and parts[0] == "qm" else None


async def create_key(conn: Connection, *, name: str, role: str,
                     region: str | None) -> tuple[ApiKey, str]:
    """Create a key and return it with its token (the only time the token exists in clear)."""
    if role not in ROLES:
        raise KeyRequestError(f"role must be one of {', '.join(ROLES)}")
    if role == "reporter":
        if region is None or not is_structurally_valid(region):
            raise KeyRequestError("a reporter key needs --region, a GB/T 2260 code (e.g. 330000)")
        if region != NATION and region not in PROVINCES:
            # With official lists imported, a scope must be a region one of them names.
            years, known = await listed_anywhere(conn, region)
            if years and not known:
                raise KeyRequestError(f"region {region} is in none of the imported region lists "
                                      f"({years[0]}–{years[-1]}); check the code")
    elif region is not None:
        raise KeyRequestError("only reporter keys are scoped to a region")
    key_id = secrets.token_hex(6)
    token = f"qm.{key_id}.{secrets.token_urlsafe(32)}"
    key = await insert_key(conn, key_id=key_id, name=name, role=role, region=region, token_hash=hash_token(token))
    return key, token


class KeyRing:
    """The keys of a running service, in memory, kept current by LISTEN qmstats_keys."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._keys: dict[str, ApiKey] = {}
        # Every notified change bumps _changes; a load records the count it started at. A request
        # is answered from memory only once a load that *started* after the last change it could
        # know of has finished, so neither an empty ring at start-up nor a load racing a
        # revocation can let a request through on stale keys.
        self._changes = 0
        self._loaded = -1
        self._live = False
        self._loading: asyncio.Task[None] | None = None

    def invalidate(self) -> None:
        """Forget the cached keys; the next request reloads them."""
        self._changes += 1

    def set_live(self, live: bool) -> None:
        """Whether a listener is delivering key changes; without one every request reads the keys afresh."""
        self._live = live
        self._changes += 1

    async def _load(self, changes: int) -> None:
        # Without the keys no request can be authorised: a lost database is a 503, not a 500.
        async with translated_errors(), self._pool.acquire() as conn:
            keys = await list_keys(conn)
        self._keys = {k.id: k for k in keys}
        self._loaded = max(self._loaded, changes)

    async def ensure_loaded(self) -> None:
        """Load the keys unless memory reflects every change notified so far; concurrent callers share loads."""
        if not self._live:
            self._changes += 1  # nobody tells us of changes: this request needs a fresh read
        wanted = self._changes
        while self._loaded < wanted:
            if self._loading is None or self._loading.done():
                self._loading = asyncio.ensure_future(self._load(self._changes))
            await asyncio.shield(self._loading)

    async def authenticate(self, token: str) -> ApiKey | None:
        """The active key a bearer token belongs to, or None."""
        key_id = _key_id(token)
        if key_id is None:
            return None
        await self.ensure_loaded()
        key = self._keys.get(key_id)
        if key is None or key.revoked_at is not None:
            return None
        return key if hmac.compare_digest(key.token_hash, hash_token(token)) else None

    async def is_active(self, key_id: str) -> bool:
        """Whether the key exists and is not revoked, as of every change notified so far."""
        await self.ensure_loaded()
        key = self._keys.get(key_id)
        return key is not None and key.revoked_at is None
