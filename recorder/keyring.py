"""The registry of the node's Ed25519 signing keys, and the private key file.

A key is valid from its ``valid_from`` until the next key's (rows are never updated);
a checkpoint verifies only with the key valid at its time. The private key lives in
one file (raw 32 bytes, 0600); a rotation replaces the file, and the old public key
stays in the registry so old checkpoints still verify.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from recorder.canonical import timestamp
from recorder.clock import Clock
from recorder.errors import LogError
from recorder.private_files import write_private
from recorder.schema import log_keys


def public_raw(key: Ed25519PrivateKey | Ed25519PublicKey) -> bytes:
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes(Encoding.Raw, PublicFormat.Raw)


def key_id(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    """Hex SHA-256 of the raw public key."""
    return hashlib.sha256(public_raw(key)).hexdigest()


@dataclass(frozen=True)
class RegisteredKey:
    key_id: str
    public_key: str
    """Raw Ed25519 public key, hex."""
    valid_from: str

    def public(self) -> Ed25519PublicKey:
        return Ed25519PublicKey.from_public_bytes(bytes.fromhex(self.public_key))

    def to_dict(self) -> dict[str, str]:
        return {"key_id": self.key_id, "public_key": self.public_key, "valid_from": self.valid_from}


def key_valid_at(keys: Sequence[RegisteredKey], time: str) -> RegisteredKey | None:
    """The key valid at ``time`` (ISO 8601 UTC): the latest one registered at or before it."""
    at = dt.datetime.fromisoformat(time)
    valid = [k for k in keys if dt.datetime.fromisoformat(k.valid_from) <= at]
    return max(valid, key=lambda k: dt.datetime.fromisoformat(k.valid_from), default=None)


def write_key_file(path: Path, key: Ed25519PrivateKey) -> None:
    """Replace the private key file atomically (0600, fsynced, then renamed)."""
    write_private(path, key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()))


def read_key_file(path: Path) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(path.read_bytes())


class Keyring:
    """The registry (table ``log_keys``) and this node's private key, kept in ``key_path``."""

    def __init__(
        self, engine: AsyncEngine, clock: Clock, key_path: Path, key: Ed25519PrivateKey
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._path = key_path
        self._key = key

    @property
    def key_id(self) -> str:
        return key_id(self._key)

    async def keys(self) -> list[RegisteredKey]:
        async with self._engine.connect() as conn:
            rows = (await conn.execute(select(log_keys).order_by(log_keys.c.valid_from))).all()
        return [RegisteredKey(r.key_id, r.public_key, timestamp(r.valid_from)) for r in rows]

    async def _insert(self, key: Ed25519PrivateKey) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                log_keys.insert().values(
                    key_id=key_id(key),
                    public_key=public_raw(key).hex(),
                    valid_from=self._clock.now(),
                )
            )

    async def register(self) -> str | None:
        """At start: register the node's key if it is new; refuse a key that a later one
        has replaced (an old key file put back). Returns the id of the key a new one
        replaced without a rotation (the caller logs it), None otherwise."""
        keys = await self.keys()
        if self.key_id not in {k.key_id for k in keys}:
            await self._insert(self._key)
            return keys[-1].key_id if keys else None
        if keys[-1].key_id != self.key_id:
            raise LogError("stale_node_key", f"key {self.key_id} was replaced by {keys[-1].key_id}")
        return None

    async def signing_key(self, time: str) -> tuple[str, Ed25519PrivateKey]:
        """The key valid at ``time`` and its id; if another process rotated it, the new
        private key is read from the key file."""
        current = key_valid_at(await self.keys(), time)
        if current is None:
            raise LogError("no_signing_key", f"no key registered at {time}")
        if current.key_id != self.key_id:
            self._key = await asyncio.to_thread(read_key_file, self._path)
        if current.key_id != self.key_id:
            raise LogError("stale_node_key", f"the key file does not hold key {current.key_id}")
        return current.key_id, self._key

    async def rotate(self) -> tuple[str, str]:
        """Make a new key, replace the key file and register it. (old id, new id)."""
        old, new = self.key_id, Ed25519PrivateKey.generate()
        await asyncio.to_thread(write_key_file, self._path, new)
        await self._insert(new)
        self._key = new
        return old, key_id(new)
