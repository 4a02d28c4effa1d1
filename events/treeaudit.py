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


@dataclass(frozen=True, slots=True)
class _Finding:
    """Where a check failed: a position, a checkpoint's tree size, and what is wrong."""

    position: int | None
    tree_size: int | None
    problem: str


async def _compare_tiles(conn: Connection, rebuilt: list[FullTile]) -> tuple[int, _Finding | None]:
    """Stored tiles against the rebuilt ones: how many were stored, and the first that differs.

    A differing level-0 tile names the very position that changed."""
    stored = await stored_full_tiles(conn, [(t.level, t.index) for t in rebuilt])
    compared = 0
    for tile in rebuilt:
        found = stored.get((tile.level, tile.index))
        if found is None:
            continue  # not stored yet (the integrator is behind): nothing to compare
        compared += 1
        if found != tile.hashes:
            bad = tile.index * TILE_WIDTH + _first_bad_leaf(found, tile) + 1 if tile.level == 0 else None
            return compared, _Finding(bad, None, f"stored tile {tile.level}/{tile.index} differs from the tree "
                                                 "rebuilt from the log")
    return compared, None


async def _check_checkpoint(conn: Connection, cp: StoredCheckpoint, root: bytes,
                            previous: StoredCheckpoint | None) -> _Finding | None:
    """One checkpoint against the rebuilt root, its signature, and its consistency with the one before."""
    if (problem := _checkpoint_problem(cp, root)) is not None:
        return _Finding(None, cp.tree_size, problem)
    if previous is None:
        return None
    try:
        proof = await prove_consistency(conn, previous.tree_size, cp.tree_size)
    except TreeIncomplete as exc:
        return _Finding(None, cp.tree_size, f"no consistency proof from the stored tiles: {exc}")
    if not verify_consistency(previous.tree_size, cp.tree_size, previous.root, cp.root, proof):
        return _Finding(None, cp.tree_size, f"the checkpoints of sizes {previous.tree_size} and {cp.tree_size} "
                                            "are not consistent")
    return None


async def _verify_tree(conn: Connection, page: int) -> TreeReport:
    checkpoints = await all_checkpoints(conn)
    tiles = await count_tiles(conn)
    frontier = Frontier()
    previous: StoredCheckpoint | None = None
    compared = 0

    def report(finding: _Finding) -> TreeReport:
        return TreeReport(False, frontier.size, tiles, len(checkpoints), finding.position, finding.tree_size,
                          finding.problem)

    pending = list(reversed(checkpoints))  # smallest tree last, to pop
    reached = [(pending.pop(), EMPTY_ROOT) for _ in range(sum(1 for c in checkpoints if c.tree_size == 0))]
    while True:
        try:
            leaves = await read_leaves(conn, frontier.size, page)
        except LogGap as gap:
            return report(_Finding(gap.position, None, str(gap)))
        rebuilt: list[FullTile] = []
        for leaf in leaves:
            rebuilt.extend(frontier.append(leaf))
            while pending and pending[-1].tree_size == frontier.size:
                reached.append((pending.pop(), frontier.root()))
        done, finding = await _compare_tiles(conn, rebuilt)
        compared += done
        for cp, root in reached:
            finding = finding or await _check_checkpoint(conn, cp, root, previous)
            previous = cp
        if finding is not None:
            return report(finding)
        reached.clear()
        if len(leaves) < page:
            break
    if pending:
        return report(_Finding(None, pending[-1].tree_size, f"a checkpoint of size {pending[-1].tree_size} is "
                                                            f"beyond the log's {frontier.size} events"))
    if compared < tiles:
        return report(_Finding(None, None, f"{tiles - compared} stored tiles lie beyond the log's "
                                           f"{frontier.size} events"))
    return TreeReport(True, frontier.size, tiles, len(checkpoints))
