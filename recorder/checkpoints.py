"""Signed checkpoints of the global log: (tree size, root, time, key id, signature).

The signature is Ed25519 over the canonical JSON (RFC 8785) of the statement
``{"key_id", "root", "time", "tree_size"}``. Checkpoints are stored (append-only) and,
when a witness file is set, appended to it one JSON line each, fsynced.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from recorder import merkle
from recorder.canonical import canonical_json, timestamp
from recorder.clock import Clock
from recorder.errors import LogError
from recorder.keyring import Keyring
from recorder.schema import audit_events, log_checkpoints

logger = logging.getLogger(__name__)

CATCH_UP_SLICE = 20_000
"""Leaves read per query when the frontier catches up with the stored log."""


@dataclass(frozen=True)
class Checkpoint:
    tree_size: int
    root: str
    time: str
    key_id: str
    signature: str

    def statement(self) -> bytes:
        """The signed bytes."""
        return canonical_json(
            {
                "tree_size": self.tree_size,
                "root": self.root,
                "time": self.time,
                "key_id": self.key_id,
            }
        )

    def verify(self, public: Ed25519PublicKey) -> bool:
        try:
            public.verify(bytes.fromhex(self.signature), self.statement())
        except (InvalidSignature, ValueError):
            return False
        return True

    def to_dict(self) -> dict[str, Any]:
        return {
            "tree_size": self.tree_size,
            "root": self.root,
            "time": self.time,
            "key_id": self.key_id,
            "signature": self.signature,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Checkpoint:
        return cls(**{name: data[name] for name in cls.__dataclass_fields__})


def _checkpoint(row: Any) -> Checkpoint:
    return Checkpoint(row.tree_size, row.root, timestamp(row.time), row.key_id, row.signature)


def append_witness(path: Path, line: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("ab") as handle:
        handle.write(line + b"\n")
        handle.flush()
        os.fsync(handle.fileno())


class Checkpoints:
    """Signs checkpoints over a frontier of the tree kept in memory: each signing reads
    only the leaves appended since the last, and never signs over a stored log that no
    longer matches the latest checkpoint. The caller serialises calls to ``sign``."""

    def __init__(
        self, engine: AsyncEngine, clock: Clock, keyring: Keyring, witness_file: Path | None
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._keyring = keyring
        self._witness = witness_file
        self._frontier: merkle.CompactRange | None = None

    async def latest(self) -> Checkpoint | None:
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    select(log_checkpoints).order_by(log_checkpoints.c.id.desc()).limit(1)
                )
            ).first()
        return _checkpoint(row) if row else None

    async def all(self) -> list[Checkpoint]:
        async with self._engine.connect() as conn:
            rows = (
                await conn.execute(select(log_checkpoints).order_by(log_checkpoints.c.id))
            ).all()
        return [_checkpoint(r) for r in rows]

    async def _catch_up(self, latest: Checkpoint | None) -> merkle.CompactRange:
        """Extend the frontier with the leaves stored since; on the first call check the
        rebuilt tree against the latest checkpoint."""
        frontier, check = self._frontier, None
        if frontier is None:
            frontier, check = merkle.CompactRange(), latest
        async with self._engine.connect() as conn:
            while True:  # in slices, so a long log is never held in memory at once
                rows = (
                    await conn.execute(
                        select(audit_events.c.log_index, audit_events.c.hash)
                        .where(audit_events.c.log_index >= frontier.size)
                        .order_by(audit_events.c.log_index)
                        .limit(CATCH_UP_SLICE)
                    )
                ).all()
                for index, digest in rows:
                    if index != frontier.size:
                        raise LogError("log_gap", f"event {frontier.size} is missing")
                    if check is not None and frontier.size == check.tree_size:
                        self._match(frontier, check)
                    frontier.append(bytes.fromhex(digest))
                if len(rows) < CATCH_UP_SLICE:
                    break
        if check is not None:
            if frontier.size < check.tree_size:
                raise LogError("log_truncated", f"{frontier.size} events, signed {check.tree_size}")
            if frontier.size == check.tree_size:
                self._match(frontier, check)
        self._frontier = frontier
        return frontier

    @staticmethod
    def _match(frontier: merkle.CompactRange, checkpoint: Checkpoint) -> None:
        if frontier.root().hex() != checkpoint.root:
            raise LogError(
                "log_tampered", f"the stored log differs from checkpoint {checkpoint.tree_size}"
            )

    async def sign(self) -> Checkpoint:
        return await self._sign(await self._catch_up(await self.latest()))

    async def sign_if_grown(self) -> Checkpoint | None:
        latest = await self.latest()
        frontier = await self._catch_up(latest)
        if latest is not None and latest.tree_size == frontier.size:
            return None
        return await self._sign(frontier)

    async def _sign(self, frontier: merkle.CompactRange) -> Checkpoint:
        time = timestamp(self._clock.now())
        key_id, key = await self._keyring.signing_key(time)
        unsigned = Checkpoint(frontier.size, frontier.root().hex(), time, key_id, "")
        checkpoint = Checkpoint(
            unsigned.tree_size,
            unsigned.root,
            time,
            key_id,
            key.sign(unsigned.statement()).hex(),
        )
        async with self._engine.begin() as conn:
            await conn.execute(
                log_checkpoints.insert().values(
                    tree_size=checkpoint.tree_size,
                    root=checkpoint.root,
                    time=dt.datetime.fromisoformat(time),
                    key_id=key_id,
                    signature=checkpoint.signature,
                )
            )
        return checkpoint

    async def witness(self, checkpoint: Checkpoint) -> None:
        """Append the checkpoint and its public key to the witness file, if one is set."""
        if self._witness is None:
            return
        key = next(k for k in await self._keyring.keys() if k.key_id == checkpoint.key_id)
        line = canonical_json({**checkpoint.to_dict(), "public_key": key.public_key})
        await asyncio.to_thread(append_witness, self._witness, line)

    @staticmethod
    async def run(sign: Callable[[], Awaitable[object]], interval: float) -> None:
        """Until cancelled: whatever one round raises (a tampered log, a locked or lost
        database, a full disk) is logged and the next round tries again."""
        while True:
            await asyncio.sleep(interval)
            try:
                await sign()
            except Exception:
                logger.exception("could not sign a log checkpoint")
