"""Recompute the Merkle tree from position 1 and hold the stored tiles and checkpoints against it.

Independent of the chain check (events.stored_chain): a changed event row breaks both, each at its own
evidence. A stored full tile pins every leaf it holds, so a change there is named by position; a change
after the last full tile is caught by the first checkpoint whose root it alters.
"""

from dataclasses import dataclass

from events.checkpoints import ProofError, parse_checkpoint_text
from events.merkle import EMPTY_ROOT, verify_consistency
from events.notes import NoteError, Verifier, open_note
from events.store import Connection
from events.tiles import TILE_WIDTH, Frontier, FullTile, split_hashes
from events.treestore import (
    LogGap,
    StoredCheckpoint,
    TreeIncomplete,
    all_checkpoints,
    count_tiles,
    prove_consistency,
    read_leaves,
    stored_full_tiles,
)


@dataclass(frozen=True, slots=True)
class TreeReport:
    """The outcome of a tree check."""

    ok: bool
    leaves: int
    tiles: int
    checkpoints: int
    first_bad_position: int | None = None
    first_bad_checkpoint: int | None = None
    problem: str | None = None


def _checkpoint_problem(cp: StoredCheckpoint, root: bytes) -> str | None:
    if cp.root != root:
        return f"the checkpoint of size {cp.tree_size} has a root the log does not give"
    try:
        verifier = Verifier.parse(cp.vkey)
        stated = parse_checkpoint_text(open_note(cp.note, [verifier]))
    except (NoteError, ProofError) as exc:
        return f"the checkpoint of size {cp.tree_size} does not verify: {exc}"
    if verifier.key_id != cp.key_id or (stated.size, stated.root) != (cp.tree_size, cp.root):
        return f"the checkpoint note of size {cp.tree_size} does not state its row"
    return None


def _first_bad_leaf(stored: bytes, rebuilt: FullTile) -> int:
    for i, (a, b) in enumerate(zip(split_hashes(stored), split_hashes(rebuilt.hashes), strict=True)):
        if a != b:
            return i
    return 0


async def verify_tree(conn: Connection, *, page: int = 5000) -> TreeReport:
    """Rebuild the tree from every event; compare every stored tile and checkpoint, and check each
    checkpoint's consistency with the one before it (with proofs read from the stored tiles).

    Runs in one repeatable-read snapshot, so an integrator working meanwhile cannot make it see half a step."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        return await _verify_tree(conn, page)


async def _verify_tree(conn: Connection, page: int) -> TreeReport:
    checkpoints = await all_checkpoints(conn)
    tiles = await count_tiles(conn)
    frontier = Frontier()
    next_cp = 0
    previous: StoredCheckpoint | None = None
    compared = 0

    def report(position: int | None, size: int | None, problem: str) -> TreeReport:
        return TreeReport(False, frontier.size, tiles, len(checkpoints), position, size, problem)

    reached: list[tuple[StoredCheckpoint, bytes]] = []
    while next_cp < len(checkpoints) and checkpoints[next_cp].tree_size == 0:
        reached.append((checkpoints[next_cp], EMPTY_ROOT))
        next_cp += 1
    while True:
        try:
            leaves = await read_leaves(conn, frontier.size, page)
        except LogGap as gap:
            return report(gap.position, None, str(gap))
        rebuilt: list[FullTile] = []
        for leaf in leaves:
            rebuilt.extend(frontier.append(leaf))
            while next_cp < len(checkpoints) and checkpoints[next_cp].tree_size == frontier.size:
                reached.append((checkpoints[next_cp], frontier.root()))
                next_cp += 1
        # Tiles first: a differing tile names the very position that changed.
        stored = await stored_full_tiles(conn, [(t.level, t.index) for t in rebuilt])
        for tile in rebuilt:
            found = stored.get((tile.level, tile.index))
            if found is None:
                continue  # not stored yet (the integrator is behind): nothing to compare
            compared += 1
            if found != tile.hashes:
                bad = tile.index * TILE_WIDTH + _first_bad_leaf(found, tile) + 1 if tile.level == 0 else None
                return report(bad, None,
                              f"stored tile {tile.level}/{tile.index} differs from the tree rebuilt from the log")
        for cp, root in reached:
            if (problem := _checkpoint_problem(cp, root)) is not None:
                return report(None, cp.tree_size, problem)
            if previous is not None:
                try:
                    proof = await prove_consistency(conn, previous.tree_size, cp.tree_size)
                except TreeIncomplete as exc:
                    return report(None, cp.tree_size, f"no consistency proof from the stored tiles: {exc}")
                if not verify_consistency(previous.tree_size, cp.tree_size, previous.root, cp.root, proof):
                    return report(None, cp.tree_size, f"the checkpoints of sizes {previous.tree_size} and "
                                                      f"{cp.tree_size} are not consistent")
            previous = cp
        reached.clear()
        if len(leaves) < page:
            break
    if next_cp < len(checkpoints):
        cp = checkpoints[next_cp]
        return report(None, cp.tree_size, f"a checkpoint of size {cp.tree_size} is beyond the log's "
                                          f"{frontier.size} events")
    if compared < tiles:
        return report(None, None, f"{tiles - compared} stored tiles lie beyond the log's {frontier.size} events")
    return TreeReport(True, frontier.size, tiles, len(checkpoints))
