"""The witness file: a copy of every signed checkpoint outside the data directory, one
RFC 8785 JSON line each (the checkpoint plus the raw public key, hex, that verifies it),
so the file stands alone. Appends are fsynced and made under an exclusive ``flock``, so
the server and a ``coreview`` command on the same host never interleave or duplicate."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from recorder.canonical import canonical_json
from recorder.checkpoints import Checkpoint

TAIL_BYTES = 4096
"""Enough for the last line (a line is about 450 bytes)."""


@dataclass(frozen=True)
class Witnessed:
    line: int
    checkpoint: Checkpoint
    public_key: str

    def verifies(self) -> bool:
        """The key named is the one carried, and the signature verifies with it."""
        try:
            raw = bytes.fromhex(self.public_key)
            public = Ed25519PublicKey.from_public_bytes(raw)
        except ValueError:
            return False
        return hashlib.sha256(raw).hexdigest() == self.checkpoint.key_id and (
            self.checkpoint.verify(public)
        )


@dataclass(frozen=True)
class WitnessFile:
    entries: list[Witnessed] = field(default_factory=list)
    unreadable: list[int] = field(default_factory=list)
    """Line numbers that are not a checkpoint (a torn write, an edit)."""


def line_of(checkpoint: Checkpoint, public_key: str) -> bytes:
    return canonical_json({**checkpoint.to_dict(), "public_key": public_key})


def _parse(number: int, text: bytes) -> Witnessed | None:
    try:
        data = json.loads(text)
        return Witnessed(number, Checkpoint.from_dict(data), str(data["public_key"]))
    except (ValueError, KeyError, TypeError):
        return None


def read_witness(path: Path) -> WitnessFile:
    """Every line of the file (an absent file is an empty one)."""
    result = WitnessFile()
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        return result
    with handle:
        for number, text in enumerate(handle, start=1):
            entry = _parse(number, text)
            if entry is None:
                result.unreadable.append(number)
            else:
                result.entries.append(entry)
    return result


def _tail(handle: int) -> bytes:
    size = os.fstat(handle).st_size
    os.lseek(handle, max(0, size - TAIL_BYTES), os.SEEK_SET)
    return os.read(handle, TAIL_BYTES)


def _last(tail: bytes) -> Checkpoint | None:
    lines = tail.splitlines()
    entry = _parse(0, lines[-1]) if lines else None
    return entry.checkpoint if entry else None


def last_witnessed(path: Path) -> Checkpoint | None:
    try:
        handle = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        return _last(_tail(handle))
    finally:
        os.close(handle)


def append_after_last(path: Path, pending: Sequence[tuple[Checkpoint, str]]) -> int:
    """Append the ``pending`` checkpoints (in signing order, with their public keys) that
    follow the file's last one: all if the last is not among them. Returns how many."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        tail = _tail(handle)
        last = _last(tail)
        start = next((i + 1 for i in range(len(pending) - 1, -1, -1) if pending[i][0] == last), 0)
        lines = b"".join(line_of(c, key) + b"\n" for c, key in pending[start:])
        if lines and tail and not tail.endswith(b"\n"):
            lines = b"\n" + lines  # after a torn line, start a new one
        if lines:
            os.write(handle, lines)
            os.fsync(handle)
        return len(pending) - start
    finally:
        os.close(handle)  # releases the lock
