"""The playback timeline (signaling/custody/playback.py) from rows and events alone: tracks
aligned by sender reports or arrival, chunks of a track abutting across an RTP
timestamp wrap, file states (purged, missing, not converted) and session-relative
events."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace
from typing import Any

from recorder.auditlog import AuditEvent
from recorder.rtpnumbers import rtp_since
from signaling.custody.playback import Files, purged_files, timeline

T0 = 1_800_000_000.0
SESSION = "s-1"


def capture(
    sha: str, track: str, chunk: int, first_rtp: int, frames: int, arrival: float, **meta: Any
) -> SimpleNamespace:
    """A capture row: video at 90 kHz and 15 fps, audio at 48 kHz and 50 packets/s."""
    audio = "/audio/" in track
    rate, step = (48_000, 960) if audio else (90_000, 6000)
    participant, source = track.split("/")[:2]
    return SimpleNamespace(
        role="capture",
        sha256=sha,
        session_id=SESSION,
        track=track,
        participant=participant,
        source=source,
        seconds=(frames - 1) * step / rate,
        bytes=5000,
        derived_from=None,
        created_at=dt.datetime.fromtimestamp(arrival, dt.UTC),
        meta={
            "chunk": chunk,
            "codec": "audio/opus" if audio else "video/vp8",
            "kind": "audio" if audio else "video",
            "clock_rate": rate,
            "frames": frames,
            "first_rtp_timestamp": first_rtp % 2**32,
            "last_rtp_timestamp": (first_rtp + (frames - 1) * step) % 2**32,
            "first_arrival": arrival,
            "gaps": [],
            **meta,
        },
    )


def playable(sha: str, of: SimpleNamespace) -> SimpleNamespace:
    return SimpleNamespace(
        role="playable",
        sha256=sha,
        session_id=SESSION,
        track=of.track,
        participant=of.participant,
        source=of.source,
        derived_from=of.sha256,
        bytes=1000,
        seconds=of.seconds,
        created_at=of.created_at,
        meta={"first_rtp_timestamp": of.meta["first_rtp_timestamp"]},
    )


def event(seq: int, kind: str, at: float, **detail: Any) -> AuditEvent:
    when = dt.datetime.fromtimestamp(at, dt.UTC).isoformat()
    return AuditEvent(seq, "case:X", seq, when, kind, "u", detail, "0" * 64, "0" * 64)


def test_rtp_differences_cross_the_wrap() -> None:
    """A timestamp just past 2^32 is later than one just before it."""
    assert rtp_since(10, 2**32 - 10) == 20
    assert rtp_since(2**32 - 10, 10) == -20


def test_tracks_are_aligned_by_sender_reports_and_arrival() -> None:
    """One participant's voice and pictures keep the sender's timing (a keyframe that
    arrives 80 ms late is not shifted); a track without a sender report is placed by
    its arrival; a track's chunks abut across an RTP wrap; files that were purged,
    are missing or not converted say so; events get session-relative times."""
    report_v = {"ntp_time": T0, "rtp_timestamp": 2**32 - 45_000}  # video sent at T0
    report_a = {"ntp_time": T0, "rtp_timestamp": 1000}
    video0 = capture("v0", "a/face/1", 0, 2**32 - 45_000, 15, T0 + 0.100, sender_report=report_v)
    video1 = capture("v1", "a/face/1", 1, 2**32 - 45_000 + 90_000, 15, T0 + 1.1)
    voice = capture("a0", "a/audio/1", 0, 1000, 50, T0 + 0.020, sender_report=report_a)
    other = capture("b0", "b/face/1", 0, 7, 15, T0 + 0.5)
    rows = [video0, video1, voice, other]
    rows += [playable("pv0", video0), playable("pv1", video1), playable("pa0", voice)]
    events = [
        event(1, "chat", T0 + 0.52, session=SESSION, text="你好"),
        event(2, "chunk_closed", T0 + 1, session=SESSION),
        event(
            3,
            "evidence_purged",
            T0 + 99,
            session=SESSION,
            sha256="pv1",
            retention_until="2030-01-01",
        ),
        event(4, "chat", T0 + 2, session="another"),
    ]
    files = Files(
        {r.derived_from: r for r in rows if r.role == "playable"},
        purged_files(events),
        frozenset({"pa0"}),
        frozenset(),
    )
    laid = timeline(SESSION, rows, events, files)  # type: ignore[arg-type]
    assert laid["origin"] == T0 + 0.020  # the voice: sent at T0, arrived 20 ms later
    tracks = {t["track"]: t for t in laid["tracks"]}
    face, audio, b = tracks["a/face/1"], tracks["a/audio/1"], tracks["b/face/1"]
    assert (face["aligned_by"], b["aligned_by"]) == ("sender_report", "first_arrival")
    assert face["start"] == 0.0 and audio["start"] == 0.0  # in sync, not 80 ms apart
    first, second = face["chunks"]
    assert (first["end"], second["start"]) == (1.0, 1.0)  # abutting across the wrap
    assert (first["status"], second["status"]) == ("ok", "purged")
    assert second["retention_until"] == "2030-01-01"
    assert audio["chunks"][0]["status"] == "missing"
    assert b["start"] == 0.48 and b["chunks"][0]["status"] == "not_converted"
    assert face["mime"] == 'video/webm; codecs="vp8"'
    assert [(e["kind"], e["t"]) for e in laid["events"]] == [
        ("chat", 0.5),
        ("evidence_purged", 98.98),
    ]
    assert laid["duration"] == face["end"] == 2.0
