"""Append-only audit log with a hash chain per case (and one for system events).

Each entry's hash is SHA-256 over the previous hash and the entry's canonical JSON, so
removing, altering or reordering an entry breaks every later hash of its chain.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from recorder.clock import Clock, as_utc
from recorder.schema import audit_events

GENESIS = "0" * 64
SYSTEM_CHAIN = "system"


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def entry_hash(prev_hash: str, entry: dict[str, Any]) -> str:
    return hashlib.sha256(prev_hash.encode("ascii") + canonical_json(entry)).hexdigest()


@dataclass(frozen=True)
class AuditEvent:
    chain: str
    seq: int
    at: str
    kind: str
    actor: str | None
    detail: dict[str, Any]
    prev_hash: str
    hash: str

    def entry(self) -> dict[str, Any]:
        """The hashed content: everything but the hashes themselves."""
        return {
            "chain": self.chain,
            "seq": self.seq,
            "at": self.at,
            "kind": self.kind,
            "actor": self.actor,
            "detail": self.detail,
        }


class AuditLog:
    def __init__(self, engine: AsyncEngine, clock: Clock) -> None:
        self._engine = engine
        self._clock = clock
        self._lock = asyncio.Lock()

    async def append(
        self, kind: str, *, actor: str | None, case_no: str | None = None, **detail: Any
    ) -> AuditEvent:
        chain = f"case:{case_no}" if case_no else SYSTEM_CHAIN
        async with self._lock, self._engine.begin() as conn:
            last = (
                await conn.execute(
                    select(audit_events.c.seq, audit_events.c.hash)
                    .where(audit_events.c.chain == chain)
                    .order_by(audit_events.c.seq.desc())
                    .limit(1)
                )
            ).first()
            seq, prev_hash = (last.seq + 1, last.hash) if last else (1, GENESIS)
            now = self._clock.now()
            event = AuditEvent(chain, seq, now.isoformat(), kind, actor, detail, prev_hash, "")
            digest = entry_hash(prev_hash, event.entry())
            await conn.execute(
                audit_events.insert().values(
                    chain=chain,
                    seq=seq,
                    at=now,
                    kind=kind,
                    actor=actor,
                    detail=detail,
                    prev_hash=prev_hash,
                    hash=digest,
                )
            )
        return AuditEvent(chain, seq, event.at, kind, actor, detail, prev_hash, digest)

    async def events(self, chain: str, kind: str | None = None) -> list[AuditEvent]:
        query = select(audit_events).where(audit_events.c.chain == chain)
        if kind:
            query = query.where(audit_events.c.kind == kind)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query.order_by(audit_events.c.seq))).all()
        return [
            AuditEvent(
                r.chain,
                r.seq,
                as_utc(r.at).isoformat(),
                r.kind,
                r.actor,
                r.detail,
                r.prev_hash,
                r.hash,
            )
            for r in rows
        ]

    async def count(self, kind: str) -> int:
        async with self._engine.connect() as conn:
            total = await conn.scalar(
                select(func.count()).select_from(audit_events).where(audit_events.c.kind == kind)
            )
        return int(total or 0)


def verify_chain(events: list[AuditEvent]) -> int | None:
    """Index of the first entry that breaks the chain, or None if it holds."""
    prev = GENESIS
    for index, event in enumerate(events):
        if event.seq != index + 1 or event.prev_hash != prev:
            return index
        if entry_hash(prev, event.entry()) != event.hash:
            return index
        prev = event.hash
    return None
