"""The relay benchmarks' receiving probe (bench/probe.py) on hand-made packets."""

from __future__ import annotations

import time

from bench.common import Source
from bench.probe import TrackProbe
from media.rtpread import RtpView


def packet(seq: int, payload: bytes, marker: int = 1, timestamp: int = 3000) -> RtpView:
    return RtpView(96, marker, seq, timestamp, 1111, payload)


def test_a_duplicate_packet_neither_completes_a_frame_twice_nor_moves_its_arrival():
    """A retransmission of a packet arriving after its original (RTX answered late):
    the frame is counted once, and its packets keep their first arrival times."""
    frames = [b"\x00" + bytes(9), b"\x01" + bytes(9)]  # a keyframe, then a delta frame
    source = Source("document", "video", frames, 1 / 15, 90_000)
    source.handed_at, source.position, source._by_position = [time.monotonic()], [0], {0: [0]}
    probe = TrackProbe(source)
    first = packet(1, b"\x10" + frames[0][:5], marker=0)
    probe._on_packet(first)
    first_seen = time.monotonic()
    time.sleep(0.01)  # ok-sleep: a later arrival time
    probe._on_packet(first)  # a duplicate before the frame completes
    probe._on_packet(packet(2, b"\x00" + frames[0][5:]))
    probe._on_packet(packet(2, b"\x00" + frames[0][5:]))  # one after it did
    probe._on_packet(first)
    assert [f.index for f in probe.frames] == [0]
    [arrival] = probe.frames
    assert arrival.packets[0] < first_seen < arrival.packets[1] <= arrival.at
