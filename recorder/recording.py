"""Recording of review sessions: captures per published track, chunks into the store,
their ``evidence_files`` rows and log events, conversion to playable files.

    Recorder           one per node: store, database, log, conversion worker; recovery
    SessionRecording   one per live session: its track captures, a flush timer, and one
                       queue that logs its events and stores its chunks in order

Events (``AuditLog.append``, on the case's chain): ``track_started``, ``track_ended``,
``recording_gap`` (reason ``reconnect`` or ``outage``), ``chunk_closed``,
``chunk_recovered``, ``playable_derived``, ``conversion_failed``, ``recording_failed``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from recorder import chunkfile
from recorder.auditlog import AuditLog
from recorder.capture import FLUSH_SECONDS, ClosedChunk, TrackCapture, TrackInfo
from recorder.clock import Clock
from recorder.convert import convert_stored
from recorder.errors import StoreError
from recorder.recovery import (
    PendingChunk,
    TrimmedChunk,
    info_from_header,
    open_chunks,
    pending_chunks,
    sync_and_hash,
    trim,
    write_note,
)
from recorder.rows import file_evidence
from recorder.schema import audit_events, evidence_files
from recorder.store import EvidenceStore
from recorder.workers import JobFailed, WorkerPool

logger = logging.getLogger(__name__)

RESERVED = {"kind": "media_kind", "actor": "media_actor", "case_no": "media_case_no"}
"""Names AuditLog.append takes itself, renamed in an event's detail."""
CHUNK_EVENTS = ("chunk_closed", "chunk_recovered")
FailureCallback = Callable[[str], None]
"""Told a capture of the session stopped (code ``disk_full`` or ``write_failed``)."""


class Recorder:
    def __init__(
        self,
        engine: AsyncEngine,
        store: EvidenceStore,
        audit: AuditLog,
        clock: Clock,
        pool: WorkerPool,
        chunk_seconds: float,
    ) -> None:
        self.engine = engine
        self.store = store
        self.audit = audit
        self.clock = clock
        self.pool = pool
        self.chunk_seconds = chunk_seconds
        self.incoming = store.root / "incoming"
        self._tasks: set[asyncio.Task[None]] = set()
        self.events: Counter[str] = Counter()
        """Recording events logged since start, by kind (for metrics)."""
        self.chunk_bytes = 0
        """Bytes of the capture chunks filed since start."""
        self.converting = 0
        """Chunks whose conversion to a playable file is queued or running."""

    def session(
        self, session_id: str, case_no: str, case_id: int, on_failure: FailureCallback
    ) -> SessionRecording:
        return SessionRecording(self, session_id, case_no, case_id, on_failure)

    def spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def log(self, info: TrackInfo, event: str, **detail: Any) -> None:
        # the log's own parameters are reserved: a chunk's media "kind" goes as media_kind
        facts = {RESERVED.get(key, key): value for key, value in detail.items()}
        self.events[event] += 1
        await self.audit.append(
            event,
            actor=None,
            case_no=info.case_no,
            session=info.session,
            track=info.track,
            participant=info.participant,
            source=info.source,
            **facts,
        )

    async def _row(self, info: TrackInfo, role: str, sha256: str, size: int, **values: Any) -> bool:
        """Add an evidence_files row; False if the case already has that file."""
        return await file_evidence(
            self.engine,
            sha256=sha256,
            case_id=info.case_id,
            session_id=info.session,
            role=role,
            track=info.track,
            participant=info.participant,
            source=info.source,
            bytes=size,
            created_at=self.clock.now(),
            **values,
        )

    async def keep_chunk(
        self, info: TrackInfo, path: Path, meta: dict[str, Any], seconds: float, event: str
    ) -> tuple[str, asyncio.Task[None]]:
        """Fsync and hash the closed chunk, note what is to be filed beside it, move it
        into the store, then its row and its event (a crash at any step is finished by
        ``recover``). Returns its hash and the task converting it."""
        found = await asyncio.to_thread(sync_and_hash, path)
        pending = PendingChunk(info, path, found.sha256, found.bytes, meta, seconds, event)
        await asyncio.to_thread(write_note, pending)
        await self._file(pending)
        return found.sha256, self.spawn(self.convert(info, found.sha256))

    async def _file(self, chunk: PendingChunk) -> None:
        """Each step only if not done yet: store, row, event; then drop the note."""
        if await asyncio.to_thread(chunk.path.exists):
            stored = await asyncio.to_thread(self.store.adopt, chunk.path)
            if stored.sha256 != chunk.sha256:
                raise StoreError("store_conflict", f"{chunk.path.name} changed after hashing")
        elif not await asyncio.to_thread(self.store.exists, chunk.sha256):
            raise StoreError("not_stored", chunk.sha256)
        await self._row(
            chunk.info,
            "capture",
            chunk.sha256,
            chunk.bytes,
            seconds=chunk.seconds,
            meta=chunk.meta,
        )
        if not await self._logged(CHUNK_EVENTS, "sha256", [chunk.sha256]):
            await self.log(
                chunk.info, chunk.event, sha256=chunk.sha256, bytes=chunk.bytes, **chunk.meta
            )
            self.chunk_bytes += chunk.bytes
        await asyncio.to_thread(chunk.note.unlink, missing_ok=True)

    async def convert(self, info: TrackInfo, chunk_sha256: str) -> None:
        self.converting += 1
        try:
            result = await self.pool.run(convert_stored, str(self.store.root), chunk_sha256)
        except JobFailed as exc:
            logger.error("conversion of %s failed: %s", chunk_sha256, exc.reason)
            await self.log(info, "conversion_failed", chunk=chunk_sha256, reason=exc.reason)
            return
        finally:
            self.converting -= 1
        meta = {k: v for k, v in result.items() if k not in ("sha256", "bytes")}
        await self._row(
            info,
            "playable",
            result["sha256"],
            result["bytes"],
            seconds=result["seconds"],
            derived_from=chunk_sha256,
            meta=meta,
        )
        if not await self._logged(("playable_derived",), "derived_from", [chunk_sha256]):
            await self.log(
                info,
                "playable_derived",
                sha256=result["sha256"],
                bytes=result["bytes"],
                derived_from=chunk_sha256,
                **meta,
            )

    async def recover(self) -> list[TrimmedChunk]:
        """At start, before sessions resume: chunks whose filing a crash interrupted are
        filed (what is missing of store, row and event); every chunk a crash left open is
        cut at its last whole record, kept (``chunk_recovered``) and converted. Returns
        the chunks left open."""
        for pending in await asyncio.to_thread(pending_chunks, self.incoming):
            try:
                await self._file(pending)
            except (OSError, StoreError, SQLAlchemyError):
                logger.exception("filing %s failed; it stays in incoming/", pending.path.name)
        recovered = []
        for path in await asyncio.to_thread(open_chunks, self.incoming):
            try:
                trimmed = await asyncio.to_thread(trim, path)
                if trimmed is None:
                    continue
                meta = {**trimmed.meta, "cut_bytes": trimmed.cut_bytes}
                await self.keep_chunk(trimmed.info, path, meta, trimmed.seconds, "chunk_recovered")
            except (OSError, StoreError, SQLAlchemyError):
                logger.exception("recovering %s failed; it stays in incoming/", path.name)
                continue
            recovered.append(trimmed)
        return recovered

    async def convert_pending(self) -> int:
        """At start: convert stored chunks whose playable file is not logged yet (the
        server stopped before their conversion, or its event, was done). A chunk whose
        conversion failed is logged ``conversion_failed`` once and not tried again.
        Returns how many were started."""
        query = select(evidence_files.c.sha256).where(evidence_files.c.role == "capture")
        async with self.engine.connect() as conn:
            chunks = list(dict.fromkeys((await conn.execute(query)).scalars()))
        done = await self._logged(("playable_derived",), "derived_from", chunks)
        failed = await self._logged(("conversion_failed",), "chunk", chunks)
        started = 0
        for sha256 in chunks:
            if sha256 in done or sha256 in failed:
                continue
            info = await asyncio.to_thread(self._stored_info, sha256)
            if info is not None:
                self.spawn(self.convert(info, sha256))
                started += 1
        return started

    async def _logged(self, kinds: tuple[str, ...], key: str, values: list[str]) -> set[str]:
        """Which of ``values`` an event of one of ``kinds`` names in its detail under
        ``key`` (the log, not the rows, says what is recorded)."""
        if not values:
            return set()
        field = audit_events.c.detail[key].as_string()
        query = select(field).where(audit_events.c.kind.in_(kinds), field.in_(values))
        async with self.engine.connect() as conn:
            return set((await conn.execute(query)).scalars())

    def _stored_info(self, sha256: str) -> TrackInfo | None:
        try:
            with self.store.open(sha256) as handle:
                header, _ = chunkfile.decode_header(handle.read(chunkfile.MAX_HEADER + 12))
            return info_from_header(header)
        except (StoreError, chunkfile.ChunkFormatError, KeyError, ValueError) as exc:
            logger.error("stored chunk %s unreadable: %s", sha256, exc)
            return None

    async def close(self) -> None:
        while self._tasks:
            await asyncio.gather(*tuple(self._tasks), return_exceptions=True)
        await self.pool.close()


class SessionRecording:
    def __init__(
        self,
        recorder: Recorder,
        session_id: str,
        case_no: str,
        case_id: int,
        on_failure: FailureCallback,
    ) -> None:
        self.recorder = recorder
        self.session_id = session_id
        self.case_no = case_no
        self.case_id = case_id
        self._on_failure = on_failure
        self.captures: list[TrackCapture] = []
        self._ended: dict[tuple[str, str], tuple[str, float]] = {}
        """(participant, source) → (track, last arrival) of the instance that ended."""
        self._jobs: asyncio.Queue[Callable[[], Awaitable[None]] | None] = asyncio.Queue()
        self._worker = asyncio.create_task(self._run_jobs())
        self._flusher = asyncio.create_task(self._flush())
        self.chunks: list[str] = []
        """Hashes of the chunks stored so far."""
        self._conversions: set[asyncio.Task[None]] = set()

    def capture(
        self,
        participant: str,
        source: str,
        kind: str,
        codec: str,
        request_keyframe: Callable[[], None],
        sender_report: Callable[[], tuple[int, int] | None],
    ) -> TrackCapture:
        """A capture for a newly published track instance (attach it as a sink)."""
        info = TrackInfo(
            session=self.session_id,
            case_no=self.case_no,
            case_id=self.case_id,
            participant=participant,
            source=source,
            kind=kind,
            codec=codec.lower(),
            track=f"{participant}/{source}/{int(time.time() * 1000)}",
        )
        capture = TrackCapture(
            info,
            self.recorder.incoming,
            self.recorder.chunk_seconds,
            on_chunk=self._chunk,
            on_event=lambda kind, detail: self._event(info, kind, detail),
            on_failure=lambda code, detail: self._failed(info, code, detail),
            request_keyframe=request_keyframe,
            sender_report=sender_report,
        )
        self.captures = [c for c in self.captures if not c.done]
        self.captures.append(capture)
        return capture

    def _queue(self, job: Callable[[], Awaitable[None]]) -> None:
        self._jobs.put_nowait(job)

    def _event(self, info: TrackInfo, kind: str, detail: dict[str, Any]) -> None:
        key = (info.participant, info.source)
        if kind == "track_started" and key in self._ended:
            previous, last = self._ended.pop(key)
            first = float(detail["first_arrival"])
            self._queue(
                lambda: self.recorder.log(
                    info,
                    "recording_gap",
                    reason="reconnect",
                    previous_track=previous,
                    **{"from": last, "to": first, "seconds": round(first - last, 3)},
                )
            )
        if kind == "track_ended" and detail.get("last_arrival") is not None:
            self._ended[key] = (info.track, float(detail["last_arrival"]))
        self._queue(lambda: self.recorder.log(info, kind, **detail))

    def _chunk(self, chunk: ClosedChunk) -> None:
        self._queue(lambda: self._keep(chunk))

    async def _keep(self, chunk: ClosedChunk) -> None:
        meta, seconds = chunk.meta, chunk.seconds
        try:
            if chunk.partial:
                trimmed = await asyncio.to_thread(trim, chunk.path)
                if trimmed is None:
                    return
                meta, seconds = {**trimmed.meta, "partial": True}, trimmed.seconds
            sha256, conversion = await self.recorder.keep_chunk(
                chunk.info, chunk.path, meta, seconds, "chunk_closed"
            )
        except (OSError, StoreError, SQLAlchemyError) as exc:
            code = exc.code if isinstance(exc, StoreError) else "store_failed"
            logger.error("chunk %s of %s not stored: %s", chunk.index, chunk.info.track, exc)
            await self.recorder.log(
                chunk.info, "recording_failed", code=code, chunk=chunk.index, detail=str(exc)
            )
            self._on_failure(code)
            return
        self.chunks.append(sha256)
        self._conversions.add(conversion)
        conversion.add_done_callback(self._conversions.discard)

    def _failed(self, info: TrackInfo, code: str, detail: str) -> None:
        self._queue(lambda: self.recorder.log(info, "recording_failed", code=code, detail=detail))
        self._on_failure(code)

    async def _run_jobs(self) -> None:
        while (job := await self._jobs.get()) is not None:
            try:
                await job()
            except Exception:
                logger.exception("recording job of session %s failed", self.session_id)

    async def _flush(self) -> None:
        """Write each open chunk's buffer at least every second, also for a track whose
        packets stopped."""
        while True:
            await asyncio.sleep(FLUSH_SECONDS / 2)
            now = time.time()
            for capture in self.captures:
                capture.flush(now)

    async def close(self) -> None:
        """End every capture (the last chunks close), store the chunks, log, and wait
        for their conversions."""
        self._flusher.cancel()
        await asyncio.gather(self._flusher, return_exceptions=True)
        for capture in self.captures:
            capture.ended()
        self._jobs.put_nowait(None)
        await self._worker
        await asyncio.gather(*tuple(self._conversions), return_exceptions=True)
