"""``coreview retention run``: delete the media of cases past retention and not on hold.

For each file to delete, an ``evidence_purged`` tombstone is logged on the chain of
every case that holds it (one per evidence_files row), *then* the file is deleted
(``EvidenceStore.purge``). A crash between the two leaves a tombstone for a file still
stored; the next run sees the tombstone, logs nothing again and deletes the file. A file
(by its hash) held by several cases goes only when every one of them is due. Rows and
the log are never touched. A run holds the retention lease throughout (no other run, no
hold placed meanwhile: signaling/custody/retention.py); a dry run takes none.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from recorder.auditlog import AuditLog, chain_of
from recorder.clock import Clock
from recorder.errors import StoreError
from recorder.integrity import MEDIA_ROLES, PURGE_EVENT
from recorder.schema import audit_events
from recorder.store import EvidenceStore
from signaling.custody.retention import CaseRetention, RetentionLease, case_retention, china_today
from signaling.storage.tables import evidence_files

RUN_EVENT = "retention_run"


@dataclass
class RetentionSummary:
    today: dt.date
    dry_run: bool
    cases: int = 0
    expired: int = 0
    """Cases past retention (held ones included)."""
    held: list[str] = field(default_factory=list)
    """Cases past retention kept by a legal hold."""
    purged_cases: set[str] = field(default_factory=set)
    files: int = 0
    bytes: int = 0
    finished: int = 0
    """Files whose tombstone an earlier, interrupted run had logged."""
    shared_kept: int = 0
    """Files of a due case kept because a case not yet due holds them too."""
    failed: list[tuple[str, str]] = field(default_factory=list)

    def lines(self) -> list[str]:
        """The run, in Chinese, for the operator."""
        head = (
            "保存期限清理（试运行，未删除任何文件、未记录日志）" if self.dry_run else "保存期限清理"
        )
        verb = "将删除" if self.dry_run else "已删除"
        found = [
            f"{head}：{self.today.isoformat()}，检查案件 {self.cases} 件，"
            f"已过保存期限 {self.expired} 件。",
            f"{verb}媒体文件 {self.files} 个（{self.bytes / 1e6:.1f} MB），"
            f"涉及案件 {len(self.purged_cases)} 件；案件记录与审计日志全部保留。",
        ]
        if self.held:
            found.append(f"法律保全中、予以保留的案件 {len(self.held)} 件：{'、'.join(self.held)}")
        if self.finished:
            found.append(f"其中 {self.finished} 个文件是上次中断后补完删除的（已有删除记录）。")
        if self.shared_kept:
            found.append(f"与尚未到期的案件共用、予以保留的文件 {self.shared_kept} 个。")
        for sha256, error in self.failed:
            found.append(f"✗ 未能删除 {sha256}：{error}（已记录删除，下次运行将补完）")
        return found


@dataclass(frozen=True)
class _Row:
    case_id: int
    sha256: str
    role: str
    session: str | None
    bytes: int


async def _media_rows(engine: AsyncEngine) -> list[_Row]:
    query = select(
        evidence_files.c.case_id,
        evidence_files.c.sha256,
        evidence_files.c.role,
        evidence_files.c.session_id,
        evidence_files.c.bytes,
    ).where(evidence_files.c.role.in_(MEDIA_ROLES))
    async with engine.connect() as conn:
        return [_Row(*row) for row in await conn.execute(query.order_by(evidence_files.c.id))]


async def _tombstoned(engine: AsyncEngine) -> set[tuple[Any, ...]]:
    """(chain, sha256, role, session) of every tombstone logged."""
    query = select(audit_events.c.chain, audit_events.c.detail).where(
        audit_events.c.kind == PURGE_EVENT
    )
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    return {
        (chain, d.get("sha256"), d.get("role"), d.get("session"))
        for chain, d in rows
        if isinstance(d, dict)
    }


async def run_retention(
    engine: AsyncEngine,
    audit: AuditLog,
    store: EvidenceStore,
    clock: Clock,
    *,
    dry_run: bool = False,
) -> RetentionSummary:
    if dry_run:
        return await _run(engine, audit, store, clock, None)
    async with RetentionLease(engine, clock) as lease:  # before the holds are read
        return await _run(engine, audit, store, clock, lease)


async def _run(
    engine: AsyncEngine,
    audit: AuditLog,
    store: EvidenceStore,
    clock: Clock,
    lease: RetentionLease | None,
) -> RetentionSummary:
    """With ``lease`` None, a dry run: count, delete and log nothing."""
    today = china_today(clock)
    states = {s.case_id: s for s in await case_retention(engine)}
    due: dict[int, CaseRetention] = {i: s for i, s in states.items() if s.due(today)}
    summary = RetentionSummary(today, lease is None, cases=len(states))
    for state in states.values():
        until = state.until
        if until is not None and today > until:
            summary.expired += 1
            if state.on_hold:
                summary.held.append(state.case_no)
    holders: dict[str, list[_Row]] = defaultdict(list)
    for row in await _media_rows(engine):
        holders[row.sha256].append(row)
    logged = await _tombstoned(engine)
    for sha256, rows in holders.items():
        if not any(r.case_id in due for r in rows):
            continue
        if not all(r.case_id in due for r in rows):
            summary.shared_kept += 1
            continue
        if not await asyncio.to_thread(store.exists, sha256):
            continue  # deleted by an earlier run
        summary.files += 1
        summary.bytes += rows[0].bytes
        summary.purged_cases.update(states[r.case_id].case_no for r in rows)
        if lease is None:
            continue
        await lease.renew()
        fresh = 0
        for row in rows:
            state = due[row.case_id]
            key = (chain_of(state.case_no), sha256, row.role, row.session)
            if key in logged:
                continue
            await audit.append(
                PURGE_EVENT,
                actor=None,
                case_no=state.case_no,
                sha256=sha256,
                role=row.role,
                bytes=row.bytes,
                session=row.session,
                reason="retention",
                retention_until=str(state.until),
            )
            fresh += 1
        if not fresh:
            summary.finished += 1
        try:
            await asyncio.to_thread(store.purge, sha256)
        except StoreError as exc:
            summary.failed.append((sha256, exc.detail or exc.code))
    if lease is not None and summary.files:
        await audit.append(
            RUN_EVENT,
            actor=None,
            files=summary.files,
            bytes=summary.bytes,
            cases=sorted(summary.purged_cases),
            failed=len(summary.failed),
        )
    return summary
