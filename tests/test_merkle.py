"""RFC 6962 Merkle hashing and proofs (recorder/merkle.py) against published vectors, a
naive reference built straight from the RFC's definitions, and Hypothesis properties."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from recorder.merkle import (
    EMPTY_ROOT,
    CompactRange,
    MerkleTree,
    leaf_hash,
    node_hash,
    verify_consistency,
    verify_inclusion,
)

# Certificate Transparency's reference leaves and tree heads (transparency-dev/merkle).
CT_ENTRIES = [
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
]
CT_ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
CT_INCLUSION = {
    (0, 8): [
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ],
    (5, 8): [
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ],
}
CT_CONSISTENCY = {
    (2, 5): [
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    ],
    (2, 8): [
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ],
    (6, 8): [
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ],
}
CT_LEAVES = [leaf_hash(bytes.fromhex(e)) for e in CT_ENTRIES]


# -- a naive reference, written from RFC 6962 §2.1 as literally as possible -------------


def _k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_mth(d: list[bytes]) -> bytes:
    if not d:
        return hashlib.sha256(b"").digest()
    if len(d) == 1:
        return d[0]  # d holds leaf hashes already
    k = _k(len(d))
    return node_hash(ref_mth(d[:k]), ref_mth(d[k:]))


def ref_path(m: int, d: list[bytes]) -> list[bytes]:
    if len(d) == 1:
        return []
    k = _k(len(d))
    if m < k:
        return [*ref_path(m, d[:k]), ref_mth(d[k:])]
    return [*ref_path(m - k, d[k:]), ref_mth(d[:k])]


def ref_subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:
    if m == len(d):
        return [] if b else [ref_mth(d)]
    k = _k(len(d))
    if m <= k:
        return [*ref_subproof(m, d[:k], b), ref_mth(d[k:])]
    return [*ref_subproof(m - k, d[k:], False), ref_mth(d[:k])]


def leaves(n: int, salt: int = 0) -> list[bytes]:
    return [leaf_hash(f"{salt}:{i}".encode()) for i in range(n)]


def hexes(proof: list[bytes]) -> list[str]:
    return [p.hex() for p in proof]


def test_published_roots_and_empty_tree():
    """Roots of the CT reference leaves for sizes 0..8 match the published heads."""
    assert EMPTY_ROOT.hex() == CT_ROOTS[0]
    tree = MerkleTree(CT_LEAVES)
    frontier = CompactRange()
    assert frontier.root().hex() == CT_ROOTS[0]
    for n in range(9):
        assert tree.root(n).hex() == CT_ROOTS[n]
        if n:
            frontier.append(CT_LEAVES[n - 1])
            assert frontier.root().hex() == CT_ROOTS[n]


def test_published_inclusion_and_consistency_proofs():
    """The proofs for the CT reference tree equal the published ones and verify."""
    tree = MerkleTree(CT_LEAVES)
    for (index, size), proof in CT_INCLUSION.items():
        assert hexes(tree.inclusion_proof(index, size)) == proof
        raw = [bytes.fromhex(p) for p in proof]
        root = bytes.fromhex(CT_ROOTS[size])
        assert verify_inclusion(CT_LEAVES[index], index, size, raw, root)
    for (old, new), proof in CT_CONSISTENCY.items():
        assert hexes(tree.consistency_proof(old, new)) == proof
        raw = [bytes.fromhex(p) for p in proof]
        old_root, new_root = bytes.fromhex(CT_ROOTS[old]), bytes.fromhex(CT_ROOTS[new])
        assert verify_consistency(old, new, old_root, new_root, raw)


def test_matches_the_naive_reference_for_every_size_up_to_70():
    """Roots and every inclusion and consistency proof equal the RFC's recursive
    definitions, and verify, for all sizes 0..70."""
    d = leaves(70)
    tree = MerkleTree(d)
    for n in range(71):
        root = ref_mth(d[:n])
        assert tree.root(n) == root
        for m in range(n):
            path = tree.inclusion_proof(m, n)
            assert path == ref_path(m, d[:n])
            assert verify_inclusion(d[m], m, n, path, root)
        for m in range(1, n):
            proof = tree.consistency_proof(m, n)
            assert proof == ref_subproof(m, d[:n], True)
            assert verify_consistency(m, n, ref_mth(d[:m]), root, proof)


def test_degenerate_and_malformed_inputs():
    """Edge sizes follow RFC 9162; out-of-range requests raise; short hashes fail."""
    d = leaves(8)
    tree = MerkleTree(d)
    root = tree.root()
    assert verify_consistency(0, 8, EMPTY_ROOT, root, [])
    assert not verify_consistency(0, 8, d[0], root, [])
    assert verify_consistency(8, 8, root, root, [])
    assert not verify_consistency(8, 8, root, tree.root(7), [])
    assert not verify_consistency(6, 8, tree.root(6), root, [])
    assert not verify_consistency(8, 6, root, tree.root(6), tree.consistency_proof(6, 8))
    assert not verify_inclusion(d[3], 8, 8, tree.inclusion_proof(3, 8), root)
    assert not verify_inclusion(d[3][:31], 3, 8, tree.inclusion_proof(3, 8), root)
    with pytest.raises(ValueError):
        tree.inclusion_proof(8, 8)
    with pytest.raises(ValueError):
        tree.root(9)
    with pytest.raises(ValueError):
        tree.consistency_proof(5, 3)
    with pytest.raises(ValueError):
        tree.append(b"short")


sizes = st.integers(min_value=1, max_value=300)


@given(n=sizes, data=st.data())
def test_proofs_verify_for_all_sizes(n, data):
    """For any size, any leaf's inclusion proof and any earlier size's consistency proof
    verify, and the compact frontier gives the same root as the full tree."""
    d = leaves(n, salt=n)
    tree = MerkleTree(d)
    frontier = CompactRange()
    for leaf in d:
        frontier.append(leaf)
    assert frontier.root() == tree.root() == ref_mth(d)
    m = data.draw(st.integers(0, n - 1))
    assert verify_inclusion(d[m], m, n, tree.inclusion_proof(m, n), tree.root())
    old = data.draw(st.integers(0, n))
    proof = tree.consistency_proof(old, n)
    assert verify_consistency(old, n, tree.root(old), tree.root(), proof)


@given(n=st.integers(min_value=2, max_value=200), data=st.data())
def test_any_change_of_leaves_is_detected(n, data):
    """Changing, removing, inserting or reordering leaves changes the root, breaks
    consistency with the original tree, and no other leaf passes the original proof."""
    d = leaves(n)
    original = MerkleTree(d)
    i = data.draw(st.integers(0, n - 1))
    j = data.draw(st.integers(0, n - 1).filter(lambda x: x != i))
    forged = leaf_hash(b"forged")
    variants = {
        "change": [*d[:i], forged, *d[i + 1 :]],
        "remove": d[:i] + d[i + 1 :],
        "insert": [*d[:i], forged, *d[i:]],
        "reorder": [d[j] if k == i else d[i] if k == j else x for k, x in enumerate(d)],
    }
    for name, altered in variants.items():
        tampered = MerkleTree(altered)
        assert tampered.root() != original.root(), name
        if tampered.size >= n:  # the altered tree does not extend the original one
            proof = tampered.consistency_proof(n, tampered.size)
            assert not verify_consistency(n, tampered.size, original.root(), tampered.root(), proof)
        if i < len(altered) and altered[i] != d[i]:  # the original proof binds leaf i
            proof = original.inclusion_proof(i, n)
            assert not verify_inclusion(altered[i], i, n, proof, original.root()), name


@given(n=st.integers(min_value=2, max_value=120), data=st.data())
def test_tampered_proofs_are_rejected(n, data):
    """A flipped byte, a dropped or an extra hash in a proof makes it fail."""
    d = leaves(n, salt=7)
    tree = MerkleTree(d)
    m = data.draw(st.integers(0, n - 1))
    path = tree.inclusion_proof(m, n)
    flip = data.draw(st.integers(0, len(path) - 1))
    bad = [*path]
    bad[flip] = bytes([bad[flip][0] ^ 1]) + bad[flip][1:]
    for proof in (bad, path[:-1], [*path, leaf_hash(b"x")]):
        assert not verify_inclusion(d[m], m, n, proof, tree.root())
    old = data.draw(st.integers(1, n - 1))
    cons = tree.consistency_proof(old, n)
    bad = [*cons]
    bad[0] = bytes([bad[0][0] ^ 1]) + bad[0][1:]
    for proof in (bad, cons[:-1], [*cons, leaf_hash(b"x")]):
        assert not verify_consistency(old, n, tree.root(old), tree.root(), proof)
