"""RTP packets of a chunk → encoded frames, as they were sent: VP8 (RFC 7741), H264
(RFC 6184: single NAL units, STAP-A, FU-A; out as an Annex B byte stream) and Opus (one
packet, one frame). Pure, no I/O, no decoding.

Packets are put in sequence order (a retransmission arrives late; a duplicate counts
once). Video starts at the first keyframe that is whole in itself (what comes before it
does not matter: a late retransmission from before a chunk's cut may sort just ahead of
it); a frame with a packet missing, or with a packet missing before it, is dropped, and
so is every frame after it until the next keyframe (they would not decode cleanly).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

from recorder.chunkfile import Record
from recorder.rtpcodecs import vp8_descriptor_size
from recorder.rtpnumbers import extend_seq, extend_timestamp

START_CODE = b"\x00\x00\x00\x01"
VP8_START_CODE = b"\x9d\x01\x2a"
_H264_IDR, _H264_STAP_A, _H264_FU_A = 5, 24, 28
_H264_SLICES = (1, 5)
"""Coded slices: the first of a picture has first_mb_in_slice 0 (ue(v) bit '1')."""


class Frame(NamedTuple):
    timestamp: int
    """Extended RTP timestamp."""
    data: bytes
    keyframe: bool


@dataclass
class Depacketized:
    frames: list[Frame] = field(default_factory=list)
    dropped: int = 0
    """Frames left out: incomplete, or after an incomplete one until a keyframe."""


class _Unwrap:
    """32-bit RTP timestamps → a count that does not wrap."""

    def __init__(self) -> None:
        self.last: int | None = None

    def __call__(self, timestamp: int) -> int:
        self.last = timestamp if self.last is None else extend_timestamp(timestamp, self.last)
        return self.last


def in_sequence(records: Iterable[Record]) -> list[Record]:
    """Records by extended sequence number, each number once."""
    by_seq: dict[int, Record] = {}
    highest: int | None = None
    for record in records:
        extended = extend_seq(record.sequence_number, highest)
        highest = extended if highest is None else max(highest, extended)
        by_seq.setdefault(extended, record)
    return [by_seq[k] for k in sorted(by_seq)]


def _groups(records: list[Record]) -> list[tuple[list[Record], bool, bool]]:
    """Packets of one timestamp, consecutive in sequence order: each group, whether it
    is whole in itself (consecutive up to its marker) and whether it follows the
    previous group directly (that one ended with its marker, nothing missing between)."""
    groups: list[tuple[list[Record], bool, bool]] = []
    previous: Record | None = None
    for record in records:
        follows = previous is not None and (
            (previous.sequence_number + 1) & 0xFFFF == record.sequence_number
        )
        if previous is not None and record.timestamp == previous.timestamp:
            packets, inside, after = groups[-1]
            groups[-1] = (packets, inside and follows, after)
            packets.append(record)
        else:
            after = previous is None or (follows and bool(previous.marker))
            groups.append(([record], True, after))
        previous = record
    return [
        (packets, inside and bool(packets[-1].marker), after) for packets, inside, after in groups
    ]


def _vp8(packets: list[Record]) -> tuple[bytes, bool] | None:
    first = packets[0].payload
    if len(first) < 2 or not first[0] & 0x10 or first[0] & 0x0F:
        return None  # the frame's first packet is missing
    parts = []
    for packet in packets:
        offset = vp8_descriptor_size(packet.payload)
        if offset is None:
            return None
        parts.append(packet.payload[offset:])
    data = b"".join(parts)
    if not data:
        return None
    keyframe = not data[0] & 0x01
    if keyframe and data[3:6] != VP8_START_CODE:
        return None  # a keyframe's header carries the start code (RFC 6386 9.1)
    return data, keyframe


def _h264(packets: list[Record]) -> tuple[bytes, bool] | None:
    out = bytearray()
    key = False
    in_fragment = False
    sliced = False  # the first slice seen starts the picture (first_mb_in_slice 0)
    for packet in packets:
        payload = packet.payload
        if not payload:
            return None
        kind = payload[0] & 0x1F
        nals: list[bytes] = []
        if kind == _H264_STAP_A:
            offset = 1
            while offset + 2 <= len(payload):
                size = int.from_bytes(payload[offset : offset + 2], "big")
                nals.append(payload[offset + 2 : offset + 2 + size])
                offset += 2 + size
        elif kind == _H264_FU_A and len(payload) > 2:
            header = payload[1]
            if header & 0x80:  # start
                in_fragment = True
                if not sliced and header & 0x1F in _H264_SLICES:
                    if len(payload) < 3 or not payload[2] & 0x80:
                        return None  # the frame's first slice is missing
                    sliced = True
                out += START_CODE + bytes([payload[0] & 0xE0 | header & 0x1F])
                key = key or header & 0x1F == _H264_IDR
            elif not in_fragment:
                return None
            out += payload[2:]
            if header & 0x40:  # end
                in_fragment = False
            continue
        elif 1 <= kind <= 23:
            nals.append(payload)
        else:
            return None
        for nal in nals:
            if not nal:
                continue
            nal_type = nal[0] & 0x1F
            if not sliced and nal_type in _H264_SLICES:
                if len(nal) < 2 or not nal[1] & 0x80:
                    return None  # the frame's first slice is missing
                sliced = True
            key = key or nal_type == _H264_IDR
            out += START_CODE + nal
    return (bytes(out), key) if out and not in_fragment else None


def depacketize(codec: str, records: Iterable[Record]) -> Depacketized:
    codec = codec.lower()
    result = Depacketized()
    ordered = in_sequence(records)
    unwrap = _Unwrap()
    if codec == "audio/opus":
        result.frames = [Frame(unwrap(r.timestamp), r.payload, True) for r in ordered]
        return result
    if codec not in ("video/vp8", "video/h264"):
        raise ValueError(f"unsupported codec {codec}")
    waiting = True  # for a keyframe
    for packets, inside, after in _groups(ordered):
        frame = _vp8(packets) if codec == "video/vp8" else _h264(packets)
        # a keyframe needs nothing before it (a late retransmission of the previous
        # chunk may sort just before it); any other frame needs the one before it
        whole = inside and (waiting or after)
        if frame is None or not whole or (waiting and not frame[1]):
            waiting = True
            result.dropped += bool(result.frames)  # before the first keyframe: not a loss
            continue
        waiting = False
        result.frames.append(Frame(unwrap(packets[0].timestamp), *frame))
    return result
