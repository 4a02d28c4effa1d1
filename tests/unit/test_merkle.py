"""RFC 6962/9162 Merkle tree: test vectors, every inclusion and consistency proof up to 64 leaves, tampering."""

import hashlib

import pytest

from events.merkle import (
    EMPTY_ROOT,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    list_range_hash,
    node_hash,
    root_of,
    verify_consistency,
    verify_inclusion,
)

# The RFC 6962 reference test data (certificate-transparency and transparency-dev/merkle test vectors).
INPUTS = [bytes.fromhex(h) for h in ("", "00", "10", "2021", "3031", "40414243", "5051525354555657",
                                     "606162636465666768696a6b6c6d6e6f")]
ROOTS = [bytes.fromhex(h) for h in (
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328")]
INCLUSION = [  # (leaf index, tree size, audit path)
    (0, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (5, 8, ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (1, 5, ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
    (0, 1, []),
]
CONSISTENCY = [  # (old size, new size, proof)
    (1, 1, []),
    (1, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (6, 8, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 5, ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
]
LEAVES = [leaf_hash(d) for d in INPUTS]


def reference_mth(data: list[bytes]) -> bytes:
    """MTH written as RFC 9162 §2.1.1 states it, recursively, over raw leaf data."""
    if not data:
        return hashlib.sha256(b"").digest()
    if len(data) == 1:
        return hashlib.sha256(b"\x00" + data[0]).digest()
    k = 1
    while k * 2 < len(data):
        k *= 2
    return hashlib.sha256(b"\x01" + reference_mth(data[:k]) + reference_mth(data[k:])).digest()


def flipped(value: bytes, bit: int = 0) -> bytes:
    return bytes([value[0] ^ (1 << bit)]) + value[1:]


def test_empty_tree_root_is_sha256_of_nothing() -> None:
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert root_of([]) == EMPTY_ROOT


@pytest.mark.parametrize("size", range(1, 9))
def test_roots_match_the_rfc_test_vectors(size: int) -> None:
    assert root_of(LEAVES[:size]) == ROOTS[size - 1]
    assert reference_mth(INPUTS[:size]) == ROOTS[size - 1]


@pytest.mark.parametrize(("index", "size", "path"), INCLUSION)
def test_inclusion_proofs_match_the_test_vectors(index: int, size: int, path: list[str]) -> None:
    proof = inclusion_proof(index, size, list_range_hash(LEAVES[:size]))
    assert [h.hex() for h in proof] == path
    assert verify_inclusion(index, size, LEAVES[index], proof, ROOTS[size - 1])


@pytest.mark.parametrize(("old", "new", "path"), CONSISTENCY)
def test_consistency_proofs_match_the_test_vectors(old: int, new: int, path: list[str]) -> None:
    proof = consistency_proof(old, new, list_range_hash(LEAVES[:new]))
    assert [h.hex() for h in proof] == path
    assert verify_consistency(old, new, ROOTS[old - 1], ROOTS[new - 1], proof)


DATA = [f"leaf {i}".encode() for i in range(64)]
HASHES = [leaf_hash(d) for d in DATA]
TREE_ROOTS = [root_of(HASHES[:n]) for n in range(65)]


def test_roots_of_every_size_equal_the_recursive_definition() -> None:
    for n in range(65):
        assert TREE_ROOTS[n] == reference_mth(DATA[:n]), n


def test_every_leaf_of_every_tree_up_to_64_proves_inclusion() -> None:
    reader = list_range_hash(HASHES)
    for size in range(1, 65):
        for index in range(size):
            proof = inclusion_proof(index, size, reader)
            assert verify_inclusion(index, size, HASHES[index], proof, TREE_ROOTS[size]), (index, size)
            # ... and for no other leaf, no other index, and not with any bit of the path flipped.
            assert not verify_inclusion(index, size, leaf_hash(b"other"), proof, TREE_ROOTS[size])
            if size > 1:
                other = (index + 1) % size
                assert not verify_inclusion(other, size, HASHES[index], proof, TREE_ROOTS[size])
            for i in range(len(proof)):
                bad = [*proof[:i], flipped(proof[i]), *proof[i + 1:]]
                assert not verify_inclusion(index, size, HASHES[index], bad, TREE_ROOTS[size])


def test_every_pair_of_sizes_up_to_64_proves_consistency() -> None:
    reader = list_range_hash(HASHES)
    for new in range(0, 65):
        for old in range(0, new + 1):
            proof = consistency_proof(old, new, reader)
            assert verify_consistency(old, new, TREE_ROOTS[old], TREE_ROOTS[new], proof), (old, new)
            if 0 < old < new:
                assert not verify_consistency(old, new, flipped(TREE_ROOTS[old]), TREE_ROOTS[new], proof)
                assert not verify_consistency(old, new, TREE_ROOTS[old], flipped(TREE_ROOTS[new]), proof)
                for i in range(len(proof)):
                    bad = [*proof[:i], flipped(proof[i], 3), *proof[i + 1:]]
                    assert not verify_consistency(old, new, TREE_ROOTS[old], TREE_ROOTS[new], bad), (old, new, i)
                assert not verify_consistency(old, new, TREE_ROOTS[old], TREE_ROOTS[new], proof[:-1])
                assert not verify_consistency(old, new, TREE_ROOTS[old], TREE_ROOTS[new], [*proof, proof[0]])


def test_a_rewritten_history_is_not_consistent() -> None:
    changed = [*HASHES[:10], leaf_hash(b"rewritten"), *HASHES[11:40]]
    proof = consistency_proof(20, 40, list_range_hash(changed))
    assert not verify_consistency(20, 40, TREE_ROOTS[20], root_of(changed), proof)


def test_proofs_refuse_impossible_arguments() -> None:
    reader = list_range_hash(HASHES)
    with pytest.raises(ValueError, match="not in a tree"):
        inclusion_proof(5, 5, reader)
    with pytest.raises(ValueError, match="no consistency proof"):
        consistency_proof(6, 5, reader)
    assert not verify_inclusion(5, 5, HASHES[5], [], TREE_ROOTS[5])
    assert not verify_consistency(6, 5, TREE_ROOTS[6], TREE_ROOTS[5], [])
    assert not verify_consistency(3, 5, TREE_ROOTS[3], TREE_ROOTS[5], [])
    assert not verify_consistency(5, 5, TREE_ROOTS[5], TREE_ROOTS[5], [HASHES[0]])
    assert not verify_consistency(0, 5, EMPTY_ROOT, TREE_ROOTS[5], [HASHES[0]])


def test_node_hash_is_domain_separated_from_leaf_hash() -> None:
    a, b = HASHES[0], HASHES[1]
    assert node_hash(a, b) != leaf_hash(a + b)
    assert node_hash(a, b) == hashlib.sha256(b"\x01" + a + b).digest()
