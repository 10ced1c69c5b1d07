"""Export a case's evidence as a package (recorder/package.py): gather its files, its
chain, the checkpoints that attest it (a fresh one is signed if none covers the chain's
last event) and the proofs; write the package in a worker thread; log ``case_exported``.

``Exports`` runs exports started over the API as owned background jobs with progress;
the CLI calls ``Exporter.export`` directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from recorder import package
from recorder.auditlog import AuditLog, chain_of
from recorder.canonical import timestamp
from recorder.clock import Clock
from recorder.errors import EvidenceError
from recorder.integrity import tombstones
from recorder.store import EvidenceStore
from signaling.storage.models import User
from signaling.storage.tables import cases, evidence_files
from signaling.web.errors import Conflict, Gone, NotFound
from signaling.web.messages import message

logger = logging.getLogger(__name__)

FORMAT = "zip"


class Exporter:
    def __init__(
        self, engine: AsyncEngine, audit: AuditLog, store: EvidenceStore, clock: Clock
    ) -> None:
        self._engine = engine
        self._audit = audit
        self._store = store
        self._clock = clock

    async def gather(self, case_no: str, actor: str | None) -> package.Contents:
        async with self._engine.connect() as conn:
            case_id = await conn.scalar(select(cases.c.id).where(cases.c.case_no == case_no))
            if case_id is None:
                raise NotFound("case_not_found")
            rows = (
                await conn.execute(
                    select(evidence_files)
                    .where(evidence_files.c.case_id == case_id)
                    .order_by(evidence_files.c.id)
                )
            ).all()
        events = await self._audit.events(chain_of(case_no))
        checkpoints = await self._audit.checkpoints()
        last = events[-1].log_index if events else -1
        if not checkpoints or checkpoints[-1].tree_size <= last:
            await self._audit.checkpoint()  # none covers the chain's end yet: sign one
            checkpoints = await self._audit.checkpoints()
        tree = await self._audit.proof_tree(checkpoints[-1].tree_size)
        inclusion, used, consistency = await asyncio.to_thread(
            package.attest, events, checkpoints, tree
        )
        purges = tombstones(events)
        media = [
            package.MediaFile(
                row.sha256,
                row.role,
                self._store.path(row.sha256),
                {
                    key: value
                    for key, value in (
                        ("session", row.session_id),
                        ("track", row.track),
                        ("participant", row.participant),
                        ("source", row.source),
                        ("derived_from", row.derived_from),
                    )
                    if value is not None
                },
                row.meta or {},
            )
            for row in rows
            if row.sha256 not in purges
        ]
        purged = [
            {
                "sha256": sha256,
                "role": event.detail.get("role"),
                "bytes": event.detail.get("bytes"),
                "event": event.log_index,
            }
            for sha256, event in purges.items()
        ]
        return package.Contents(
            case_no=case_no,
            created_at=timestamp(self._clock.now()),
            created_by=actor,
            events=events,
            inclusion=inclusion,
            checkpoints=used,
            consistency=consistency,
            keys=await self._audit.keyring.keys(),
            media=media,
            purged=purged,
        )

    async def export(
        self,
        case_no: str,
        out: Path,
        actor: str | None,
        progress: Callable[[int], None] = lambda _n: None,
        contents: package.Contents | None = None,
    ) -> package.Written:
        """Write the case's package to ``out`` and log ``case_exported``."""
        contents = contents or await self.gather(case_no, actor)
        key_id, key = await self._audit.keyring.signing_key(contents.created_at)
        written = await asyncio.to_thread(
            package.write_package, out, contents, key_id, key, progress
        )
        if written.missing:
            logger.error("export of %s: files missing from the store: %s", case_no, written.missing)
        await self._audit.append(
            "case_exported",
            actor=actor,
            case_no=case_no,
            package_sha256=written.sha256,
            files=written.files,
            bytes=written.bytes,
            format=FORMAT,
        )
        return written


State = Literal["running", "done", "failed", "expired"]
KEEP_SECONDS = 3600.0
"""A finished package is kept this long for its download, then deleted."""
KEEP_PER_USER = 3
"""Finished packages kept per user: a newer export deletes the oldest."""
JOBS_PER_USER = 20
"""Jobs remembered per user (an expired or failed one still answers 410 or its error);
a newer export forgets the oldest finished one."""


@dataclass
class ExportJob:
    id: str
    case_no: str
    owner: int
    path: Path
    total: int = 0
    done: int = 0
    state: State = "running"
    error: str | None = None
    written: package.Written | None = None
    expiry: asyncio.TimerHandle | None = None
    downloads: int = 0
    """Downloads under way: the package is deleted only once they are over."""

    def advance(self, count: int) -> None:
        self.done += count  # from the writer's thread: one int, read by the loop

    def to_dict(self) -> dict[str, Any]:
        percent = 100 if self.state == "done" else min(99, self.done * 100 // max(self.total, 1))
        body: dict[str, Any] = {
            "id": self.id,
            "case_no": self.case_no,
            "state": self.state,
            "bytes_done": self.done,
            "bytes_total": self.total,
            "percent": percent,
            "error": self.error,
            "message": message(self.error) if self.error else None,
        }
        if self.written is not None and self.state == "done":
            body.update(
                package_sha256=self.written.sha256,
                files=self.written.files,
                bytes=self.written.bytes,
                download=f"/api/v1/cases/{self.case_no}/exports/{self.id}/package",
            )
        return body


class Exports:
    """Export jobs of this node: one running per user. A finished package waits in
    ``directory`` for its download for ``KEEP_SECONDS`` (at most ``KEEP_PER_USER`` per
    user), then is deleted and its job ``expired``. What a node that stopped without
    closing left there is deleted at the next start; the rest on close."""

    def __init__(self, exporter: Exporter, directory: Path) -> None:
        self._exporter = exporter
        self._directory = directory
        self._jobs: dict[str, ExportJob] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def open(self) -> None:
        await asyncio.to_thread(_clear, self._directory)

    async def start(self, case_no: str, user: User) -> ExportJob:
        if any(j.owner == user.id and j.state == "running" for j in self._jobs.values()):
            raise Conflict("export_running")
        await asyncio.to_thread(self._directory.mkdir, mode=0o700, parents=True, exist_ok=True)
        job_id = secrets.token_hex(8)
        job = ExportJob(job_id, case_no, user.id, self._directory / f"{case_no}-{job_id}.zip")
        self._jobs[job_id] = job
        own = [j for j in self._jobs.values() if j.owner == user.id]
        for old in own[:-JOBS_PER_USER]:  # in start order: the oldest are forgotten
            if old.state in ("expired", "failed"):
                del self._jobs[old.id]
        task = asyncio.create_task(self._run(job, user.username))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return job

    async def _run(self, job: ExportJob, actor: str) -> None:
        try:
            contents = await self._exporter.gather(job.case_no, actor)
            job.total = await asyncio.to_thread(_media_bytes, contents)
            job.written = await self._exporter.export(
                job.case_no, job.path, actor, job.advance, contents
            )
            job.state = "done"
        except Exception as exc:  # the job says so; the node goes on
            logger.exception("export of %s failed", job.case_no)
            code = exc.code if isinstance(exc, EvidenceError) else "export_failed"
            job.state, job.error = "failed", code
            await asyncio.to_thread(job.path.unlink, missing_ok=True)
            return
        loop = asyncio.get_running_loop()
        job.expiry = loop.call_later(KEEP_SECONDS, lambda: self._spawn(self._expire(job)))
        kept = [j for j in self._jobs.values() if j.owner == job.owner and j.state == "done"]
        for old in kept[:-KEEP_PER_USER]:  # in start order: the oldest go
            await self._expire(old)

    async def _expire(self, job: ExportJob) -> None:
        if job.expiry is not None:
            job.expiry.cancel()
        job.state, job.written = "expired", None
        if not job.downloads:  # else the last download deletes it
            await asyncio.to_thread(job.path.unlink, missing_ok=True)

    @contextlib.contextmanager
    def downloading(self, job: ExportJob) -> Iterator[Path]:
        """The package's path, kept while the caller sends it, even if it expires
        meanwhile; 410 export_expired or 409 export_not_ready when there is none."""
        _check_ready(job)
        job.downloads += 1
        try:
            yield job.path
        finally:
            job.downloads -= 1
            if job.state == "expired" and not job.downloads:
                self._spawn(asyncio.to_thread(job.path.unlink, missing_ok=True))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def get(self, job_id: str, case_no: str, user: User) -> ExportJob:
        job = self._jobs.get(job_id)
        if job is None or job.owner != user.id or job.case_no != case_no:
            raise NotFound("export_not_found")
        return job

    async def close(self) -> None:
        for job in self._jobs.values():
            if job.expiry is not None:
                job.expiry.cancel()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await asyncio.to_thread(_clear, self._directory)


def _check_ready(job: ExportJob) -> None:
    if job.state == "expired":
        raise Gone("export_expired")
    if job.state != "done":
        raise Conflict("export_not_ready")


def _clear(directory: Path) -> None:
    """Every package file in ``directory`` (the node's own: nothing else goes there)."""
    with contextlib.suppress(FileNotFoundError):
        for path in directory.iterdir():
            if path.suffix == ".zip":
                path.unlink(missing_ok=True)


def _media_bytes(contents: package.Contents) -> int:
    """Bytes the writer will copy (each file once), for progress."""
    sizes: dict[str, int] = {}
    for media in contents.media:
        with contextlib.suppress(OSError):
            sizes[media.path] = media.source.stat().st_size
    return sum(sizes.values())
