"""A session's recording laid out on one timeline for playback (the auditor's playback
page and ``GET /api/v1/cases/{case_no}/sessions/{session_id}/playback``).

Times are seconds from the session's origin, the earliest recorded media. Each track
instance is placed by its RTP timestamps: with the publisher's RTCP sender report, a
timestamp maps to the sender's clock, and one offset per participant (the smallest
arrival-minus-send of its tracks) takes that to the server's clock, so one person's
voice and pictures keep their lip-sync and different people line up by arrival.
Without a sender report a track is anchored at its first packet's arrival. Within an
instance RTP time is continuous, so its chunks abut exactly (docs/design.md,
"Playback").
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Row

from recorder.auditlog import AuditEvent
from recorder.integrity import tombstones
from recorder.rtpnumbers import rtp_since
from signaling.custody.evidence import recordings

Place = Callable[[int], float]
"""An RTP timestamp of a track → seconds (the server's clock, or the timeline's)."""
MAX_CLOCK_SKEW = 1.0
"""A track whose send-to-arrival offset differs more from its participant's is placed
by arrival (a reconnect from another device, a bogus sender report)."""
MIME_TYPES = {
    "video/vp8": 'video/webm; codecs="vp8"',
    "audio/opus": 'audio/webm; codecs="opus"',
    "video/h264": 'video/x-matroska; codecs="avc1.42E01F"',
}
HIDDEN_KINDS = frozenset(
    {
        "chunk_closed",
        "chunk_recovered",
        "playable_derived",
        "case_viewed",
        "recording_viewed",
        "evidence_viewed",
    }
)
"""Events of the session left off its timeline: filing details and views of it."""


@dataclass
class Instance:
    """One published track instance: its capture rows (by chunk index) and playables."""

    track: str
    participant: str
    source: str
    captures: list[Row[Any]] = field(default_factory=list)

    @property
    def first(self) -> dict[str, Any]:
        return dict(self.captures[0].meta or {})

    @property
    def clock_rate(self) -> int:
        return int(self.first.get("clock_rate") or 90_000)

    def report(self) -> dict[str, Any] | None:
        """The first sender report any of its chunks saw (one mapping for the whole
        instance, so that its chunks abut)."""
        for row in self.captures:
            report = (row.meta or {}).get("sender_report")
            if report:
                return dict(report)
        return None

    def sent(self, rtp: int) -> float | None:
        report = self.report()
        if report is None:
            return None
        delta = rtp_since(rtp, int(report["rtp_timestamp"]))
        return float(report["ntp_time"]) + delta / self.clock_rate

    def arrived(self, rtp: int) -> float:
        first = self.first
        delta = rtp_since(rtp, int(first["first_rtp_timestamp"]))
        return float(first["first_arrival"]) + delta / self.clock_rate

    def delay(self) -> float | None:
        """Arrival minus send time of its first packet."""
        sent = self.sent(int(self.first["first_rtp_timestamp"]))
        return None if sent is None else float(self.first["first_arrival"]) - sent


def instances(rows: Iterable[Row[Any]]) -> list[Instance]:
    found: dict[str, Instance] = {}
    for row in rows:
        meta = row.meta or {}
        if row.role != "capture" or meta.get("first_rtp_timestamp") is None:
            continue
        key = row.track or row.sha256
        instance = found.setdefault(key, Instance(key, row.participant or "", row.source or ""))
        instance.captures.append(row)
    for instance in found.values():
        instance.captures.sort(key=lambda r: int((r.meta or {}).get("chunk", 0)))
    return list(found.values())


def clock_offsets(tracks: list[Instance]) -> dict[str, float]:
    """Per participant: the smallest send-to-arrival delay of its tracks."""
    offsets: dict[str, float] = {}
    for track in tracks:
        delay = track.delay()
        if delay is not None:
            offsets[track.participant] = min(offsets.get(track.participant, delay), delay)
    return offsets


def placer(track: Instance, offsets: dict[str, float]) -> tuple[str, Place]:
    """How the track's RTP timestamps become server time: ``sender_report`` or
    ``first_arrival``, and the function doing it."""
    delay, offset = track.delay(), offsets.get(track.participant)
    if delay is not None and offset is not None and abs(delay - offset) <= MAX_CLOCK_SKEW:
        return "sender_report", lambda rtp: float(track.sent(rtp) or 0.0) + offset
    return "first_arrival", track.arrived


def _epoch(iso: str) -> float:
    return dt.datetime.fromisoformat(iso).timestamp()


@dataclass(frozen=True)
class Files:
    """What the session's files are: playables by the chunk they came from, purged
    hashes (with their retention dates) and hashes whose file is not in the store."""

    playables: dict[str, Row[Any]]
    purged: dict[str, str]
    missing: frozenset[str]
    failed: frozenset[str]


def _chunk(capture: Row[Any], files: Files, place: Any, rel: Any, frame: float) -> dict[str, Any]:
    meta = capture.meta or {}
    playable = files.playables.get(capture.sha256)
    first_rtp = int(meta["first_rtp_timestamp"])
    if playable is not None and (playable.meta or {}).get("first_rtp_timestamp") is not None:
        first_rtp = int(playable.meta["first_rtp_timestamp"])
    start = place(first_rtp)
    end = place(int(meta.get("last_rtp_timestamp", first_rtp))) + frame
    sha = playable.sha256 if playable is not None else None
    if sha is None:
        status = "failed" if capture.sha256 in files.failed else "not_converted"
    elif sha in files.purged or capture.sha256 in files.purged:
        status = "purged"
    elif sha in files.missing:
        status = "missing"
    else:
        status = "ok"
    chunk: dict[str, Any] = {
        "chunk": int(meta.get("chunk", 0)),
        "sha256": sha,
        "capture_sha256": capture.sha256,
        "start": rel(start),
        "end": rel(max(end, start)),
        "bytes": playable.bytes if playable is not None else None,
        "status": status,
    }
    if status == "purged":
        chunk["retention_until"] = files.purged.get(sha or "") or files.purged[capture.sha256]
    return chunk


def _frame_seconds(track: Instance) -> float:
    """The usual distance between two frames (the last frame's duration)."""
    spans = [
        float(r.seconds or 0) / (int((r.meta or {}).get("frames") or 2) - 1)
        for r in track.captures
        if int((r.meta or {}).get("frames") or 0) > 1
    ]
    return statistics.median(spans) if spans else 0.0


def timeline(
    session_id: str, rows: list[Row[Any]], events: list[AuditEvent], files: Files
) -> dict[str, Any]:
    """The session's tracks (chunks with start/end), gaps, events and stills, in
    seconds from the origin (``origin``, seconds since the epoch; ``duration``)."""
    rows = [r for r in rows if r.session_id == session_id]
    tracks = instances(rows)
    offsets = clock_offsets(tracks)
    placed = {t.track: placer(t, offsets) for t in tracks}
    starts = [placed[t.track][1](int(t.first["first_rtp_timestamp"])) for t in tracks]
    origin = min(starts) if starts else None
    if origin is None:
        own = [e for e in events if e.detail.get("session") == session_id]
        origin = _epoch(own[0].at) if own else 0.0

    def rel(at: float) -> float:
        return round(at - origin, 3)

    gaps = {g["track"]: g["gaps"] for g in recordings(rows, events)}
    laid = []
    for track in tracks:
        method, place = placed[track.track]
        chunks = [_chunk(c, files, place, rel, _frame_seconds(track)) for c in track.captures]
        meta = track.first
        laid.append(
            {
                "track": track.track,
                "participant": track.participant,
                "source": track.source,
                "kind": meta.get("kind") or ("audio" if track.source == "audio" else "video"),
                "codec": meta.get("codec"),
                "mime": MIME_TYPES.get(str(meta.get("codec", "")).lower()),
                "aligned_by": method,
                "start": chunks[0]["start"],
                "end": max(c["end"] for c in chunks),
                "chunks": chunks,
                "gaps": [_gap(g, rel) for g in gaps.get(track.track, []) if _has_span(g)],
            }
        )
    duration = max((t["end"] for t in laid), default=0.0)
    shown = [
        e for e in events if e.detail.get("session") == session_id and e.kind not in HIDDEN_KINDS
    ]
    return {
        "origin": origin,
        "duration": duration,
        "tracks": laid,
        "events": [_event(e, rel) for e in shown],
        "stills": [
            {**_event(e, rel), "purged": e.detail["sha256"] in files.purged}
            for e in shown
            if e.kind in ("still_captured", "snapshot_taken") and e.detail.get("sha256")
        ],
    }


def _has_span(gap: dict[str, Any]) -> bool:
    return isinstance(gap.get("from"), int | float) and isinstance(gap.get("to"), int | float)


def _gap(gap: dict[str, Any], rel: Callable[[float], float]) -> dict[str, Any]:
    found = {
        "reason": gap.get("reason"),
        "start": rel(float(gap["from"])),
        "end": rel(float(gap["to"])),
        "seconds": gap.get("seconds"),
    }
    if gap.get("reason") == "lost":
        found["packets"] = gap.get("packets")
    return found


def _event(event: AuditEvent, rel: Callable[[float], float]) -> dict[str, Any]:
    return {
        "seq": event.case_seq,
        "kind": event.kind,
        "actor": event.actor,
        "at": event.at,
        "t": rel(_epoch(event.at)),
        "detail": event.detail,
    }


def purged_files(events: list[AuditEvent]) -> dict[str, str]:
    """sha256 → retention date, from the case's ``evidence_purged`` tombstones."""
    return {sha: str(e.detail.get("retention_until", "")) for sha, e in tombstones(events).items()}
