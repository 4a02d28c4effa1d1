"""The verifiable log: signed checkpoint, verifier key, tlog tiles, inclusion and consistency proofs.

Read like every other read route (``services.reads.snapshot``): from a replica in use, ``min_position`` honoured,
the log position the answer reflects in ``X-Qmstats-Position``. Tiles and checkpoints are rows of the primary,
so a replica holds exactly those it has replayed, each consistent with the log it has replayed.
"""

import uuid

from aiohttp import web

from events.checkpoints import Receipt
from events.errors import NotFound, OutOfScope
from events.regions import is_within
from events.store import Connection, find_event
from events.tiles import TILE_HEIGHT, TILE_WIDTH, full_tiles, parse_tile_path
from events.treestore import (
    StoredCheckpoint,
    checkpoint_of_size,
    event_leaf,
    latest_checkpoint,
    prove_consistency,
    prove_inclusion,
    read_tiles,
)
from schemas.log import ConsistencyProofOut, InclusionProofOut
from services.appkeys import api_key
from services.errors import InvalidParameter, NoCheckpoint, NotInTree
from services.handlers.params import int_param
from services.middleware import allow
from services.negotiation import negotiate
from services.reads import Basis, snapshot
from services.responses import json_response

TEXT = "text/plain"
RECEIPT_FORMATS = ("json", "tlog-proof")
_MAX_SIZE = 2**62
# Checkpoints change every second or so while events arrive; tiles and proofs of a signed size never do.
CHECKPOINT_CACHE = "no-cache"
IMMUTABLE = "public, max-age=31536000, immutable"


def _text(body: str, *, cache: str) -> web.Response:
    return web.Response(text=body, content_type=TEXT, charset="utf-8", headers={"Cache-Control": cache})


def _no_checkpoint_yet() -> NoCheckpoint:
    return NoCheckpoint("the log has not signed a checkpoint yet; the integrator signs one within about a second "
                        "of starting", retry_after="1")


async def _latest(conn: Connection) -> StoredCheckpoint:
    checkpoint = await latest_checkpoint(conn)
    if checkpoint is None:
        raise _no_checkpoint_yet()
    return checkpoint


@allow("reporter", "viewer", "auditor")
async def checkpoint(request: web.Request) -> web.Response:
    """The latest signed checkpoint (C2SP tlog-checkpoint), text/plain."""
    async with snapshot(request, Basis.LOG) as snap:
        conn = snap.conn
        latest = await _latest(conn)
    return _text(latest.note, cache=CHECKPOINT_CACHE)


@allow("reporter", "viewer", "auditor")
async def verifier_key(request: web.Request) -> web.Response:
    """The signed-note verifier key (vkey) of the key that signed the latest checkpoint."""
    async with snapshot(request, Basis.LOG) as snap:
        conn = snap.conn
        latest = await _latest(conn)
    return _text(latest.vkey + "\n", cache=CHECKPOINT_CACHE)


@allow("reporter", "viewer", "auditor")
async def tile(request: web.Request) -> web.Response:
    """A tlog-tiles tile of the tree of the latest checkpoint (full tiles, or partial ones of it)."""
    try:
        ref = parse_tile_path(request.match_info["level"], request.match_info["index"])
    except ValueError as exc:
        raise NotFound(f"not a tile path: {exc}") from None
    async with snapshot(request, Basis.LOG) as snap:
        conn = snap.conn
        size = (await _latest(conn)).tree_size
        # A tile exists once a signed tree holds all it covers: full tiles below the signed size,
        # partial ones of any width up to its edge (each width, once it exists, never changes).
        covered = (ref.index * TILE_WIDTH + ref.width) << (TILE_HEIGHT * ref.level)
        if covered > size or (ref.full and ref.index >= full_tiles(ref.level, size)):
            raise NotFound(f"tile {ref.path} is not in the tree of the latest checkpoint (size {size})")
        data = (await read_tiles(conn, [ref]))[ref]
    return web.Response(body=data, content_type="application/octet-stream", headers={"Cache-Control": IMMUTABLE})


def _proof_format(request: web.Request) -> str:
    """``format=json|tlog-proof``; without it, the Accept header chooses (JSON on a tie, text/plain the receipt)."""
    fmt = request.query.get("format") or None
    if fmt is not None:
        if fmt not in RECEIPT_FORMATS:
            raise InvalidParameter("format is json or tlog-proof")
        return fmt
    return "tlog-proof" if negotiate(request, ("application/json", TEXT)) == TEXT else "json"


async def _checkpoint_for(conn: Connection, requested: int | None) -> StoredCheckpoint:
    if requested is None:
        return await _latest(conn)
    found = await checkpoint_of_size(conn, requested)
    if found is not None:
        return found
    latest = await _latest(conn)
    if requested > latest.tree_size:
        raise NoCheckpoint(f"no checkpoint of tree size {requested} has been signed; the latest is of size "
                           f"{latest.tree_size} (omit tree_size for it)")
    raise NoCheckpoint(f"no checkpoint was signed at tree size {requested}; ask for a size a checkpoint states, "
                       f"or omit tree_size for the latest ({latest.tree_size})")


@allow("reporter", "auditor")
async def event_proof(request: web.Request) -> web.Response:
    """Inclusion proof of one event in a signed checkpoint's tree (JSON, or a tlog-proof receipt)."""
    try:
        event_id = str(uuid.UUID(request.match_info["event_id"]))
    except ValueError:
        raise NotFound(f"no event {request.match_info['event_id']!r}: event ids are UUIDs") from None
    fmt = _proof_format(request)
    requested = int_param(request, "tree_size", -1, low=0, high=_MAX_SIZE)
    key = api_key(request)
    async with snapshot(request, Basis.LOG) as snap:
        conn = snap.conn
        record = await find_event(conn, event_id)
        if record is None:
            raise NotFound(f"no event {event_id}")
        if key.role == "reporter" and key.region is not None and not is_within(record.region, key.region):
            raise OutOfScope(f"event {event_id} is in region {record.region}, outside this key's scope")
        signed = await _checkpoint_for(conn, None if requested < 0 else requested)
        index = record.position - 1
        if index >= signed.tree_size:
            raise NotInTree(
                f"event {event_id} is at position {record.position}, beyond the checkpoint's tree of size "
                f"{signed.tree_size}" + ("; a new checkpoint covers it within about a second" if requested < 0 else ""),
                retry_after="1" if requested < 0 else None)
        path = await prove_inclusion(conn, index, signed.tree_size)
    # Against a named tree size the answer never changes; against "the latest" it moves with the log.
    cache = "private, max-age=31536000, immutable" if requested >= 0 else CHECKPOINT_CACHE
    if fmt == "tlog-proof":
        return _text(Receipt(index, path, signed.note).text(), cache=cache)
    return json_response(InclusionProofOut(
        event_id=event_id, position=record.position, leaf_index=index, tree_size=signed.tree_size,
        leaf_hash=event_leaf(record).hex(), audit_path=[h.hex() for h in path], checkpoint=signed.note),
        headers={"Cache-Control": cache})


@allow("auditor")
async def consistency(request: web.Request) -> web.Response:
    """Consistency proof between two tree sizes (``to`` defaults to the latest checkpoint)."""
    if not request.query.get("from"):
        raise InvalidParameter("from is required: the tree size you hold a checkpoint of")
    old = int_param(request, "from", 0, low=0, high=_MAX_SIZE)
    new = int_param(request, "to", -1, low=0, high=_MAX_SIZE)
    async with snapshot(request, Basis.LOG) as snap:
        conn = snap.conn
        signed = await _checkpoint_for(conn, None if new < 0 else new)
        if old > signed.tree_size:
            raise InvalidParameter(f"from ({old}) must not exceed to ({signed.tree_size})")
        proof = await prove_consistency(conn, old, signed.tree_size)
    body = ConsistencyProofOut.model_validate({"from": old, "to": signed.tree_size, "proof": [h.hex() for h in proof],
                                               "checkpoint": signed.note})
    return json_response(body.model_dump(by_alias=True))
