"""The audit log: per-chain hash links and one global, append-only Merkle log.

An event's *entry* is the RFC 8785 canonical JSON of its fields except ``hash``::

    {"actor", "at", "case_seq", "chain", "detail", "kind", "log_index", "prev_hash"}

and its ``hash`` is the RFC 6962 leaf hash SHA-256(0x00 ‖ entry), hex. That one hash is
both the link of the event's chain (a case's chain is ``case:<case_no>``, other events
go to ``system``; the next event of the chain carries it as ``prev_hash``) and leaf
``log_index`` of the global tree, whose roots signed checkpoints attest
(recorder/checkpoints.py). Nothing here updates or deletes a row.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from recorder import merkle
from recorder.canonical import canonical_json, timestamp
from recorder.checkpoints import Checkpoint, Checkpoints
from recorder.clock import Clock
from recorder.errors import LogError
from recorder.keyring import Keyring
from recorder.schema import audit_events
from recorder.witness import WitnessFile, append_after_last, last_witnessed, read_witness

logger = logging.getLogger(__name__)

GENESIS = "0" * 64
SYSTEM_CHAIN = "system"
APPEND_ATTEMPTS = 5
"""Another process may take the same next index; the unique keys refuse it and we retry."""


@dataclass(frozen=True)
class AuditEvent:
    log_index: int
    chain: str
    case_seq: int
    at: str
    kind: str
    actor: str | None
    detail: dict[str, Any]
    prev_hash: str
    hash: str

    def entry(self) -> dict[str, Any]:
        """The hashed content: every field but the hash itself."""
        return {
            "log_index": self.log_index,
            "chain": self.chain,
            "case_seq": self.case_seq,
            "prev_hash": self.prev_hash,
            "at": self.at,
            "kind": self.kind,
            "actor": self.actor,
            "detail": self.detail,
        }

    def entry_hash(self) -> str:
        return merkle.leaf_hash(canonical_json(self.entry())).hex()

    def to_dict(self) -> dict[str, Any]:
        """The event as JSON, as the evidence API and export packages carry it."""
        return {**self.entry(), "hash": self.hash}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AuditEvent:
        return cls(**{name: data[name] for name in cls.__dataclass_fields__})


def seal(
    log_index: int,
    chain: str,
    case_seq: int,
    prev_hash: str,
    at: dt.datetime,
    kind: str,
    actor: str | None,
    detail: dict[str, Any],
) -> AuditEvent:
    """The event with its hash. ``detail`` is normalised through its canonical form, so
    what is stored (JSON) reads back as exactly what was hashed."""
    draft = AuditEvent(
        log_index, chain, case_seq, timestamp(at), kind, actor, detail, prev_hash, ""
    )
    try:
        entry = canonical_json(draft.entry())
    except ValueError as exc:  # rfc8785.CanonicalizationError: NaN, huge int, odd key
        raise LogError("bad_detail", str(exc)) from exc
    normal = json.loads(entry)["detail"]
    return AuditEvent(
        log_index,
        chain,
        case_seq,
        draft.at,
        kind,
        actor,
        normal,
        prev_hash,
        merkle.leaf_hash(entry).hex(),
    )


def chain_of(case_no: str | None) -> str:
    return f"case:{case_no}" if case_no else SYSTEM_CHAIN


def event_from_row(row: Any) -> AuditEvent:
    return AuditEvent(
        row.log_index,
        row.chain,
        row.case_seq,
        timestamp(row.at),
        row.kind,
        row.actor,
        row.detail,
        row.prev_hash,
        row.hash,
    )


class AuditLog:
    """Appends events and signs checkpoints over them. One lock orders this process's
    appends and checkpoints; other processes are ordered by the unique keys."""

    def __init__(
        self, engine: AsyncEngine, clock: Clock, keyring: Keyring, witness_file: Path | None = None
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._lock = asyncio.Lock()
        self.keyring = keyring
        self.witness_file = witness_file
        self.witness_behind = False
        """The witness file lacks checkpoints (a write failed); each signing retries."""
        self._checkpoints = Checkpoints(engine, clock, keyring)

    async def register_key(self) -> None:
        """At start: register the node's key (recorder/keyring.py). A key that is not the
        first and did not come by rotation (a key file replaced or lost) is logged as a
        ``key_registered`` event, and loudly: the node goes on signing, with that key."""
        replaced = await self.keyring.register()
        if replaced is not None:
            logger.error(
                "the node key file holds a new key %s, not the registered %s, and no rotation "
                "made it: registered and logged as key_registered",
                self.keyring.key_id,
                replaced,
            )
            await self.append(
                "key_registered", actor=None, old_key=replaced, new_key=self.keyring.key_id
            )

    async def append(
        self, kind: str, *, actor: str | None, case_no: str | None = None, **detail: Any
    ) -> AuditEvent:
        chain = chain_of(case_no)
        async with self._lock:
            for attempt in range(APPEND_ATTEMPTS):
                try:
                    async with self._engine.begin() as conn:
                        event = await self._next(conn, chain, kind, actor, detail)
                        await conn.execute(
                            audit_events.insert().values(
                                log_index=event.log_index,
                                chain=chain,
                                case_seq=event.case_seq,
                                at=dt.datetime.fromisoformat(event.at),
                                kind=kind,
                                actor=actor,
                                detail=event.detail,
                                prev_hash=event.prev_hash,
                                hash=event.hash,
                            )
                        )
                    return event
                except IntegrityError:
                    if attempt == APPEND_ATTEMPTS - 1:
                        raise
        raise AssertionError("unreachable")

    async def _next(
        self,
        conn: AsyncConnection,
        chain: str,
        kind: str,
        actor: str | None,
        detail: dict[str, Any],
    ) -> AuditEvent:
        last = (
            select(audit_events.c.case_seq, audit_events.c.hash)
            .where(audit_events.c.chain == chain)
            .order_by(audit_events.c.case_seq.desc())
            .limit(1)
            .subquery()
        )
        row = (  # one round trip: the log's last index and the chain's last event
            await conn.execute(
                select(
                    select(func.max(audit_events.c.log_index)).scalar_subquery(),
                    select(last.c.case_seq).scalar_subquery(),
                    select(last.c.hash).scalar_subquery(),
                )
            )
        ).one()
        last_index, last_seq, last_hash = row
        case_seq, prev_hash = (last_seq + 1, last_hash) if last_seq else (1, GENESIS)
        index = 0 if last_index is None else last_index + 1
        return seal(index, chain, case_seq, prev_hash, self._clock.now(), kind, actor, detail)

    async def events(self, chain: str, kind: str | None = None) -> list[AuditEvent]:
        query = select(audit_events).where(audit_events.c.chain == chain)
        if kind:
            query = query.where(audit_events.c.kind == kind)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query.order_by(audit_events.c.case_seq))).all()
        return [event_from_row(r) for r in rows]

    async def all_events(self) -> list[AuditEvent]:
        """The whole log in index order (for verification and export)."""
        async with self._engine.connect() as conn:
            rows = (
                await conn.execute(select(audit_events).order_by(audit_events.c.log_index))
            ).all()
        return [event_from_row(r) for r in rows]

    async def head(self, chain: str) -> str | None:
        """Hash of the chain's last event, or None for an empty chain."""
        async with self._engine.connect() as conn:
            return await conn.scalar(
                select(audit_events.c.hash)
                .where(audit_events.c.chain == chain)
                .order_by(audit_events.c.case_seq.desc())
                .limit(1)
            )

    async def size(self) -> int:
        async with self._engine.connect() as conn:
            last = await conn.scalar(select(func.max(audit_events.c.log_index)))
        return 0 if last is None else last + 1

    async def count(self, kind: str) -> int:
        async with self._engine.connect() as conn:
            total = await conn.scalar(
                select(func.count()).select_from(audit_events).where(audit_events.c.kind == kind)
            )
        return int(total or 0)

    # -- checkpoints and proofs ----------------------------------------------------------

    async def warm(self) -> None:
        """Before the first signing: check the whole stored log against every stored and
        witnessed checkpoint (rebuilt off the event loop, outside the append lock)."""
        witnessed: list[Checkpoint] = []
        if self.witness_file is not None and not self._checkpoints.warmed:
            try:
                found = await asyncio.to_thread(read_witness, self.witness_file)
            except OSError:  # not readable now: sign, and say so
                logger.exception("cannot read the witness file to check the log against it")
                found = WitnessFile()
            for entry in found.entries:
                if entry.verifies():
                    witnessed.append(entry.checkpoint)
                else:
                    logger.error("witness line %d does not verify: ignored", entry.line)
            if found.unreadable:
                logger.error("witness lines %s are not checkpoints: ignored", found.unreadable)
        await self._checkpoints.warm(witnessed)

    async def checkpoint(self) -> Checkpoint:
        """Sign the tree as it stands now (also when it has not grown)."""
        await self.warm()
        async with self._lock:
            checkpoint = await self._checkpoints.sign()
            await self._witness()
        return checkpoint

    async def checkpoint_if_grown(self) -> Checkpoint | None:
        """Sign only if events were appended since the latest checkpoint."""
        await self.warm()
        async with self._lock:
            checkpoint = await self._checkpoints.sign_if_grown()
            if checkpoint is not None or self.witness_behind:
                await self._witness()
        return checkpoint

    async def _witness(self) -> None:
        """Bring the witness file up to the stored checkpoints, in order (under the lock).
        A failure is logged and remembered; the next signing catches up."""
        if self.witness_file is None:
            return
        try:
            last = await asyncio.to_thread(last_witnessed, self.witness_file)
            keys = {k.key_id: k.public_key for k in await self.keyring.keys()}
            since = await self._checkpoints.since(last)
            pending = [(c, keys.get(c.key_id, "")) for c in since]  # unknown: fails to verify
            await asyncio.to_thread(append_after_last, self.witness_file, pending)
        except OSError:
            self.witness_behind = True
            logger.exception("could not append to the witness file %s", self.witness_file)
        else:
            self.witness_behind = False

    async def latest_checkpoint(self) -> Checkpoint | None:
        return await self._checkpoints.latest()

    async def checkpoints(self) -> list[Checkpoint]:
        return await self._checkpoints.all()

    async def run_checkpoints(self, interval: float) -> None:
        """Sign a checkpoint every ``interval`` seconds while events arrive; runs until
        cancelled (a task the app owns)."""
        try:
            await self.warm()
        except Exception:  # log_tampered, a database error: each round retries
            logger.exception("the stored log does not match its checkpoints")
        await self._checkpoints.run(self.checkpoint_if_grown, interval)

    async def _tree(self, size: int) -> merkle.MerkleTree:
        async with self._engine.connect() as conn:
            hashes = (
                (
                    await conn.execute(
                        select(audit_events.c.hash)
                        .where(audit_events.c.log_index < size)
                        .order_by(audit_events.c.log_index)
                    )
                )
                .scalars()
                .all()
            )
        # about 2n node hashes: a long log's would hold the event loop for a while
        tree = await asyncio.to_thread(merkle.MerkleTree, (bytes.fromhex(h) for h in hashes))
        if tree.size != size:
            raise LogError("bad_tree_size", f"the log holds {tree.size} events, not {size}")
        return tree

    async def proof_tree(self, size: int) -> merkle.MerkleTree:
        """The tree of the first ``size`` events, for many proofs at once (export)."""
        return await self._tree(size)

    async def inclusion_proof(self, log_index: int, tree_size: int) -> list[str]:
        """Hashes (hex) proving event ``log_index`` is in the tree of ``tree_size``."""
        if not 0 <= log_index < tree_size:
            raise LogError("bad_tree_size", f"event {log_index} is not in a tree of {tree_size}")
        tree = await self._tree(tree_size)
        return [h.hex() for h in tree.inclusion_proof(log_index, tree_size)]

    async def consistency_proof(self, old: int, new: int) -> list[str]:
        """Hashes (hex) proving the tree of ``new`` extends the tree of ``old``."""
        if not 0 <= old <= new:
            raise LogError("bad_tree_size", f"no consistency proof from {old} to {new}")
        tree = await self._tree(new)
        return [h.hex() for h in tree.consistency_proof(old, new)]

    async def rotate_key(self, actor: str | None) -> tuple[str, str]:
        """Sign a last checkpoint with the old key, make and register a new one, log the
        rotation, and sign with the new key. Returns (old key id, new key id)."""
        await self.checkpoint()
        old, new = await self.keyring.rotate()
        await self.append("key_rotated", actor=actor, old_key=old, new_key=new)
        await self.checkpoint()
        return old, new


def verify_chain(events: Sequence[AuditEvent]) -> int | None:
    """Index of the first event that breaks its chain (sequence, link or own hash), or
    None if the chain holds."""
    prev = GENESIS
    for index, event in enumerate(events):
        if event.case_seq != index + 1 or event.prev_hash != prev:
            return index
        if event.entry_hash() != event.hash:
            return index
        prev = event.hash
    return None
