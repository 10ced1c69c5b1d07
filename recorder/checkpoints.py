"""Signed checkpoints of the global log: (tree size, root, time, key id, signature).

The signature is Ed25519 over the canonical JSON (RFC 8785) of the statement
``{"key_id", "root", "time", "tree_size"}``. Checkpoints are stored (append-only), in
order of size and time whichever process signs them; recorder/witness.py copies them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from recorder import merkle
from recorder.canonical import canonical_json, timestamp
from recorder.clock import Clock, as_utc
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


SIGN_ATTEMPTS = 5
"""Another process may sign a larger tree or a later time first; we catch up and retry."""

Expected = dict[int, list[tuple[str, str]]]
"""Tree size → (what attests it, root) for each checkpoint the rebuilt tree must match."""


def _check(frontier: merkle.CompactRange, expected: Expected) -> None:
    for label, root in expected.get(frontier.size, ()):
        if frontier.root().hex() != root:
            raise LogError("log_tampered", f"the stored log differs from {label}")


def _extend(frontier: merkle.CompactRange, rows: Sequence[Any], expected: Expected | None) -> None:
    """Append stored leaves (index, hex hash); check each attested size on the way."""
    for index, digest in rows:
        if index != frontier.size:
            raise LogError("log_gap", f"event {frontier.size} is missing")
        if expected:
            _check(frontier, expected)
        frontier.append(bytes.fromhex(digest))


class Checkpoints:
    """Signs checkpoints over a frontier of the tree kept in memory: each signing reads
    only the leaves appended since the last, and never signs over a stored log that no
    longer matches every stored (and witnessed) checkpoint. The caller serialises calls
    to ``sign``; ``warm`` needs no lock."""

    def __init__(self, engine: AsyncEngine, clock: Clock, keyring: Keyring) -> None:
        self._engine = engine
        self._clock = clock
        self._keyring = keyring
        self._frontier: merkle.CompactRange | None = None
        self._warming = asyncio.Lock()

    @property
    def warmed(self) -> bool:
        return self._frontier is not None

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

    async def since(self, last: Checkpoint | None) -> list[Checkpoint]:
        """The stored checkpoints after ``last`` in signing order: after its row, or, if
        no row holds it, those signed later; all if ``last`` is None."""
        query = select(log_checkpoints).order_by(log_checkpoints.c.id)
        async with self._engine.connect() as conn:
            if last is not None:
                row = await conn.scalar(
                    select(func.max(log_checkpoints.c.id)).where(
                        log_checkpoints.c.signature == last.signature
                    )
                )
                query = query.where(
                    log_checkpoints.c.id > row
                    if row is not None
                    else log_checkpoints.c.time > dt.datetime.fromisoformat(last.time)
                )
            rows = (await conn.execute(query)).all()
        return [_checkpoint(r) for r in rows]

    async def _read(self, frontier: merkle.CompactRange, expected: Expected | None) -> None:
        """Extend the frontier with the leaves stored since, in slices (a long log is never
        held in memory at once); the hashing runs in a worker thread when checking."""
        async with self._engine.connect() as conn:
            while True:
                rows = (
                    await conn.execute(
                        select(audit_events.c.log_index, audit_events.c.hash)
                        .where(audit_events.c.log_index >= frontier.size)
                        .order_by(audit_events.c.log_index)
                        .limit(CATCH_UP_SLICE)
                    )
                ).all()
                if expected is None:
                    _extend(frontier, rows, None)
                else:
                    await asyncio.to_thread(_extend, frontier, rows, expected)
                if len(rows) < CATCH_UP_SLICE:
                    return

    async def warm(self, witnessed: Sequence[Checkpoint] = ()) -> merkle.CompactRange:
        """Once per process, before the first signing and outside the append lock: rebuild
        the frontier from the whole stored log and check it against every stored and
        every ``witnessed`` checkpoint (a wrong root: ``log_tampered``; a shorter log:
        ``log_truncated``). Nothing is kept if a check fails."""
        async with self._warming:
            if self._frontier is not None:
                return self._frontier
            expected: Expected = {}
            for number, stored in enumerate(await self.all(), start=1):
                expected.setdefault(stored.tree_size, []).append(
                    (f"stored checkpoint {number}", stored.root)
                )
            for number, seen in enumerate(witnessed, start=1):
                expected.setdefault(seen.tree_size, []).append(
                    (f"witnessed checkpoint {number}", seen.root)
                )
            frontier = merkle.CompactRange()
            await self._read(frontier, expected)
            _check(frontier, expected)
            if expected and max(expected) > frontier.size:
                label = expected[max(expected)][0][0]
                raise LogError("log_truncated", f"{frontier.size} events, {label} signed more")
            self._frontier = frontier
            return frontier

    async def _catch_up(self) -> merkle.CompactRange:
        frontier = await self.warm()
        await self._read(frontier, None)  # the few leaves since: on the loop
        return frontier

    async def sign(self) -> Checkpoint:
        checkpoint = await self._sign(only_if_grown=False)
        if checkpoint is None:
            raise AssertionError("unreachable: only sign_if_grown skips")
        return checkpoint

    async def sign_if_grown(self) -> Checkpoint | None:
        return await self._sign(only_if_grown=True)

    async def _sign(self, *, only_if_grown: bool) -> Checkpoint | None:
        for _attempt in range(SIGN_ATTEMPTS):
            latest = await self.latest()
            frontier = await self._catch_up()
            if only_if_grown and latest is not None and latest.tree_size == frontier.size:
                return None
            time = timestamp(self._clock.now())
            key_id, key = await self._keyring.signing_key(time)
            draft = Checkpoint(frontier.size, frontier.root().hex(), time, key_id, "")
            checkpoint = dataclasses.replace(draft, signature=key.sign(draft.statement()).hex())
            if await self._insert(checkpoint):
                return checkpoint
        raise LogError("checkpoint_race", "other signers kept signing a later checkpoint")

    async def _insert(self, checkpoint: Checkpoint) -> bool:
        """Store the checkpoint unless the latest stored one (read under a database lock,
        so no other process signs in between) has a larger tree or a later time."""
        async with self._engine.connect() as conn:
            if conn.dialect.name == "sqlite":
                await conn.exec_driver_sql("BEGIN IMMEDIATE")
            else:  # PostgreSQL: one signer at a time, readers unhindered
                await conn.exec_driver_sql("LOCK TABLE log_checkpoints IN EXCLUSIVE MODE")
            latest = (
                await conn.execute(
                    select(log_checkpoints.c.tree_size, log_checkpoints.c.time)
                    .order_by(log_checkpoints.c.id.desc())
                    .limit(1)
                )
            ).first()
            time = dt.datetime.fromisoformat(checkpoint.time)
            if latest is not None and (
                latest.tree_size > checkpoint.tree_size or as_utc(latest.time) > time
            ):
                await conn.rollback()
                return False
            await conn.execute(
                log_checkpoints.insert().values(
                    tree_size=checkpoint.tree_size,
                    root=checkpoint.root,
                    time=time,
                    key_id=checkpoint.key_id,
                    signature=checkpoint.signature,
                )
            )
            await conn.commit()
        return True

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
