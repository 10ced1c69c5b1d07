"""Wiring the recorder to live sessions: a capture on every published track, and at
start the recovery of captures a crash left open (their sessions are marked
interrupted, 中断)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from media.forwarder import PublishedTrack
from recorder.auditlog import AuditLog
from recorder.clock import Clock
from recorder.recording import Recorder, SessionRecording
from recorder.store import EvidenceStore
from recorder.workers import WorkerPool
from signaling.errors import NotFound
from signaling.reviews import Reviews
from signaling.settings import Settings

logger = logging.getLogger(__name__)


@contextlib.asynccontextmanager
async def open_recorder(
    settings: Settings,
    engine: AsyncEngine,
    store: EvidenceStore,
    audit: AuditLog,
    clock: Clock,
    reviews: Reviews,
) -> AsyncIterator[Recorder]:
    """The node's recorder, after recovering what the last run left open (chunks still
    open, and stored chunks whose conversion did not finish). Closing it waits for the
    chunks being stored and converted."""
    recorder = Recorder(engine, store, audit, clock, WorkerPool(), settings.chunk_seconds)
    try:
        await recorder.convert_pending()  # first: recovered chunks are converted anyway
        await recover(recorder, reviews, clock)
        yield recorder
    finally:
        await recorder.close()


async def recover(recorder: Recorder, reviews: Reviews, clock: Clock) -> None:
    """Keep the chunks left open; mark each of their sessions interrupted, with the gap
    from its last recorded packet to this start."""
    last: dict[str, float] = {}
    for chunk in await recorder.recover():
        session = chunk.info.session
        last[session] = max(last.get(session, 0.0), float(chunk.meta["last_arrival"]))
    restarted = clock.now().timestamp()
    for session_id, last_packet in last.items():
        try:
            await reviews.mark_interrupted(
                session_id,
                last_packet_at=last_packet,
                restarted_at=restarted,
                gap_seconds=round(restarted - last_packet, 3),
            )
        except NotFound:
            logger.error("recovered chunks of unknown session %s", session_id)


def attach(
    recording: SessionRecording,
    track: PublishedTrack,
    spawn: Callable[[Coroutine[Any, Any, None]], None],
) -> None:
    """Capture a newly published track: its packets, keyframes on request at each cut,
    and its sender reports (to align tracks)."""
    capture = recording.capture(
        track.participant,
        track.source,
        track.kind,
        track.mime_type,
        request_keyframe=lambda: spawn(track.request_keyframe()),
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
