"""The receiving end of the relay benchmarks: a track's RTP packets, taken where they
arrive (``hooks.tap_receiver``: no jitter buffer, no decoder), depacketised into VP8
frames and matched to the source's hand-over by their bytes.

A frame arrives when its last missing packet does (on loopback: the marker packet), as
the Janus harness of bench/vs_janus.sh measures. Frames of a path that re-encodes
(MediaRelay) cannot match by bytes: with ``decode`` they are decoded and matched by
the stamped counter instead. Either way the first frames from a keyframe on are kept,
and ``verify()`` decodes them with PyAV afterwards to show the bytes were a valid
stream carrying the expected counters."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import av
from aiortc import RTCRtpReceiver

from bench.common import Source, luma_counter
from media import hooks
from media.rtpread import RtpView
from recorder.rtpcodecs import vp8_descriptor_size

SAMPLE_FRAMES = 30
"""Frames kept per video track, from the first keyframe on, for ``verify()``."""
PENDING_LIMIT = 64
"""Incomplete frames kept per track (older ones count as lost)."""


@dataclass
class Arrival:
    index: int
    """Index of the source's hand-over this frame is."""
    at: float
    """When the frame became complete (its last packet arrived)."""
    packets: list[float]
    """Arrival of each of its packets, in sequence order."""


@dataclass
class TrackProbe:
    source: Source
    decode: bool = False
    created_at: float = field(default_factory=time.monotonic)
    first_at: float | None = None
    frames: list[Arrival] = field(default_factory=list)
    unreadable: int = 0
    packets: int = 0
    sample: list[tuple[int, bytes]] = field(default_factory=list)
    """(cycle position, frame bytes) from the first keyframe on."""
    _pending: dict[int, dict[int, tuple[RtpView, float]]] = field(default_factory=dict)
    _completed: dict[int, None] = field(default_factory=dict)
    """Timestamps of the last frames completed (a late duplicate completes none again)."""
    _decoder: Any = None
    _sample_closed: bool = False

    def attach(self, receiver: RTCRtpReceiver) -> None:
        hooks.tap_receiver(receiver, self._on_packet)

    def _on_packet(self, packet: RtpView) -> None:
        now = time.monotonic()
        self.packets += 1
        if self.source.kind != "video":
            if self.first_at is None:
                self.first_at = now
            return
        if packet.timestamp in self._completed:
            return  # a duplicate (a retransmission) of a frame already complete
        parts = self._pending.setdefault(packet.timestamp, {})
        parts.setdefault(packet.sequence_number, (packet, now))  # the first arrival counts
        frame = _complete(parts)
        if frame is not None:
            del self._pending[packet.timestamp]
            self._completed[packet.timestamp] = None
            if len(self._completed) > PENDING_LIMIT:
                del self._completed[next(iter(self._completed))]
            self._arrived(*frame, now)
        elif len(self._pending) > PENDING_LIMIT:
            del self._pending[next(iter(self._pending))]

    def _arrived(self, data: bytes, arrivals: list[float], now: float) -> None:
        keyframe = not data[0] & 0x01
        position = self._decoded_position(data, keyframe) if self.decode else None
        if not self.decode:
            position = self.source.position_of(data)
        if position is None:
            self.unreadable += self.first_at is not None
            return
        if self.first_at is None:
            self.first_at = now
        self._keep(position, data, keyframe)
        index = self.source.index_of(position, now)
        if index is not None:
            self.frames.append(Arrival(index, now, arrivals))

    def _keep(self, position: int, data: bytes, keyframe: bool) -> None:
        """The sample: consecutive frames from the first keyframe on (a gap ends it, so
        every frame kept must decode to its counter)."""
        if len(self.sample) >= SAMPLE_FRAMES or self._sample_closed:
            return
        if self.sample and not keyframe and position != self.sample[-1][0] + 1:
            self._sample_closed = True
        elif self.sample or keyframe:
            self.sample.append((position, data))

    def _decoded_position(self, data: bytes, keyframe: bool) -> int | None:
        if self._decoder is None:
            if not keyframe:
                return None
            self._decoder = av.CodecContext.create("libvpx", "r")
        try:
            decoded = self._decoder.decode(av.Packet(data))
        except av.error.FFmpegError:
            return None
        return luma_counter(decoded[-1]) if decoded else None

    def verify(self) -> tuple[int, int]:
        """Decode the sample: (frames decoded, frames whose counter is the one sent)."""
        decoder = av.CodecContext.create("libvpx", "r")
        decoded = matched = 0
        for position, data in self.sample:
            try:
                frames = decoder.decode(av.Packet(data))
            except av.error.FFmpegError:
                continue
            decoded += len(frames)
            matched += sum(1 for f in frames if luma_counter(f) == position)
        return decoded, matched


def _complete(parts: dict[int, tuple[RtpView, float]]) -> tuple[bytes, list[float]] | None:
    """The frame's VP8 bitstream and its packets' arrivals in sequence order, if its
    packets run without a gap from a partition start to the marker."""
    seqs = sorted(parts)
    if seqs[-1] - seqs[0] > 0x8000:  # sequence numbers wrapped inside this frame
        seqs = sorted(parts, key=lambda s: (s + 0x8000) & 0xFFFF)
    first, last = parts[seqs[0]][0], parts[seqs[-1]][0]
    if not last.marker or (seqs[-1] - seqs[0]) & 0xFFFF != len(seqs) - 1:
        return None
    if not first.payload or not first.payload[0] & 0x10 or first.payload[0] & 0x0F:
        return None
    chunks = []
    for seq in seqs:
        payload = parts[seq][0].payload
        offset = vp8_descriptor_size(payload)
        if offset is None:
            return None
        chunks.append(payload[offset:])
    data = b"".join(chunks)
    return (data, [parts[seq][1] for seq in seqs]) if data else None
