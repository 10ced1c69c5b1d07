"""RTP packets → encoded video frames, without decoding: VP8 (RFC 7741) and H264
packetization-mode 1 (RFC 6184: single NAL units, STAP-A, FU-A). Pure functions and one
small assembler; no I/O, no imports beyond the standard library.

Packets may come in arrival order (out of order, duplicated, with losses): the assembler
groups them by RTP timestamp, orders them by (unwrapped) sequence number and yields a
frame once it is whole — a start packet, every sequence number up to the marker packet.
A frame still incomplete when ``window`` later frames are waiting is given up and counted
in ``dropped``. VP8 frames come out as the codec's frame bytes; H264 frames as an Annex B
access unit (start codes before each NAL unit), as decoders and muxers take them.

    frames(packets, "video/VP8") -> iterator of EncodedFrame
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

START_CODE = b"\x00\x00\x00\x01"
_H264_IDR = 5
_H264_SPS = 7
_H264_STAP_A = 24
_H264_FU_A = 28
_VP8_START = b"\x9d\x01\x2a"


class Packet(Protocol):
    """What the assembler reads of an RTP packet (aiortc's ``RtpPacket`` has these)."""

    @property
    def sequence_number(self) -> int: ...
    @property
    def timestamp(self) -> int: ...
    @property
    def marker(self) -> int: ...
    @property
    def payload(self) -> bytes: ...


@dataclass(frozen=True)
class EncodedFrame:
    timestamp: int
    """RTP timestamp of the frame (90 kHz for video)."""
    data: bytes
    keyframe: bool
    first_seq: int
    last_seq: int
    packets: int
    size: tuple[int, int] | None = None
    """(width, height) read from a VP8 keyframe's header; None otherwise."""


class MalformedPayload(ValueError):
    """A payload that does not follow its RTP payload format."""


# -- VP8 ----------------------------------------------------------------------------------


def vp8_descriptor(payload: bytes) -> tuple[int, bool]:
    """Length of the VP8 payload descriptor and whether the packet starts the frame
    (S=1 and partition index 0)."""
    if not payload:
        raise MalformedPayload("empty VP8 payload")
    first = payload[0]
    offset = 1
    if first & 0x80:  # X: extended control bits
        if len(payload) < 2:
            raise MalformedPayload("truncated VP8 descriptor")
        ext = payload[1]
        offset = 2
        if ext & 0x80:  # I: picture id, 7 or 15 bits
            if len(payload) <= offset:
                raise MalformedPayload("truncated VP8 picture id")
            offset += 2 if payload[offset] & 0x80 else 1
        if ext & 0x40:  # L: TL0PICIDX
            offset += 1
        if ext & 0x30:  # T or K: TID/KEYIDX
            offset += 1
    if offset > len(payload):
        raise MalformedPayload("truncated VP8 descriptor")
    return offset, bool(first & 0x10) and first & 0x0F == 0


def vp8_frame(payloads: list[bytes]) -> tuple[bytes, bool, tuple[int, int] | None]:
    """Frame bytes, keyframe flag and (for a keyframe) its size."""
    data = b"".join(p[vp8_descriptor(p)[0] :] for p in payloads)
    if not data:
        raise MalformedPayload("empty VP8 frame")
    keyframe = not data[0] & 0x01
    size = None
    if keyframe:
        if len(data) < 10 or data[3:6] != _VP8_START:
            raise MalformedPayload("VP8 keyframe without its start code")
        size = (
            int.from_bytes(data[6:8], "little") & 0x3FFF,
            int.from_bytes(data[8:10], "little") & 0x3FFF,
        )
    return data, keyframe, size


# -- H264 ---------------------------------------------------------------------------------


def h264_starts_frame(payload: bytes) -> bool:
    """Anything but a continuing FU-A fragment can begin an access unit."""
    if not payload:
        return False
    if payload[0] & 0x1F == _H264_FU_A:
        return len(payload) > 1 and bool(payload[1] & 0x80)
    return True


def h264_frame(payloads: list[bytes]) -> tuple[bytes, bool, None]:
    """Annex B access unit and keyframe flag (an IDR slice present)."""
    out = bytearray()
    keyframe = False
    fragment = False
    for payload in payloads:
        if not payload:
            raise MalformedPayload("empty H264 payload")
        kind = payload[0] & 0x1F
        if 1 <= kind <= 23:
            nals = [payload]
        elif kind == _H264_STAP_A:
            nals, offset = [], 1
            while offset < len(payload):
                if offset + 2 > len(payload):
                    raise MalformedPayload("truncated STAP-A")
                length = int.from_bytes(payload[offset : offset + 2], "big")
                offset += 2
                if length == 0 or offset + length > len(payload):
                    raise MalformedPayload("STAP-A unit overruns the packet")
                nals.append(payload[offset : offset + length])
                offset += length
        elif kind == _H264_FU_A:
            if len(payload) < 2:
                raise MalformedPayload("truncated FU-A")
            header = payload[1]
            if header & 0x80:
                out += START_CODE + bytes([payload[0] & 0xE0 | header & 0x1F])
                fragment = True
                keyframe = keyframe or header & 0x1F == _H264_IDR
            elif not fragment:
                raise MalformedPayload("FU-A continuation without its start")
            out += payload[2:]
            if header & 0x40:
                fragment = False
            continue
        else:
            raise MalformedPayload(f"H264 NAL type {kind} not in packetization-mode 1")
        fragment = False
        for nal in nals:
            keyframe = keyframe or nal[0] & 0x1F == _H264_IDR
            out += START_CODE + nal
    return bytes(out), keyframe, None


def vp8_keyframe_start(payload: bytes) -> bool:
    """True for the first packet of a VP8 keyframe."""
    try:
        offset, starts = vp8_descriptor(payload)
    except MalformedPayload:
        return False
    return starts and len(payload) > offset and not payload[offset] & 0x01


def h264_keyframe_start(payload: bytes) -> bool:
    """True for a packet that starts an IDR picture or carries an SPS."""
    if not payload:
        return False
    kind = payload[0] & 0x1F
    if kind in (_H264_IDR, _H264_SPS):
        return True
    if kind == _H264_STAP_A:
        offset = 1
        while offset + 2 < len(payload):
            size = int.from_bytes(payload[offset : offset + 2], "big")
            if payload[offset + 2] & 0x1F in (_H264_IDR, _H264_SPS):
                return True
            offset += 2 + size
        return False
    if kind == _H264_FU_A and len(payload) > 1:
        return bool(payload[1] & 0x80) and payload[1] & 0x1F in (_H264_IDR, _H264_SPS)
    return False


# -- assembling ---------------------------------------------------------------------------


@dataclass
class _Pending:
    packets: dict[int, Packet] = field(default_factory=dict)  # by unwrapped seq

    def first(self) -> int:
        return min(self.packets)

    def whole(self, starts: bool) -> bool:
        seqs = sorted(self.packets)
        return (
            starts and bool(self.packets[seqs[-1]].marker) and seqs[-1] - seqs[0] + 1 == len(seqs)
        )


class FrameAssembler:
    """Packets in (any order) → whole frames in order. Not thread-safe; cheap per packet."""

    def __init__(self, mime_type: str, window: int = 16) -> None:
        codec = mime_type.lower()
        if codec not in ("video/vp8", "video/h264"):
            raise ValueError(f"no depacketiser for {mime_type}")
        self._vp8 = codec == "video/vp8"
        self._keyframe_start = vp8_keyframe_start if self._vp8 else h264_keyframe_start
        self._window = window
        self._pending: dict[int, _Pending] = {}  # by RTP timestamp
        self._highest: int | None = None  # unwrapped seq
        self._done_through = -1  # unwrapped seq of the last packet of the last frame out
        self.dropped = 0
        """Frames given up: incomplete, not following their payload format, or before the
        first keyframe (undecodable)."""

    def _unwrap(self, seq: int) -> int:
        if self._highest is None:
            self._highest = seq + 0x10000  # room below for late packets
            return self._highest
        delta = (seq - self._highest) & 0xFFFF
        unwrapped = self._highest + delta if delta < 0x8000 else self._highest + delta - 0x10000
        self._highest = max(self._highest, unwrapped)
        return unwrapped

    def _starts(self, payload: bytes) -> bool:
        if self._vp8:
            try:
                return vp8_descriptor(payload)[1]
            except MalformedPayload:
                return False
        return h264_starts_frame(payload)

    def push(self, packet: Packet) -> list[EncodedFrame]:
        seq = self._unwrap(packet.sequence_number)
        if seq <= self._done_through:
            return []  # a late copy of a packet of a frame already out (or given up)
        pending = self._pending.setdefault(packet.timestamp, _Pending())
        pending.packets.setdefault(seq, packet)
        return self._drain(final=False)

    def flush(self) -> list[EncodedFrame]:
        """Whatever is whole; the rest is dropped."""
        return self._drain(final=True)

    def _drain(self, final: bool) -> list[EncodedFrame]:
        out: list[EncodedFrame] = []
        if self._done_through < 0:  # nothing out yet: start on the first whole keyframe
            keyframe = self._first_keyframe()
            if keyframe is None:
                while len(self._pending) > self._window or (final and self._pending):
                    self._give_up(self._oldest())
                return out
            for timestamp in [t for t, p in self._pending.items() if p.first() < keyframe]:
                self._give_up(timestamp)
        while self._pending:
            timestamp = self._oldest()
            pending = self._pending[timestamp]
            whole = pending.whole(self._starts(pending.packets[pending.first()].payload))
            follows = pending.first() == self._done_through + 1 or self._done_through < 0
            if whole and (follows or final or len(self._pending) > self._window):
                frame = self._build(timestamp, pending)  # after a gap, if not ``follows``
                if frame is not None:
                    out.append(frame)
                self._close(timestamp)
            elif final or len(self._pending) > self._window:
                self._give_up(timestamp)
            else:
                break
        return out

    def _oldest(self) -> int:
        return min(self._pending, key=lambda t: self._pending[t].first())

    def _first_keyframe(self) -> int | None:
        """First sequence number of the oldest whole keyframe pending, if any."""
        found = []
        for pending in self._pending.values():
            first = pending.packets[pending.first()].payload
            if pending.whole(self._starts(first)) and self._keyframe_start(first):
                found.append(pending.first())
        return min(found, default=None)

    def _give_up(self, timestamp: int) -> None:
        self.dropped += 1
        self._close(timestamp)

    def _close(self, timestamp: int) -> None:
        pending = self._pending.pop(timestamp)
        self._done_through = max(self._done_through, max(pending.packets))

    def _build(self, timestamp: int, pending: _Pending) -> EncodedFrame | None:
        seqs = sorted(pending.packets)
        payloads = [pending.packets[s].payload for s in seqs]
        try:
            data, keyframe, size = vp8_frame(payloads) if self._vp8 else h264_frame(payloads)
        except MalformedPayload:
            self.dropped += 1
            return None
        return EncodedFrame(
            timestamp,
            data,
            keyframe,
            pending.packets[seqs[0]].sequence_number,
            pending.packets[seqs[-1]].sequence_number,
            len(seqs),
            size,
        )


def frames(packets: Iterable[Packet], mime_type: str) -> Iterator[EncodedFrame]:
    """Every whole frame of ``packets`` (a track's packets in arrival order), in order."""
    assembler = FrameAssembler(mime_type)
    for packet in packets:
        yield from assembler.push(packet)
    yield from assembler.flush()
