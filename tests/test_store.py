"""The content-addressed store: named by hash, write-once, read back intact."""

from __future__ import annotations

import hashlib
import stat

import pytest

from recorder.errors import StoreError
from recorder.store import EvidenceStore


def test_put_names_the_file_by_its_hash_and_makes_it_read_only(tmp_path):
    """Stored bytes land under their SHA-256, read-only, and read back the same."""
    store = EvidenceStore(tmp_path / "evidence")
    data = b"document still" * 1000
    stored = store.put(data)
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    assert stored.bytes == len(data)
    path = store.path(stored.sha256)
    assert path.read_bytes() == data
    assert stat.S_IMODE(path.stat().st_mode) == 0o400
    assert store.verify(stored.sha256)
    assert store.put(data) == stored  # the same bytes again: nothing changes
    assert list((tmp_path / "evidence" / "incoming").iterdir()) == []


def test_adopt_moves_a_finished_file_in(tmp_path):
    """A closed chunk is moved into the store under its hash."""
    store = EvidenceStore(tmp_path / "evidence")
    chunk = store.root / "incoming" / "chunk.part"
    chunk.write_bytes(b"rtp packets")
    stored = store.adopt(chunk)
    assert not chunk.exists()
    assert store.path(stored.sha256).read_bytes() == b"rtp packets"


def test_an_altered_file_fails_verification(tmp_path):
    """verify() recomputes the hash: a changed file no longer matches its name."""
    store = EvidenceStore(tmp_path / "evidence")
    stored = store.put(b"original")
    path = store.path(stored.sha256)
    path.chmod(0o644)
    path.write_bytes(b"altered!")
    assert not store.verify(stored.sha256)
    assert not store.verify("0" * 64)


def test_names_that_are_not_hashes_are_refused(tmp_path):
    """A path component that is not 64 hex digits never reaches the file system."""
    store = EvidenceStore(tmp_path / "evidence")
    for bad in ("../../etc/passwd", "A" * 64, "0" * 63):
        with pytest.raises(StoreError):
            store.path(bad)
