"""The Merkle tree over the log (RFC 9162 §2.1): hashes, inclusion and consistency proofs, and their checks.

Leaf i is the canonical bytes of the event at position i + 1 (docs/canonical-form.md). Leaves are hashed
``SHA-256(0x00 ‖ bytes)``, interior nodes ``SHA-256(0x01 ‖ left ‖ right)``; the tree of n leaves splits at
the largest power of two below n. The chain (``hash = sha256(prev ‖ bytes)``) is separate and never mixed in.

Proof generation reads subtree hashes through ``RangeHash``: ``range_hash(start, end)`` is the root of
leaves ``[start, end)``, asked only for ranges that are nodes of an RFC tree (``start`` aligned to a power
of two no smaller than ``end - start``). The stores answer it from tiles; tests answer it from a list.
"""

import hashlib
from collections.abc import Callable, Sequence
from typing import Final

HASH_SIZE: Final = 32
EMPTY_ROOT: Final = hashlib.sha256(b"").digest()
"""The root of the empty tree, MTH({}) = SHA-256()."""

RangeHash = Callable[[int, int], bytes]


def leaf_hash(data: bytes) -> bytes:
    """RFC 9162 leaf hash: SHA-256(0x00 ‖ data)."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 9162 interior node hash: SHA-256(0x01 ‖ left ‖ right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def split_point(n: int) -> int:
    """The largest power of two strictly smaller than n (n ≥ 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def root_of(hashes: Sequence[bytes]) -> bytes:
    """MTH over already-hashed leaves (or over subtree roots of equal power-of-two size)."""
    if not hashes:
        return EMPTY_ROOT
    # Bottom-up: pair neighbours; an odd node at the right edge is carried up unchanged, which is exactly
    # where RFC 9162's "largest power of two" split puts it.
    level = list(hashes)
    while len(level) > 1:
        paired = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


def inclusion_proof(index: int, size: int, range_hash: RangeHash) -> list[bytes]:
    """PATH(index, D[0:size]) of RFC 9162 §2.1.3.1: sibling hashes from the leaf up to the root's child."""
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is not in a tree of size {size}")
    path: list[bytes] = []
    start, end = 0, size
    while end - start > 1:
        k = split_point(end - start)
        if index < start + k:
            path.append(range_hash(start + k, end))
            end = start + k
        else:
            path.append(range_hash(start, start + k))
            start += k
    path.reverse()
    return path


def consistency_proof(old_size: int, new_size: int, range_hash: RangeHash) -> list[bytes]:
    """PROOF(old_size, D[0:new_size]) of RFC 9162 §2.1.4.1; empty when old_size is 0 or equals new_size."""
    if not 0 <= old_size <= new_size:
        raise ValueError(f"no consistency proof from size {old_size} to size {new_size}")
    if old_size in (0, new_size):
        return []
    proof: list[bytes] = []
    m, start, end, complete = old_size, 0, new_size, True
    while m != end - start:
        k = split_point(end - start)
        if m <= k:
            proof.append(range_hash(start + k, end))
            end = start + k
        else:
            proof.append(range_hash(start, start + k))
            m -= k
            start += k
            complete = False
    if not complete:
        proof.append(range_hash(start, end))
    proof.reverse()
    return proof


def root_from_inclusion(index: int, size: int, leaf: bytes, path: Sequence[bytes]) -> bytes | None:
    """The root an inclusion proof leads to (RFC 9162 §2.1.3.2), or None when the path has the wrong shape."""
    if not 0 <= index < size:
        return None
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return r if sn == 0 else None


def verify_inclusion(index: int, size: int, leaf: bytes, path: Sequence[bytes], root: bytes) -> bool:
    """True when ``path`` proves leaf hash ``leaf`` is leaf ``index`` of the tree of ``size`` with ``root``."""
    return root_from_inclusion(index, size, leaf, path) == root


def verify_consistency(old_size: int, new_size: int, old_root: bytes, new_root: bytes,
                       proof: Sequence[bytes]) -> bool:
    """True when ``proof`` shows the tree of ``new_size`` extends the one of ``old_size`` (RFC 9162 §2.1.4.2).

    As in the Go reference (transparency-dev/merkle): equal sizes need an empty proof and equal roots, and
    every tree extends the empty one (size 0, empty proof).
    """
    if not 0 <= old_size <= new_size:
        return False
    if old_size == new_size:
        return not proof and old_root == new_root
    if old_size == 0:
        return not proof
    if not proof:
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # an exact power of two: the old root is the first node
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == old_root and sr == new_root


def list_range_hash(leaves: Sequence[bytes]) -> RangeHash:
    """A ``RangeHash`` over leaf hashes held in memory (tests, offline verification, small trees)."""
    def range_hash(start: int, end: int) -> bytes:
        return root_of(leaves[start:end])
    return range_hash
