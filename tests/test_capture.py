"""The capture writer (recorder/capture.py), the chunk format and trimming, on real
VP8 and Opus payloads from aiortc's encoders."""

from __future__ import annotations

import errno
import io
from pathlib import Path
from typing import Any, BinaryIO

import pytest

from recorder import chunkfile
from recorder.capture import ClosedChunk, TrackCapture, TrackInfo
from recorder.recovery import open_chunks, trim
from tests.rtp_source import Packet, audio_packets, video_packets

T0 = 1_700_000_000.0


class Sink:
    """What a capture reports."""

    def __init__(self) -> None:
        self.chunks: list[ClosedChunk] = []
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.failures: list[str] = []
        self.keyframe_requests = 0

    def capture(self, tmp_path: Path, kind: str = "video", codec: str = "video/vp8", **kw: Any):
        info = TrackInfo("s-1", "GX-1", 1, "chuangkou", "document", kind, codec, "t/1")
        return TrackCapture(
            info,
            tmp_path,
            kw.pop("chunk_seconds", 2.0),
            on_chunk=self.chunks.append,
            on_event=lambda k, d: self.events.append((k, d)),
            on_failure=lambda code, _detail: self.failures.append(code),
            request_keyframe=self.ask,
            **kw,
        )

    def ask(self) -> None:
        self.keyframe_requests += 1


def feed(capture: TrackCapture, packets: list[tuple[int, Packet]], fps: int = 15) -> None:
    for counter, packet in packets:
        capture.packet(packet, T0 + counter / fps)


def test_chunk_format_round_trip():
    """Header and records read back as written; a torn last record is not a record."""
    header = chunkfile.encode_header({"codec": "video/vp8", "track": "a/b/1"})
    records = [
        chunkfile.encode_record(T0_US + n, 65535 + n & 0xFFFF, 90 * n, n % 2, 97, 7, bytes([n]) * n)
        for n in range(5)
    ]
    data = header + b"".join(records)
    chunk = chunkfile.decode(data)
    assert chunk.header["codec"] == "video/vp8" and chunk.header["version"] == 1
    assert [r.sequence_number for r in chunk.records] == [65535, 0, 1, 2, 3]
    assert [r.payload for r in chunk.records] == [bytes([n]) * n for n in range(5)]
    assert chunk.records[1].marker == 1 and chunk.records[1].payload_type == 97
    assert chunk.length == len(data)
    torn = chunkfile.decode(data[:-2])
    assert len(torn.records) == 4 and torn.length == len(data) - len(records[-1])
    with pytest.raises(chunkfile.ChunkFormatError):
        chunkfile.decode(b"not a chunk at all")


T0_US = int(T0 * 1_000_000)


def test_video_chunk_is_cut_at_the_keyframe_asked_for(tmp_path):
    """After chunk_seconds the capture asks for a keyframe (again each second) and cuts
    when one arrives: every chunk starts on a keyframe, nothing is lost in between."""
    sink = Sink()
    capture = sink.capture(tmp_path)
    packets = video_packets("video/vp8", 75, keyframes=(0, 50))
    feed(capture, packets)
    capture.ended()
    assert sink.keyframe_requests == 2  # at 2 s and again at 3 s; the keyframe came later
    assert [c.index for c in sink.chunks] == [0, 1]
    first, second = (chunkfile.decode(c.path.read_bytes()) for c in sink.chunks)
    assert len(first.records) + len(second.records) == len(packets)
    assert second.records[0].payload == next(p for c, p in packets if c == 50).payload
    for chunk in sink.chunks:
        assert chunk.meta["starts_on_keyframe"] and chunk.meta["keyframes"] == 1
        assert chunk.meta["lost"] == 0 and (chunk.meta["width"], chunk.meta["height"]) == (
            640,
            480,
        )
    assert sink.chunks[0].meta["frames"] == 50 and sink.chunks[1].meta["frames"] == 25
    assert [k for k, _ in sink.events] == ["track_started", "track_ended"]


def test_audio_is_cut_on_time(tmp_path):
    """Audio has no keyframes: a chunk closes at the first packet after chunk_seconds."""
    sink = Sink()
    capture = sink.capture(tmp_path, kind="audio", codec="audio/opus", chunk_seconds=1.0)
    for n, packet in enumerate(audio_packets(120)):
        capture.packet(packet, T0 + n * 0.02)
    capture.ended()
    assert [c.meta["packets"] for c in sink.chunks] == [50, 50, 20]
    assert sink.keyframe_requests == 0
    assert sink.chunks[0].meta["clock_rate"] == 48_000
    assert abs(sink.chunks[0].seconds - 0.98) < 1e-6


def test_lost_packets_outages_and_resolution_changes_are_counted(tmp_path):
    """Sequence gaps never filled are counted and listed, a retransmission fills its
    gap, a second without packets is a logged outage, a new size is a change."""
    sink = Sink()
    capture = sink.capture(tmp_path, chunk_seconds=60)
    small = video_packets("video/vp8", 30, size=(640, 480))
    large = video_packets(
        "video/vp8", 30, size=(1280, 720), seq=small[-1][1].sequence_number + 1, start_counter=30
    )
    packets = small + large
    dropped = {5, 6, 20}
    late = packets[10]
    for index, (counter, packet) in enumerate(packets):
        if index in dropped or index == 10:
            continue
        if index == 12:
            capture.packet(late[1], T0 + 11.5 / 15)  # a retransmission, late
        gap = 1.5 if counter >= 40 else 0.0
        capture.packet(packet, T0 + counter / 15 + gap)
    capture.ended()
    meta = sink.chunks[0].meta
    lost = sorted(packets[i][1].sequence_number for i in dropped)
    assert meta["lost"] == 3
    assert meta["lost_ranges"] == [[lost[0], lost[1]], [lost[2], lost[2]]]
    assert len(meta["outages"]) == 1 and 1.5 < meta["outages"][0]["seconds"] < 1.6
    outage = [d for k, d in sink.events if k == "recording_gap"]
    assert len(outage) == 1 and outage[0]["reason"] == "outage"
    assert (meta["width"], meta["height"]) == (640, 480)
    assert [(c["width"], c["height"]) for c in meta["resolution_changes"]] == [(1280, 720)]


def test_open_chunk_reaches_its_file_every_second(tmp_path):
    """While a chunk is open its packets are written at least every second (no fsync):
    a crash loses at most the last second."""
    sink = Sink()
    capture = sink.capture(tmp_path, chunk_seconds=60)
    packets = video_packets("video/vp8", 32)
    feed(capture, packets[:17])  # up to 1.07 s after the first
    (path,) = open_chunks(tmp_path)
    on_disk = chunkfile.decode(path.read_bytes())
    assert on_disk.header["track"] == "t/1" and on_disk.header["chunk"] == 0
    assert len(on_disk.records) >= 15
    capture.ended()


class FullDisk(io.RawIOBase):
    """A file whose disk fills after ``room`` bytes: short write, then ENOSPC."""

    def __init__(self, path: Path, room: int) -> None:
        self.file = path.open("xb", buffering=0)
        self.room = room

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        data = bytes(data)
        if self.room <= 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        part = data[: self.room]
        self.room -= len(part)
        return self.file.write(part) or 0

    def close(self) -> None:
        self.file.close()
        super().close()


def test_full_disk_stops_the_capture_and_keeps_what_was_written(tmp_path):
    """ENOSPC while writing: the capture stops quietly (no exception into forwarding),
    reports disk_full, keeps its closed chunks and hands on the open one, which trims
    to its last whole record."""
    sink = Sink()
    opened: list[FullDisk] = []

    def opener(path: Path) -> BinaryIO:
        room = 10_000_000 if not opened else 3_000  # the second chunk fills the disk
        opened.append(FullDisk(path, room))
        return opened[-1]  # type: ignore[return-value]

    capture = sink.capture(tmp_path, opener=opener)
    packets = video_packets("video/vp8", 90, keyframes=(0, 30, 60))
    feed(capture, packets)  # no exception
    capture.ended()
    assert sink.failures == ["disk_full"]
    assert capture.failed
    closed, partial = sink.chunks
    assert not closed.partial and chunkfile.decode(closed.path.read_bytes()).records
    assert partial.partial
    trimmed = trim(partial.path)
    assert trimmed is not None and 0 < trimmed.meta["packets"] < 31
    assert (
        trimmed.meta["first_seq"] == packets[[c for c, _ in packets].index(30)][1].sequence_number
    )
    assert len(partial.path.read_bytes()) <= 3_000


def test_trim_cuts_a_torn_tail_and_removes_empty_files(tmp_path):
    """A chunk cut mid-record (a crash) keeps every whole record before the tear; a file
    with a header but no packet, or no header, is removed."""
    sink = Sink()
    capture = sink.capture(tmp_path, chunk_seconds=60)
    feed(capture, video_packets("video/vp8", 20))
    capture.ended()  # closed as a crash would leave it: then a torn record is added
    (path,) = open_chunks(tmp_path)
    whole = chunkfile.decode(path.read_bytes())
    with path.open("ab") as handle:
        handle.write(chunkfile.encode_record(T0_US, 1, 2, 0, 97, 7, b"x" * 100)[:40])
    trimmed = trim(path)
    assert trimmed is not None and trimmed.cut_bytes == 40
    assert trimmed.meta["packets"] == len(whole.records)
    assert path.stat().st_size == whole.length
    assert trimmed.info.track == "t/1" and trimmed.info.case_no == "GX-1"
    empty = tmp_path / f"e{chunkfile.SUFFIX}"
    empty.write_bytes(chunkfile.encode_header({"session": "s"}))
    assert trim(empty) is None and not empty.exists()


def test_an_audio_outage_that_ends_at_a_cut_is_logged(tmp_path):
    """A 30 s audio outage ends with the packet that cuts the chunk: it is still a
    logged recording_gap and a gap in the new chunk's meta."""
    sink = Sink()
    capture = sink.capture(tmp_path, kind="audio", codec="audio/opus", chunk_seconds=10.0)
    for n, packet in enumerate(audio_packets(100)):
        capture.packet(packet, T0 + n * 0.02 + (30.0 if n >= 50 else 0.0))
    capture.ended()
    gaps = [d for k, d in sink.events if k == "recording_gap"]
    assert len(gaps) == 1 and gaps[0]["reason"] == "outage" and 30 < gaps[0]["seconds"] < 30.1
    assert [c.meta["packets"] for c in sink.chunks] == [50, 50]
    (outage,) = sink.chunks[1].meta["gaps"]
    assert outage["reason"] == "outage" and outage["from"] == T0 + 49 * 0.02
    assert sink.chunks[1].meta["outages"] == [{k: outage[k] for k in ("from", "to", "seconds")}]


def test_packets_lost_at_a_cut_and_a_new_size_are_in_the_next_chunk(tmp_path):
    """The packets lost between a chunk's last packet and the keyframe that cuts are
    counted and listed (with times) in the new chunk; a new size on that keyframe is a
    resolution change there."""
    sink = Sink()
    capture = sink.capture(tmp_path)
    small = video_packets("video/vp8", 40, size=(640, 480))
    large = video_packets(
        "video/vp8", 15, size=(320, 240), seq=small[-1][1].sequence_number + 1, start_counter=40
    )
    packets = small[:-3] + large  # the last 3 packets before the cut are lost
    feed(capture, packets)
    capture.ended()
    assert [c.index for c in sink.chunks] == [0, 1]
    first, second = (c.meta for c in sink.chunks)
    assert first["lost"] == 0 and second["lost"] == 3
    lost_seq = [p.sequence_number for _, p in small[-3:]]
    assert second["lost_ranges"] == [[lost_seq[0], lost_seq[-1]]]
    (gap,) = second["gaps"]
    assert (gap["reason"], gap["first_seq"], gap["last_seq"], gap["packets"]) == (
        "lost",
        lost_seq[0],
        lost_seq[-1],
        3,
    )
    assert gap["from"] == T0 + small[-4][0] / 15 and gap["to"] == T0 + 40 / 15
    assert (second["width"], second["height"]) == (320, 240)
    assert [(c["width"], c["height"]) for c in second["resolution_changes"]] == [(320, 240)]
