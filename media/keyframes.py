"""Does an RTP payload start a keyframe? Pure functions, VP8 (RFC 7741) and H264 (RFC 6184)."""

from __future__ import annotations

from collections.abc import Callable

_H264_IDR = 5
_H264_SPS = 7
_H264_STAP_A = 24
_H264_FU_A = 28


def vp8_keyframe_start(payload: bytes) -> bool:
    """True for the first packet of a VP8 keyframe."""
    if len(payload) < 2:
        return False
    first = payload[0]
    start, partition = first & 0x10, first & 0x0F
    if not start or partition != 0:
        return False
    offset = 1
    if first & 0x80:  # X: extended control bits
        if len(payload) <= offset:
            return False
        ext = payload[offset]
        offset += 1
        if ext & 0x80:  # I: picture id, 7 or 15 bits
            if len(payload) <= offset:
                return False
            offset += 2 if payload[offset] & 0x80 else 1
        if ext & 0x40:  # L: TL0PICIDX
            offset += 1
        if ext & 0x30:  # T or K: TID/KEYIDX
            offset += 1
    if len(payload) <= offset:
        return False
    return not payload[offset] & 0x01  # P bit of the VP8 frame header: 0 = keyframe


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


def _always(_payload: bytes) -> bool:
    return True  # audio: every packet can start a stream


def keyframe_detector(mime_type: str) -> Callable[[bytes], bool]:
    """The check for this codec, chosen once per track."""
    return {"video/vp8": vp8_keyframe_start, "video/h264": h264_keyframe_start}.get(
        mime_type.lower(), _always
    )
