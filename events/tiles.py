"""The tree as C2SP tlog-tiles: 256-hash tiles, their paths, and subtree hashes read from them.

A full tile at level l and index n holds ``MTH(D[(n·256 + i)·256^l : (n·256 + i + 1)·256^l])`` for
i = 0..255 (8,192 bytes). The partial tile of a tree of size s at level l holds the first
``floor(s / 256^l) mod 256`` of those hashes. Only full tiles are stored; partial ones are derived.

``Frontier`` is the integrator's in-memory right edge of the tree: the partial tile of every level.
Appending leaf hashes to it yields the tiles that became full, bottom level first.
"""

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from events.merkle import EMPTY_ROOT, HASH_SIZE, RangeHash, node_hash, root_of

TILE_HEIGHT: Final = 8
TILE_WIDTH: Final = 1 << TILE_HEIGHT
FULL_TILE_BYTES: Final = TILE_WIDTH * HASH_SIZE
_INDEX_PART = re.compile(r"(?:x\d{3}/)*\d{3}")


@dataclass(frozen=True, slots=True, order=True)
class TileRef:
    """A tile: its level, index within the level, and width (256 = full)."""

    level: int
    index: int
    width: int = TILE_WIDTH

    @property
    def full(self) -> bool:
        """Whether this is a full (256-hash, immutable) tile."""
        return self.width == TILE_WIDTH

    @property
    def path(self) -> str:
        """The tlog-tiles path after ``tile/``: ``L/x001/x234/067`` plus ``.p/W`` for a partial tile."""
        parts = f"{self.index % 1000:03d}"
        rest = self.index // 1000
        while rest:
            parts = f"x{rest % 1000:03d}/{parts}"
            rest //= 1000
        return f"{self.level}/{parts}" + ("" if self.full else f".p/{self.width}")


def parse_tile_path(level: str, rest: str) -> TileRef:
    """Read ``L`` and ``N[.p/W]`` of a tlog-tiles path; ValueError when it is not one."""
    if not re.fullmatch(r"0|[1-9]\d?", level) or int(level) > 63:
        raise ValueError("the level is a decimal integer from 0 to 63")
    index_text, dot, width_text = rest.partition(".p/")
    if not _INDEX_PART.fullmatch(index_text):
        raise ValueError("the index is written as zero-padded 3-digit path elements, e.g. x001/x234/067")
    width = TILE_WIDTH
    if dot:
        if not re.fullmatch(r"[1-9]\d{0,2}", width_text) or int(width_text) >= TILE_WIDTH:
            raise ValueError("a partial tile's width is an integer from 1 to 255")
        width = int(width_text)
    index = int(index_text.replace("x", "").replace("/", ""))
    ref = TileRef(int(level), index, width)
    if ref.path != f"{level}/{rest}":  # e.g. x000/001: not the one spelling the spec allows
        raise ValueError(f"the canonical path of this tile is {ref.path}")
    return ref


def partial_width(level: int, size: int) -> int:
    """Hashes in the partial tile at ``level`` of a tree of ``size`` leaves (0: none)."""
    return (size >> (TILE_HEIGHT * level)) % TILE_WIDTH


def full_tiles(level: int, size: int) -> int:
    """Full tiles at ``level`` in a tree of ``size`` leaves."""
    return size >> (TILE_HEIGHT * (level + 1))


def tile_exists(ref: TileRef, size: int) -> bool:
    """Whether a tree of ``size`` leaves has this tile (a full tile, or its exact partial tile)."""
    if ref.full:
        return ref.index < full_tiles(ref.level, size)
    return ref.index == full_tiles(ref.level, size) and ref.width == partial_width(ref.level, size)


def _perfect_pieces(start: int, end: int) -> list[tuple[int, int]]:
    """``[start, end)`` as aligned perfect subtrees (start, log2 size), largest first."""
    pieces = []
    while start < end:
        k = (end - start).bit_length() - 1
        if start:
            k = min(k, (start & -start).bit_length() - 1)
        pieces.append((start, k))
        start += 1 << k
    return pieces


def _slot(start: int, k: int, size: int) -> tuple[TileRef, int, int]:
    """Where the hashes of the perfect subtree (start, 2^k leaves) sit: tile, offset, count."""
    level, height = divmod(k, TILE_HEIGHT)
    first = start >> (TILE_HEIGHT * level)
    index, offset = divmod(first, TILE_WIDTH)
    if index < full_tiles(level, size):
        return TileRef(level, index), offset, 1 << height
    return TileRef(level, index, partial_width(level, size)), offset, 1 << height


def tiles_for(ranges: Iterable[tuple[int, int]], size: int) -> set[TileRef]:
    """The tiles needed to hash these RFC tree nodes of a tree of ``size`` leaves."""
    return {_slot(start, k, size)[0] for a, b in ranges for start, k in _perfect_pieces(a, b)}


def range_hash_from_tiles(tiles: Mapping[TileRef, bytes], size: int) -> RangeHash:
    """A ``RangeHash`` for the tree of ``size`` leaves reading ``tiles`` (KeyError when one is missing)."""
    def range_hash(start: int, end: int) -> bytes:
        if start == end:
            return EMPTY_ROOT
        roots = []
        for first, k in _perfect_pieces(start, end):
            ref, offset, count = _slot(first, k, size)
            data = tiles[ref]
            roots.append(root_of(split_hashes(data[offset * HASH_SIZE:(offset + count) * HASH_SIZE])))
        root = roots[-1]
        for piece in reversed(roots[:-1]):
            root = node_hash(piece, root)
        return root
    return range_hash


def split_hashes(data: bytes) -> list[bytes]:
    """Concatenated 32-byte hashes as a list."""
    return [data[i:i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)]


def recorded_ranges(prove: Callable[[RangeHash], object]) -> list[tuple[int, int]]:
    """The subtree ranges a proof would read, found by running it with a recording (hash-free) reader."""
    seen: list[tuple[int, int]] = []

    def record(start: int, end: int) -> bytes:
        seen.append((start, end))
        return EMPTY_ROOT

    prove(record)
    return seen


@dataclass(frozen=True, slots=True)
class FullTile:
    """A tile that just became full: its place, its 256 hashes, and its root (its hash one level up)."""

    level: int
    index: int
    hashes: bytes
    root: bytes


@dataclass(slots=True)
class Frontier:
    """The right edge of the tree: the partial tile of every level, and the number of leaves."""

    size: int = 0
    partials: list[list[bytes]] = field(default_factory=list)

    @classmethod
    def restore(cls, size: int, upper: Sequence[Sequence[bytes]]) -> "Frontier":
        """The frontier of a tree whose size is a multiple of 256, from the partial tiles of levels 1, 2, …"""
        if size % TILE_WIDTH:
            raise ValueError("restore at a tile boundary and append the rest")
        partials: list[list[bytes]] = [[]]
        for level, hashes in enumerate(upper, start=1):
            if len(hashes) != partial_width(level, size):
                raise ValueError(f"level {level} needs {partial_width(level, size)} hashes, got {len(hashes)}")
            partials.append(list(hashes))
        if size >> (TILE_HEIGHT * len(partials)):
            raise ValueError(f"level {len(partials)} is missing for size {size}")
        return cls(size, partials)

    def append(self, leaf: bytes) -> list[FullTile]:
        """Add one leaf hash; return the tiles it completed."""
        done: list[FullTile] = []
        carry, level = leaf, 0
        while True:
            if level == len(self.partials):
                self.partials.append([])
            row = self.partials[level]
            row.append(carry)
            if len(row) < TILE_WIDTH:
                break
            root = root_of(row)
            done.append(FullTile(level, (self.size >> (TILE_HEIGHT * (level + 1))), b"".join(row), root))
            row.clear()
            carry, level = root, level + 1
        self.size += 1
        return done

    def extend(self, leaves: Iterable[bytes]) -> list[FullTile]:
        """Add leaf hashes in order; return every tile they completed, in completion order."""
        done: list[FullTile] = []
        for leaf in leaves:
            done.extend(self.append(leaf))
        return done

    def root(self) -> bytes:
        """The tree's root hash (RFC 9162 MTH of all leaves so far)."""
        pieces: list[bytes] = []
        for row in reversed(self.partials):
            start = 0
            for bit in reversed(range(TILE_HEIGHT)):
                if len(row) & (1 << bit):
                    pieces.append(root_of(row[start:start + (1 << bit)]))
                    start += 1 << bit
        if not pieces:
            return EMPTY_ROOT
        root = pieces[-1]
        for piece in reversed(pieces[:-1]):
            root = node_hash(piece, root)
        return root

    def partial_tiles(self) -> dict[TileRef, bytes]:
        """The partial tiles of the tree at its current size."""
        return {TileRef(level, full_tiles(level, self.size), len(row)): b"".join(row)
                for level, row in enumerate(self.partials) if row}
