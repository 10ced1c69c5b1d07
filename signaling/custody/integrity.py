"""The integrity check of a case (完整性校验) against the live store and database: gathers
what recorder/integrity.py checks, signs a checkpoint first so that every event of the
case read before it is covered, logs ``integrity_checked`` and answers in Chinese.

Signing first is the choice: "not yet covered" would otherwise be the usual answer for a
case checked right after its session. If the log refuses to sign (the stored log no
longer matches its checkpoints), the events after the latest checkpoint are reported as
``not_in_checkpoint`` with that reason.
"""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from recorder.auditlog import AuditLog, chain_of
from recorder.errors import LogError
from recorder.integrity import FiledFile, IntegrityReport, check_case, measure, named_files
from recorder.logverify import Problem
from recorder.schema import audit_events
from recorder.store import EvidenceStore
from signaling.storage.models import Case, User
from signaling.storage.tables import evidence_files
from signaling.web.messages import EVIDENCE_ROLE_NAMES, message, problem_name

CHECKS_AT_ONCE = 1
"""Checks hash every stored byte of a case: one at a time per process."""


def subject(where: str) -> str:
    """The file, event or checkpoint a problem names, in Chinese."""
    head, _, rest = where.partition(" ")
    if head in EVIDENCE_ROLE_NAMES:
        return f"{EVIDENCE_ROLE_NAMES[head]} {rest[:16]}…"
    if head == "checkpoint":
        return f"签名检查点（{rest} 条）"
    if head.startswith("case:"):
        return f"事件 {rest}"
    return where


def present(report: IntegrityReport, case_no: str) -> dict[str, Any]:
    def problem(p: Problem) -> dict[str, Any]:
        return {
            "code": p.code,
            "where": p.where,
            "subject": subject(p.where),
            "message": problem_name(p.code),
            "detail": p.detail,
        }

    checkpoint = report.checkpoint
    return {
        "case_no": case_no,
        "ok": report.ok,
        "summary": "所有证据完整" if report.ok else f"发现 {len(report.problems)} 处问题",
        "files": report.files,
        "events": report.events,
        "checkpoint": None
        if checkpoint is None
        else {
            "tree_size": checkpoint.tree_size,
            "time": checkpoint.time,
            "key_id": checkpoint.key_id,
        },
        "problems": [problem(p) for p in report.problems],
        "purged": [
            {
                "sha256": p.sha256,
                "role": p.role,
                "role_name": EVIDENCE_ROLE_NAMES.get(p.role, p.role),
                "bytes": p.bytes,
                "session": p.session,
                "purged_at": p.purged_at,
                "retention_until": p.retention_until,
                "still_present": p.still_present,
                "message": problem_name("evidence_purged"),
            }
            for p in report.purged
        ],
    }


class CaseIntegrity:
    def __init__(self, engine: AsyncEngine, audit: AuditLog, store: EvidenceStore) -> None:
        self._engine = engine
        self._audit = audit
        self._store = store
        self._slots = asyncio.Semaphore(CHECKS_AT_ONCE)

    async def _files(self, case: Case) -> list[FiledFile]:
        query = select(
            evidence_files.c.sha256,
            evidence_files.c.role,
            evidence_files.c.session_id,
            evidence_files.c.bytes,
        ).where(evidence_files.c.case_id == case.id)
        async with self._engine.connect() as conn:
            return [FiledFile(*row) for row in await conn.execute(query)]

    async def _leaves(self, size: int) -> list[bytes]:
        query = (
            select(audit_events.c.hash)
            .where(audit_events.c.log_index < size)
            .order_by(audit_events.c.log_index)
        )
        async with self._engine.connect() as conn:
            return [bytes.fromhex(h) for h in (await conn.execute(query)).scalars()]

    async def check(self, user: User, case: Case) -> dict[str, Any]:
        async with self._slots:
            events = await self._audit.events(chain_of(case.case_no))
            unsigned = ""
            try:
                await self._audit.checkpoint_if_grown()
            except LogError as exc:
                unsigned = message(exc.code)
            checkpoint = await self._audit.latest_checkpoint()
            keys = await self._audit.keyring.keys()
            files = await self._files(case)
            named = sorted(named_files(files, events))
            disk = await asyncio.to_thread(measure, self._store, named)
            leaves = await self._leaves(checkpoint.tree_size if checkpoint else 0)
            report = await asyncio.to_thread(
                check_case, files, events, disk, leaves, checkpoint, keys, unsigned_reason=unsigned
            )
        await self._audit.append(
            "integrity_checked",
            actor=user.username,
            case_no=case.case_no,
            ok=report.ok,
            problems=len(report.problems),
            tree_size=checkpoint.tree_size if checkpoint else 0,
        )
        return {**present(report, case.case_no), "checked_by": user.username}
