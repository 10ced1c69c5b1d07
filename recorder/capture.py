"""The capture writer: every RTP packet one published track instance receives, with its
arrival time, into chunk files (recorder/chunkfile.py) of about ``chunk_seconds``.

A ``TrackCapture`` is a packet sink beside forwarding (it satisfies media's
``PacketSink`` by shape; the recorder imports nothing of media). It runs on the event
loop, so per packet it only appends a record to a buffer; the buffer is written to the
open chunk's file in ``incoming/`` at least every ``FLUSH_SECONDS`` (a plain write, no
fsync). A video chunk is cut on a keyframe: at the cut time the capture asks the
publisher for one and cuts when it arrives; audio cuts on time. A closed chunk goes to
``on_chunk``, which fsyncs, hashes and stores it off the loop. A write that fails (a full
disk) stops this capture, never forwarding: ``on_failure`` is told, the chunk written so
far is handed on to be trimmed at its last whole record and kept.
"""

from __future__ import annotations

import errno
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from recorder import chunkfile
from recorder.chunkstats import OUTAGE_SECONDS, ChunkStats
from recorder.rtpcodecs import CLOCK_RATES

logger = logging.getLogger(__name__)

FLUSH_SECONDS = 1.0
"""The open chunk's buffer reaches its file at least this often (while packets come;
the session's flush timer covers a track that went quiet)."""
KEYFRAME_RETRY_SECONDS = 1.0
"""While a cut waits for a keyframe, ask again this often."""
NTP_EPOCH_OFFSET = 2_208_988_800


class RtpLike(Protocol):
    """The fields of an RTP packet the capture keeps (aiortc's ``RtpPacket`` has them)."""

    sequence_number: int
    timestamp: int
    marker: int
    payload_type: int
    ssrc: int

    @property
    def payload(self) -> bytes: ...


@dataclass(frozen=True)
class TrackInfo:
    """Who and what one captured track instance is."""

    session: str
    case_no: str
    case_id: int
    participant: str
    source: str
    kind: str
    codec: str
    track: str
    """Unique id of this instance, e.g. ``chuangkou/document/1760000000123``."""


@dataclass(frozen=True)
class ClosedChunk:
    info: TrackInfo
    path: Path
    index: int
    meta: dict[str, Any]
    """What ``ChunkStats.meta`` counted, plus the sender report mapping."""
    seconds: float
    partial: bool = False
    """Writing failed: trim the file at its last whole record and count it again."""


def ntp_to_unix(ntp: int) -> float:
    return (ntp >> 32) - NTP_EPOCH_OFFSET + (ntp & 0xFFFFFFFF) / 2**32


def open_chunk_file(path: Path) -> BinaryIO:
    return path.open("xb", buffering=0)


def write_all(file: BinaryIO, data: bytes) -> None:
    """An unbuffered write may be short (a disk filling up): write the rest, or fail."""
    view = memoryview(data)
    while view:
        written = file.write(view)
        if not written:
            raise OSError(errno.ENOSPC, "short write")
        view = view[written:]


class TrackCapture:
    def __init__(
        self,
        info: TrackInfo,
        directory: Path,
        chunk_seconds: float,
        *,
        on_chunk: Callable[[ClosedChunk], None],
        on_event: Callable[[str, dict[str, Any]], None],
        on_failure: Callable[[str, str], None],
        request_keyframe: Callable[[], None] = lambda: None,
        sender_report: Callable[[], tuple[int, int] | None] = lambda: None,
        opener: Callable[[Path], BinaryIO] = open_chunk_file,
    ) -> None:
        self.info = info
        self.clock_rate = CLOCK_RATES.get(info.codec.lower(), 90_000)
        self._directory = directory
        self._chunk_seconds = chunk_seconds
        self._on_chunk = on_chunk
        self._on_event = on_event
        self._on_failure = on_failure
        self._request_keyframe = request_keyframe
        self._sender_report = sender_report
        self._opener = opener
        self._file: BinaryIO | None = None
        self._path: Path | None = None
        self._buffer = bytearray()
        self._stats = ChunkStats(info.codec, info.kind)
        self._index = -1
        self._opened_at = 0.0
        self._flushed_at = 0.0
        self._asked_at: float | None = None
        self.first_arrival: float | None = None
        self.last_arrival: float | None = None
        self.failed = False
        self._ended = False

    @property
    def done(self) -> bool:
        """Ended, or stopped by a failed write."""
        return self._ended or self.failed

    # -- the sink ------------------------------------------------------------------------

    def packet(self, packet: RtpLike, arrival: float) -> None:
        if self.failed or self._ended:
            return
        try:
            self._packet(packet, arrival)
        except OSError as exc:
            self._fail(exc)
        except Exception:  # a sink must never break forwarding
            logger.exception("capture of %s failed", self.info.track)
            self._fail(OSError(errno.EIO, "capture failed"))

    def ended(self) -> None:
        if self._ended:
            return
        self._ended = True
        if not self.failed and self._file is not None:
            try:
                self._close_chunk()
            except OSError as exc:
                self._fail(exc)
        if self.first_arrival is not None:
            self._on_event(
                "track_ended",
                {"first_arrival": self.first_arrival, "last_arrival": self.last_arrival},
            )

    # -- writing -------------------------------------------------------------------------

    def _packet(self, packet: RtpLike, arrival: float) -> None:
        payload = packet.payload
        seq = packet.sequence_number
        if self._file is None:
            self.first_arrival = arrival
            self._on_event("track_started", {"first_arrival": arrival, "codec": self.info.codec})
            self._open(arrival)
        elif arrival - self._opened_at >= self._chunk_seconds and self._stats.is_fresh(seq):
            if self.info.kind != "video" or self._stats.is_keyframe(payload):
                self._close_chunk()
                self._open(arrival)
            elif self._asked_at is None or arrival - self._asked_at >= KEYFRAME_RETRY_SECONDS:
                self._asked_at = arrival
                try:
                    self._request_keyframe()
                except Exception:  # the media plane's failure, never the recording's
                    logger.exception("%s: a keyframe request failed", self.info.track)
        self._buffer += chunkfile.encode_record(
            int(arrival * 1_000_000),
            seq,
            packet.timestamp,
            packet.marker,
            packet.payload_type,
            packet.ssrc,
            payload,
        )
        gap = self._stats.add(seq, packet.timestamp, packet.marker, payload, arrival)
        if gap > OUTAGE_SECONDS:
            self._on_event(
                "recording_gap",
                {
                    "reason": "outage",
                    "from": self.last_arrival,
                    "to": arrival,
                    "seconds": round(gap, 3),
                },
            )
        self.last_arrival = arrival
        if arrival - self._flushed_at >= FLUSH_SECONDS:
            self.flush(arrival)

    def _open(self, arrival: float) -> None:
        self._index += 1
        self._opened_at = self._flushed_at = arrival
        self._asked_at = None
        self._stats = ChunkStats(self.info.codec, self.info.kind, self._stats.continuity())
        name = f"{self.info.session}.{secrets.token_hex(6)}.{self._index}{chunkfile.SUFFIX}"
        self._path = self._directory / name
        self._file = self._opener(self._path)
        header = {
            "format": "coreview-capture",
            "codec": self.info.codec,
            "clock_rate": self.clock_rate,
            "kind": self.info.kind,
            "participant": self.info.participant,
            "source": self.info.source,
            "session": self.info.session,
            "case": self.info.case_no,
            "case_id": self.info.case_id,
            "track": self.info.track,
            "chunk": self._index,
            "opened_at": arrival,
        }
        write_all(self._file, chunkfile.encode_header(header))

    def flush(self, now: float | None = None) -> None:
        """Write what is buffered to the open chunk's file."""
        if self._file is None or self.failed or not self._buffer:
            return
        try:
            write_all(self._file, bytes(self._buffer))
        except OSError as exc:
            self._fail(exc)
            return
        self._buffer.clear()
        self._flushed_at = time.time() if now is None else now

    def _close_chunk(self) -> None:
        file, path = self._file, self._path
        if file is None or path is None:
            return
        if self._buffer:
            write_all(file, bytes(self._buffer))
            self._buffer.clear()
        file.close()
        self._file = self._path = None
        self._on_chunk(
            ClosedChunk(
                self.info,
                path,
                self._index,
                self._meta(),
                self._stats.seconds(self.clock_rate),
            )
        )

    def _meta(self) -> dict[str, Any]:
        meta = self._stats.meta(self.clock_rate)
        report = self._sender_report()
        meta["sender_report"] = (
            {"ntp_time": ntp_to_unix(report[0]), "rtp_timestamp": report[1]} if report else None
        )
        meta["chunk"] = self._index
        return meta

    def _fail(self, exc: OSError) -> None:
        """Stop capturing this track; keep what reached the disk."""
        self.failed = True
        code = "disk_full" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else "write_failed"
        logger.error("capture of %s stopped: %s", self.info.track, exc)
        file, path = self._file, self._path
        self._file = self._path = None
        self._buffer.clear()
        if file is not None:
            try:
                file.close()
            except OSError:
                logger.warning("closing %s after a failed write failed too", path)
        self._on_failure(code, str(exc))
        if path is not None and path.exists():
            self._on_chunk(ClosedChunk(self.info, path, self._index, {}, 0.0, partial=True))
