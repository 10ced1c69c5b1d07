"""The content-addressed, write-once evidence store: every file is named by its SHA-256,
written through a temporary file, fsync'ed, renamed into place and made read-only
(owner only, like everything in the data directory).

Layout: ``<root>/sha256/<first two hex digits>/<64 hex digits>``. Methods block on disk
I/O: call them from a worker thread (``asyncio.to_thread``), never on the event loop.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from recorder.errors import StoreError
from recorder.private_files import fsync_directory

HASH_PATTERN = re.compile(r"[0-9a-f]{64}")
READ_BLOCK = 1 << 20


@dataclass(frozen=True)
class StoredFile:
    sha256: str
    bytes: int


def hash_file(path: Path) -> StoredFile:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while block := handle.read(READ_BLOCK):
            digest.update(block)
            size += len(block)
    return StoredFile(digest.hexdigest(), size)


def _storage_error(exc: OSError) -> StoreError:
    code = "disk_full" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else "store_failed"
    return StoreError(code, str(exc))


class EvidenceStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._incoming = root / "incoming"
        for directory in (root, root / "sha256", self._incoming):
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)

    def path(self, sha256: str) -> Path:
        if not HASH_PATTERN.fullmatch(sha256):
            raise StoreError("bad_hash", sha256)
        return self.root / "sha256" / sha256[:2] / sha256

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def open(self, sha256: str) -> BinaryIO:
        try:
            return self.path(sha256).open("rb")
        except FileNotFoundError as exc:
            raise StoreError("not_stored", sha256) from exc

    def put(self, data: bytes) -> StoredFile:
        """Store bytes; storing the same bytes again is a no-op."""
        temp = self._incoming / secrets.token_hex(8)
        try:
            with temp.open("xb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:
            temp.unlink(missing_ok=True)
            raise _storage_error(exc) from exc
        return self._place(temp, StoredFile(hashlib.sha256(data).hexdigest(), len(data)))

    def adopt(self, path: Path) -> StoredFile:
        """Move a finished file (e.g. a closed capture chunk) into the store by its hash.
        The file must be on the store's file system."""
        try:
            with path.open("rb+") as handle:
                os.fsync(handle.fileno())
        except OSError as exc:
            raise _storage_error(exc) from exc
        return self._place(path, hash_file(path))

    def _place(self, temp: Path, stored: StoredFile) -> StoredFile:
        target = self.path(stored.sha256)
        try:
            if target.exists():
                if target.stat().st_size != stored.bytes:
                    raise StoreError("store_conflict", stored.sha256)
                temp.unlink()
                return stored
            target.parent.mkdir(mode=0o700, exist_ok=True)
            os.chmod(temp, 0o400)
            os.replace(temp, target)
            fsync_directory(target.parent)
        except OSError as exc:
            raise _storage_error(exc) from exc
        return stored

    def verify(self, sha256: str) -> bool:
        """The stored bytes still hash to their name."""
        try:
            return hash_file(self.path(sha256)).sha256 == sha256
        except FileNotFoundError:
            return False

    def purge(self, sha256: str) -> int | None:
        """Delete a stored file for good; the bytes it freed, or None if it was not there.

        Only the retention run (signaling/custody/retention.py) may call this, and only after it
        has logged an ``evidence_purged`` tombstone naming the file on the chain of every
        case that holds it: the log then tells this deletion from tampering. Nothing
        else ever deletes from the store, which is otherwise write-once."""
        target = self.path(sha256)
        try:
            size = target.stat().st_size
            target.unlink()
            fsync_directory(target.parent)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise _storage_error(exc) from exc
        return size
