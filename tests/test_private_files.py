"""The one private-file writer: 0600, whole or not at all, nothing left behind."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from recorder import private_files
from recorder.private_files import write_private


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_writes_the_bytes_owner_only_whatever_the_umask(tmp_path: Path) -> None:
    path = tmp_path / "secret.key"
    old = os.umask(0o277)  # would leave 0400
    try:
        write_private(path, b"\x00secret")
    finally:
        os.umask(old)
    assert path.read_bytes() == b"\x00secret"
    assert _mode(path) == 0o600
    assert os.listdir(tmp_path) == ["secret.key"]


def test_replaces_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "marker.json"
    path.write_bytes(b"old")
    path.chmod(0o644)
    before = path.stat().st_ino
    write_private(path, b"new")
    assert path.read_bytes() == b"new"
    assert _mode(path) == 0o600
    assert path.stat().st_ino != before  # a new file renamed over it, not rewritten in place
    assert os.listdir(tmp_path) == ["marker.json"]


def test_exclusive_creates_a_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "jwt.key"
    write_private(path, b"made", exclusive=True)
    assert path.read_bytes() == b"made"
    assert _mode(path) == 0o600
    assert os.listdir(tmp_path) == ["jwt.key"]


def test_exclusive_never_overwrites(tmp_path: Path) -> None:
    path = tmp_path / "jwt.key"
    path.write_bytes(b"kept")
    with pytest.raises(FileExistsError):
        write_private(path, b"other", exclusive=True)
    assert path.read_bytes() == b"kept"
    assert os.listdir(tmp_path) == ["jwt.key"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "key.pem"
    path.write_bytes(b"old")

    def fail(fd: int) -> None:
        raise OSError(5, "simulated I/O error")

    monkeypatch.setattr(private_files.os, "fsync", fail)
    with pytest.raises(OSError, match="simulated"):
        write_private(path, b"new")
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["key.pem"]


def test_a_failed_rename_leaves_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "secrets" / "node.key"
    path.parent.mkdir()

    def fail(source: object, target: object) -> None:
        raise PermissionError("simulated")

    monkeypatch.setattr(private_files.os, "replace", fail)
    with pytest.raises(PermissionError):
        write_private(path, b"data")
    assert os.listdir(path.parent) == []


def test_the_file_and_its_directory_are_fsynced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[tuple[bool, int]] = []
    real_fsync = os.fsync

    def record(fd: int) -> None:
        info = os.fstat(fd)
        synced.append((stat.S_ISDIR(info.st_mode), info.st_ino))
        real_fsync(fd)

    monkeypatch.setattr(private_files.os, "fsync", record)
    path = tmp_path / "running.json"
    write_private(path, b"{}")
    # the data before the rename, then the directory holding the new name
    assert synced == [(False, path.stat().st_ino), (True, tmp_path.stat().st_ino)]

    synced.clear()
    write_private(tmp_path / "new.key", b"k", exclusive=True)
    assert synced[-1] == (True, tmp_path.stat().st_ino)
