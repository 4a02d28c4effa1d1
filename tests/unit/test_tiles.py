"""tlog-tiles arithmetic: paths, widths, the integrator's frontier, and proofs read from tiles."""

import pytest

from events.merkle import consistency_proof, inclusion_proof, leaf_hash, list_range_hash, root_of
from events.tiles import (
    FULL_TILE_BYTES,
    Frontier,
    TileRef,
    full_tiles,
    parse_tile_path,
    partial_width,
    range_hash_from_tiles,
    recorded_ranges,
    split_hashes,
    tile_exists,
    tiles_for,
)


@pytest.mark.parametrize(("ref", "path"), [
    (TileRef(0, 0), "0/000"),
    (TileRef(0, 67), "0/067"),
    (TileRef(0, 1000), "0/x001/000"),
    (TileRef(2, 1234067), "2/x001/x234/067"),
    (TileRef(1, 5, 17), "1/005.p/17"),
])
def test_tile_paths_follow_tlog_tiles(ref: TileRef, path: str) -> None:
    assert ref.path == path
    level, rest = path.split("/", 1)
    assert parse_tile_path(level, rest) == ref


@pytest.mark.parametrize(("level", "rest"), [
    ("0", "67"), ("0", "x000/067"), ("0", "000.p/0"), ("0", "000.p/256"), ("0", "000.p/07"), ("01", "000"),
    ("64", "000"), ("0", "x1/000"), ("0", "000/"), ("0", "abc"),
])
def test_paths_that_are_not_tiles_are_refused(level: str, rest: str) -> None:
    with pytest.raises(ValueError, match=r"level|index|width|canonical"):
        parse_tile_path(level, rest)


def test_the_70000_leaf_example_of_the_spec() -> None:
    size = 70_000
    assert (full_tiles(0, size), partial_width(0, size)) == (273, 112)
    assert (full_tiles(1, size), partial_width(1, size)) == (1, 17)
    assert (full_tiles(2, size), partial_width(2, size)) == (0, 1)
    assert tile_exists(TileRef(0, 272), size)
    assert not tile_exists(TileRef(0, 273), size)
    assert tile_exists(TileRef(0, 273, 112), size)
    assert not tile_exists(TileRef(0, 273, 111), size)
    assert partial_width(1, 256) == 1
    assert full_tiles(0, 256) == 1


def tree(n: int) -> list[bytes]:
    return [leaf_hash(i.to_bytes(4, "big")) for i in range(n)]


def test_frontier_roots_and_full_tiles_match_the_tree() -> None:
    leaves = tree(70_000)
    frontier = Frontier()
    stored: dict[TileRef, bytes] = {}
    checkpoints = {1, 2, 255, 256, 257, 511, 512, 65535, 65536, 65537, 69999, 70000}
    for n, leaf in enumerate(leaves, start=1):
        for tile in frontier.append(leaf):
            assert len(tile.hashes) == FULL_TILE_BYTES
            assert tile.root == root_of(split_hashes(tile.hashes))
            stored[TileRef(tile.level, tile.index)] = tile.hashes
        if n in checkpoints:
            assert frontier.root() == root_of(leaves[:n]), n
    assert len(stored) == 273 + 1
    level1 = stored[TileRef(1, 0)]
    assert split_hashes(level1)[3] == root_of(leaves[3 * 256:4 * 256])
    partial = frontier.partial_tiles()
    assert set(partial) == {TileRef(0, 273, 112), TileRef(1, 1, 17), TileRef(2, 0, 1)}
    assert split_hashes(partial[TileRef(2, 0, 1)]) == [root_of(leaves[:65536])]

    # Restoring at a tile boundary from stored tiles gives the same frontier.
    boundary = 273 * 256
    upper = [split_hashes(partial[TileRef(1, 1, 17)]), split_hashes(partial[TileRef(2, 0, 1)])]
    restored = Frontier.restore(boundary, upper)
    restored.extend(leaves[boundary:])
    assert restored.root() == frontier.root()
    with pytest.raises(ValueError, match="tile boundary"):
        Frontier.restore(boundary + 1, upper)
    with pytest.raises(ValueError, match="missing"):
        Frontier.restore(boundary, upper[:1])


def test_proofs_read_from_tiles_equal_proofs_from_leaves() -> None:
    leaves = tree(66_000)
    frontier = Frontier()
    stored: dict[TileRef, bytes] = {}
    for leaf in leaves:
        for tile in frontier.append(leaf):
            stored[TileRef(tile.level, tile.index)] = tile.hashes
    tiles = {**stored, **frontier.partial_tiles()}
    size = len(leaves)
    from_tiles = range_hash_from_tiles(tiles, size)
    from_leaves = list_range_hash(leaves)
    for index in (0, 1, 255, 256, 4097, 65535, 65536, 65999):
        assert inclusion_proof(index, size, from_tiles) == inclusion_proof(index, size, from_leaves), index
    for old in (1, 255, 256, 300, 65535, 65536, 65537):
        assert consistency_proof(old, size, from_tiles) == consistency_proof(old, size, from_leaves), old
    assert from_tiles(0, size) == frontier.root()

    # The tiles a proof needs are exactly what it reads: a proof over only those succeeds.
    ranges = recorded_ranges(lambda reader: inclusion_proof(65999, size, reader))
    needed = tiles_for(ranges, size)
    assert needed <= set(tiles)
    only = range_hash_from_tiles({ref: tiles[ref] for ref in needed}, size)
    assert inclusion_proof(65999, size, only) == inclusion_proof(65999, size, from_leaves)


def test_proofs_at_an_older_size_use_prefixes_of_later_tiles() -> None:
    leaves = tree(1000)
    old = 300
    frontier = Frontier()
    stored: dict[TileRef, bytes] = {}
    for leaf in leaves:
        for tile in frontier.append(leaf):
            stored[TileRef(tile.level, tile.index)] = tile.hashes
    ranges = recorded_ranges(lambda reader: inclusion_proof(299, old, reader))
    needed = tiles_for(ranges, old)
    assert TileRef(0, 1, 44) in needed
    assert TileRef(1, 0, 1) in needed  # the root of leaves 0..255, one level up

    def derive(ref: TileRef) -> bytes:
        # What the store does: a prefix of a full tile, else leaf hashes, else roots of full tiles below.
        if (full := stored.get(TileRef(ref.level, ref.index))) is not None:
            return full[:ref.width * 32]
        if ref.level == 0:
            return b"".join(leaves[ref.index * 256:ref.index * 256 + ref.width])
        below = [stored[TileRef(ref.level - 1, ref.index * 256 + i)] for i in range(ref.width)]
        return b"".join(root_of(split_hashes(tile)) for tile in below)

    tiles = {ref: derive(ref) for ref in needed}
    reader = range_hash_from_tiles(tiles, old)
    assert inclusion_proof(299, old, reader) == inclusion_proof(299, old, list_range_hash(leaves[:old]))
