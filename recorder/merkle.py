"""RFC 6962 Merkle tree hashing and proofs (restated in RFC 9162 §2.1). Pure: no I/O.

leaf = SHA-256(0x00 ‖ entry), node = SHA-256(0x01 ‖ left ‖ right); a tree over n > 1
leaves splits at k, the largest power of two smaller than n; the empty tree's hash is
SHA-256 of nothing. Proofs are lists of 32-byte hashes, in the RFCs' order.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(entry: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def split(n: int) -> int:
    """The largest power of two smaller than ``n`` (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


class MerkleTree:
    """Leaf hashes and every complete subtree above them (about 2n hashes in all), so a
    root or a proof for any size up to the current one costs O(log n) node hashes."""

    def __init__(self, leaves: Iterable[bytes] = ()) -> None:
        self._levels: list[list[bytes]] = [[]]
        for leaf in leaves:
            self.append(leaf)

    @property
    def size(self) -> int:
        return len(self._levels[0])

    def append(self, leaf: bytes) -> None:
        if len(leaf) != HASH_SIZE:
            raise ValueError("a leaf hash has 32 bytes")
        self._levels[0].append(leaf)
        level = 0
        while len(self._levels[level]) % 2 == 0:  # a subtree of 2^(level+1) completed
            left, right = self._levels[level][-2:]
            if level + 1 == len(self._levels):
                self._levels.append([])
            self._levels[level + 1].append(node_hash(left, right))
            level += 1

    def _subtree(self, lo: int, hi: int) -> bytes:
        """MTH(D[lo:hi]) for a range the RFC's recursion reaches: a complete subtree of
        2^k leaves there starts at a multiple of 2^k, so it is stored."""
        n = hi - lo
        if n & (n - 1) == 0:
            k = n.bit_length() - 1
            return self._levels[k][lo >> k]
        k = split(n)
        return node_hash(self._subtree(lo, lo + k), self._subtree(lo + k, hi))

    def _check_size(self, size: int) -> None:
        if not 0 <= size <= self.size:
            raise ValueError(f"tree size {size} outside 0..{self.size}")

    def root(self, size: int | None = None) -> bytes:
        size = self.size if size is None else size
        self._check_size(size)
        return self._subtree(0, size) if size else EMPTY_ROOT

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        """PATH(m, D[n]) of RFC 6962 §2.1.1."""
        self._check_size(size)
        if not 0 <= index < size:
            raise ValueError(f"leaf {index} not in a tree of {size}")
        proof: list[bytes] = []
        lo, hi = 0, size
        while hi - lo > 1:  # walk down, collecting siblings; the RFC lists them bottom-up
            k = split(hi - lo)
            if index < lo + k:
                proof.append(self._subtree(lo + k, hi))
                hi = lo + k
            else:
                proof.append(self._subtree(lo, lo + k))
                lo += k
        return proof[::-1]

    def consistency_proof(self, old: int, new: int) -> list[bytes]:
        """PROOF(m, D[n]) of RFC 6962 §2.1.2 (empty when m is 0 or m equals n)."""
        self._check_size(new)
        if not 0 <= old <= new:
            raise ValueError(f"no consistency proof from {old} to {new}")
        if old in (0, new):
            return []
        proof: list[bytes] = []
        lo, hi, m, complete = 0, new, old, True
        while m != hi - lo:  # SUBPROOF(m, D[lo:hi], complete), top-down
            k = split(hi - lo)
            if m <= k:
                proof.append(self._subtree(lo + k, hi))
                hi = lo + k
            else:
                proof.append(self._subtree(lo, lo + k))
                lo, m, complete = lo + k, m - k, False
        if not complete:
            proof.append(self._subtree(lo, hi))
        return proof[::-1]


class CompactRange:
    """The right frontier of a growing tree: the roots of its complete subtrees, largest
    first (O(log n) hashes). Appends cost O(1) amortised; the root O(log n)."""

    def __init__(self) -> None:
        self.size = 0
        self._peaks: list[bytes] = []

    def append(self, leaf: bytes) -> None:
        if len(leaf) != HASH_SIZE:
            raise ValueError("a leaf hash has 32 bytes")
        carry, size = leaf, self.size
        while size & 1:
            carry = node_hash(self._peaks.pop(), carry)
            size >>= 1
        self._peaks.append(carry)
        self.size += 1

    def root(self) -> bytes:
        if not self._peaks:
            return EMPTY_ROOT
        root = self._peaks[-1]
        for peak in reversed(self._peaks[:-1]):
            root = node_hash(peak, root)
        return root


def _shift_while_right_child(fn: int, sn: int) -> tuple[int, int]:
    """Right-shift both until LSB(fn) is set or fn is 0 (RFC 9162 steps 4.b / 6.b)."""
    while fn and not fn & 1:
        fn, sn = fn >> 1, sn >> 1
    return fn, sn


def _all_hashes(*hashes: bytes) -> bool:
    return all(isinstance(h, bytes) and len(h) == HASH_SIZE for h in hashes)


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """RFC 9162 §2.1.3.2: does ``proof`` show leaf ``index`` of a tree of ``size``?"""
    if not 0 <= index < size or not _all_hashes(leaf, root, *proof):
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                fn, sn = _shift_while_right_child(fn, sn)
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and r == root


def verify_consistency(
    old: int, new: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """RFC 9162 §2.1.4.2: is the tree of ``new`` leaves an extension of that of ``old``?"""
    if not 0 <= old <= new or not _all_hashes(old_root, new_root, *proof):
        return False
    if old == new:
        return not proof and old_root == new_root
    if old == 0:
        return not proof and old_root == EMPTY_ROOT
    if not proof:
        return False
    path = [old_root, *proof] if old & (old - 1) == 0 else list(proof)
    fn, sn = old - 1, new - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            if not fn & 1:
                fn, sn = _shift_while_right_child(fn, sn)
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and fr == old_root and sr == new_root
