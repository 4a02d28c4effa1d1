"""The Merkle tree's store: full tiles, signed checkpoints, and proofs read from them.

Only full tiles are stored (insert-only, like the log). A partial tile is derived when asked: a
prefix of the full tile once it exists, else the leaf hashes of the newest events (level 0) or the
stored roots of the full tiles one level down (levels ≥ 1).
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg
import orjson

from events.canonical import canonical_bytes
from events.merkle import consistency_proof, inclusion_proof, leaf_hash
from events.records import RecordedEvent
from events.store import Connection, translating
from events.tiles import (
    TILE_WIDTH,
    FullTile,
    TileRef,
    full_tiles,
    partial_width,
    range_hash_from_tiles,
    recorded_ranges,
    tiles_for,
)


class TreeIncomplete(Exception):
    """The stored tree does not reach the size asked for (the integrator has not got there yet)."""


class LogGap(TreeIncomplete):
    """A position is missing from the log, so no leaf can follow it."""

    def __init__(self, position: int) -> None:
        super().__init__(f"the log has no event at position {position}: the tree cannot pass a gap")
        self.position = position


@dataclass(frozen=True, slots=True)
class StoredCheckpoint:
    """A signed checkpoint as kept in the store."""

    tree_size: int
    key_id: bytes
    root: bytes
    note: str
    vkey: str
    signed_at: datetime


def event_leaf(record: RecordedEvent) -> bytes:
    """The leaf hash of an event: SHA-256(0x00 ‖ its canonical bytes), the bytes the chain hashes."""
    return leaf_hash(canonical_bytes(record.canonical_fields()))


# The members of the canonical form (docs/canonical-form.md), read straight from the row: timestamps are
# formatted by PostgreSQL exactly as events.canonical.format_timestamp writes them, and nothing else the
# row holds is fetched. The integrator reads every event once, beside the projector, so this read is kept
# narrow; tests/integration/test_log_tree.py holds its bytes equal to RecordedEvent.canonical_fields', on odd
# timestamps and payloads and on every tile the integrator stores.
_CANONICAL_TIME = """to_char({} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"""
_LEAF_SQL = ("SELECT position, campaign, data::text AS data, event_id::text AS event_id, "
             f"{_CANONICAL_TIME.format('occurred_at')} AS occurred_at, "
             f"{_CANONICAL_TIME.format('recorded_at')} AS recorded_at, recorded_by, region, request_id, "
             "schema_version, type FROM events WHERE position > $1 ORDER BY position LIMIT $2")


def canonical_row_leaf(row: asyncpg.Record) -> bytes:
    """The leaf hash of an event read with ``_LEAF_SQL``."""
    fields = dict(row)
    fields["data"] = orjson.loads(fields["data"])
    return leaf_hash(canonical_bytes(fields))


@translating
async def read_leaves(conn: Connection, after: int, limit: int) -> list[bytes]:
    """Leaf hashes of the events at positions after+1 … after+limit (fewer at the head).

    Leaf i is position i + 1 only while positions have no gap; a missing row stops the tree here."""
    rows = await conn.fetch(_LEAF_SQL, after, limit)
    if rows and rows[-1]["position"] != after + len(rows):
        raise LogGap(next(after + i + 1 for i, r in enumerate(rows) if r["position"] != after + i + 1))
    return [canonical_row_leaf(r) for r in rows]


@translating
async def insert_tiles(conn: Connection, tiles: Sequence[FullTile]) -> None:
    """Store tiles that became full (they never change again)."""
    if tiles:
        await conn.execute(
            "INSERT INTO log_tiles (level, idx, hashes, root) "
            "SELECT * FROM unnest($1::smallint[], $2::bigint[], $3::bytea[], $4::bytea[])",
            [t.level for t in tiles], [t.index for t in tiles], [t.hashes for t in tiles], [t.root for t in tiles])


@translating
async def stored_leaf_count(conn: Connection) -> int:
    """Leaves covered by full level-0 tiles: where an integrator restarting resumes reading events."""
    count = await conn.fetchval("SELECT coalesce(max(idx) + 1, 0) FROM log_tiles WHERE level = 0")
    return int(count) * TILE_WIDTH


@translating
async def upper_partials(conn: Connection, size: int) -> list[list[bytes]]:
    """The partial tiles of levels 1, 2, … of a tree of ``size`` leaves (a multiple of 256)."""
    levels = []
    level = 1
    while size >> (8 * level):
        start = full_tiles(level, size) * TILE_WIDTH
        width = partial_width(level, size)
        rows = await conn.fetch("SELECT root FROM log_tiles WHERE level = $1 AND idx >= $2 AND idx < $3 "
                                "ORDER BY idx", level - 1, start, start + width)
        if len(rows) != width:
            raise TreeIncomplete(f"level {level - 1} has {len(rows)} of the {width} tiles a size of {size} needs")
        levels.append([bytes(r["root"]) for r in rows])
        level += 1
    return levels


@translating
async def read_tiles(conn: Connection, refs: Iterable[TileRef]) -> dict[TileRef, bytes]:
    """The hashes of these tiles, full ones from the store and partial ones derived."""
    wanted = sorted(set(refs))
    rows = await conn.fetch(
        "SELECT level, idx, hashes FROM log_tiles "
        "WHERE (level, idx) IN (SELECT * FROM unnest($1::smallint[], $2::bigint[]))",
        [r.level for r in wanted], [r.index for r in wanted])
    stored = {(r["level"], r["idx"]): bytes(r["hashes"]) for r in rows}
    found: dict[TileRef, bytes] = {}
    for ref in wanted:
        full = stored.get((ref.level, ref.index))
        if full is not None:
            found[ref] = full[:ref.width * 32]
        elif ref.full:
            raise TreeIncomplete(f"tile {ref.path} is not stored yet")
        elif ref.level == 0:
            leaves = await read_leaves(conn, ref.index * TILE_WIDTH, ref.width)
            if len(leaves) != ref.width:
                raise TreeIncomplete(f"the log has no events for all of tile {ref.path}")
            found[ref] = b"".join(leaves)
        else:
            start = ref.index * TILE_WIDTH
            roots = await conn.fetch("SELECT root FROM log_tiles WHERE level = $1 AND idx >= $2 AND idx < $3 "
                                     "ORDER BY idx", ref.level - 1, start, start + ref.width)
            if len(roots) != ref.width:
                raise TreeIncomplete(f"tile {ref.path} needs tiles one level down that are not stored yet")
            found[ref] = b"".join(bytes(r["root"]) for r in roots)
    return found


@translating
async def prove_inclusion(conn: Connection, index: int, size: int) -> list[bytes]:
    """The RFC 9162 audit path of leaf ``index`` in the tree of ``size`` leaves, read from tiles."""
    ranges = recorded_ranges(lambda reader: inclusion_proof(index, size, reader))
    tiles = await read_tiles(conn, tiles_for(ranges, size))
    return inclusion_proof(index, size, range_hash_from_tiles(tiles, size))


@translating
async def prove_consistency(conn: Connection, old_size: int, new_size: int,
                            known: dict[TileRef, bytes] | None = None) -> list[bytes]:
    """The RFC 9162 consistency proof from ``old_size`` to ``new_size``; ``known`` tiles are not read again."""
    ranges = recorded_ranges(lambda reader: consistency_proof(old_size, new_size, reader))
    needed = tiles_for(ranges, new_size)
    tiles = dict(known or {})
    tiles.update(await read_tiles(conn, needed - set(tiles)))
    return consistency_proof(old_size, new_size, range_hash_from_tiles(tiles, new_size))


_CHECKPOINT = "SELECT tree_size, key_id, root, note, vkey, signed_at FROM log_checkpoints"


def _checkpoint(row: asyncpg.Record) -> StoredCheckpoint:
    return StoredCheckpoint(row["tree_size"], bytes(row["key_id"]), bytes(row["root"]), row["note"], row["vkey"],
                            row["signed_at"])


@translating
async def insert_checkpoint(conn: Connection, tree_size: int, key_id: bytes, root: bytes, note: str,
                            vkey: str) -> None:
    """Keep a signed checkpoint (once per size and key)."""
    await conn.execute("INSERT INTO log_checkpoints (tree_size, key_id, root, note, vkey) VALUES ($1, $2, $3, $4, $5) "
                       "ON CONFLICT DO NOTHING", tree_size, key_id, root, note, vkey)


@translating
async def latest_checkpoint(conn: Connection) -> StoredCheckpoint | None:
    """The checkpoint of the largest tree (the most recently signed one at that size)."""
    row = await conn.fetchrow(f"{_CHECKPOINT} ORDER BY tree_size DESC, signed_at DESC LIMIT 1")
    return _checkpoint(row) if row else None


@translating
async def checkpoint_of_size(conn: Connection, tree_size: int) -> StoredCheckpoint | None:
    """The most recently signed checkpoint of exactly this tree size."""
    row = await conn.fetchrow(f"{_CHECKPOINT} WHERE tree_size = $1 ORDER BY signed_at DESC LIMIT 1", tree_size)
    return _checkpoint(row) if row else None


@translating
async def covering_checkpoint(conn: Connection, position: int) -> StoredCheckpoint | None:
    """The first checkpoint whose tree holds the event at ``position`` (the smallest size ≥ position)."""
    row = await conn.fetchrow(f"{_CHECKPOINT} WHERE tree_size >= $1 ORDER BY tree_size, signed_at LIMIT 1",
                              position)
    return _checkpoint(row) if row else None


@translating
async def all_checkpoints(conn: Connection) -> list[StoredCheckpoint]:
    """Every stored checkpoint, smallest tree first."""
    return [_checkpoint(r) for r in await conn.fetch(f"{_CHECKPOINT} ORDER BY tree_size, signed_at")]


@translating
async def stored_full_tiles(conn: Connection, keys: Sequence[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
    """The stored full tiles among these (level, index) keys; missing ones are left out."""
    rows = await conn.fetch(
        "SELECT level, idx, hashes FROM log_tiles "
        "WHERE (level, idx) IN (SELECT * FROM unnest($1::smallint[], $2::bigint[]))",
        [k[0] for k in keys], [k[1] for k in keys])
    return {(r["level"], r["idx"]): bytes(r["hashes"]) for r in rows}


@translating
async def count_tiles(conn: Connection) -> int:
    """How many full tiles are stored."""
    return int(await conn.fetchval("SELECT count(*) FROM log_tiles"))
