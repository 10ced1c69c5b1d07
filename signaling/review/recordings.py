"""Wiring the recorder to live sessions: a capture on every published track, and at
start the recovery of captures a crash left open (their sessions are marked
interrupted, 中断)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from sqlalchemy.ext.asyncio import AsyncEngine

from media.forwarder import PublishedTrack
from recorder.auditlog import AuditLog
from recorder.clock import Clock
from recorder.recording import Recorder, SessionRecording
from recorder.store import EvidenceStore
from recorder.workers import WorkerPool
from signaling.review.run_marker import LastRun
from signaling.review.sessions import Reviews
from signaling.settings import Settings
from signaling.web.errors import NotFound

logger = logging.getLogger(__name__)


@contextlib.asynccontextmanager
async def open_recorder(
    settings: Settings,
    engine: AsyncEngine,
    store: EvidenceStore,
    audit: AuditLog,
    clock: Clock,
    reviews: Reviews,
    last_run: LastRun | None,
) -> AsyncIterator[Recorder]:
    """The node's recorder, after recovering what the last run left open (chunks still
    open, sessions a crash cut, and stored chunks whose conversion did not finish).
    Closing it waits for the chunks being stored and converted."""
    recorder = Recorder(engine, store, audit, clock, WorkerPool(), settings.chunk_seconds)
    try:
        await recorder.convert_pending()  # first: recovered chunks are converted anyway
        await recover(recorder, reviews, clock, last_run)
        yield recorder
    finally:
        await recorder.close()


async def recover(
    recorder: Recorder, reviews: Reviews, clock: Clock, last_run: LastRun | None
) -> None:
    """Keep the chunks left open; mark each session the crash cut interrupted: those
    with open chunks, with the gap from their last recorded packet, and the other live
    sessions the killed run held (``last_run``), from its last beat."""
    since: dict[str, dict[str, float]] = {}
    for chunk in await recorder.recover():
        session = chunk.info.session
        last = since.setdefault(session, {"last_packet_at": 0.0})
        last["last_packet_at"] = max(last["last_packet_at"], float(chunk.meta["last_arrival"]))
    if last_run is not None:
        for session_id in last_run.sessions:
            if session_id not in since and await _live(reviews, session_id):
                since[session_id] = {"last_seen_at": last_run.beat}
    restarted = clock.now().timestamp()
    for session_id, gap_from in since.items():
        try:
            await reviews.mark_interrupted(
                session_id,
                **gap_from,
                restarted_at=restarted,
                gap_seconds=round(restarted - next(iter(gap_from.values())), 3),
            )
        except NotFound:
            logger.error("recovered chunks of unknown session %s", session_id)


async def _live(reviews: Reviews, session_id: str) -> bool:
    try:
        return (await reviews.get(session_id)).state == "live"
    except NotFound:
        return False


def attach(recording: SessionRecording, track: PublishedTrack) -> None:
    """Capture a newly published track: its packets, keyframes on request at each cut,
    and its sender reports (to align tracks)."""
    capture = recording.capture(
        track.participant,
        track.source,
        track.kind,
        track.mime_type,
        request_keyframe=track.request_keyframe,
        sender_report=lambda: track.last_report,
    )
    track.sinks.append(capture)


async def close_quietly(recording: SessionRecording) -> None:
    try:
        await recording.close()
    except asyncio.CancelledError:
        raise
    except Exception:
        logger.exception("closing the recording of %s failed", recording.session_id)
