"""RTP payload parsing, pure functions: does a payload start a keyframe, how long is a
VP8 payload descriptor, what size is a VP8 keyframe (RFC 7741, RFC 6184, RFC 6386).
Used by forwarding (media/keyframes.py), the capture and the converter."""

from __future__ import annotations

from collections.abc import Callable

_H264_IDR = 5
_H264_SPS = 7
_H264_STAP_A = 24
_H264_FU_A = 28


def vp8_descriptor_size(payload: bytes) -> int | None:
    """Length of the VP8 payload descriptor (RFC 7741 §4.2), None if truncated."""
    if not payload:
        return None
    offset = 1
    if payload[0] & 0x80:  # X: extended control bits
        if len(payload) <= offset:
            return None
        ext = payload[offset]
        offset += 1
        if ext & 0x80:  # I: picture id, 7 or 15 bits
            if len(payload) <= offset:
                return None
            offset += 2 if payload[offset] & 0x80 else 1
        if ext & 0x40:  # L: TL0PICIDX
            offset += 1
        if ext & 0x30:  # T or K: TID/KEYIDX
            offset += 1
    return offset if len(payload) > offset else None


def vp8_keyframe_start(payload: bytes) -> bool:
    """True for the first packet of a VP8 keyframe."""
    if len(payload) < 2:
        return False
    first = payload[0]
    if not first & 0x10 or first & 0x0F:  # S (start of partition), partition index 0
        return False
    offset = vp8_descriptor_size(payload)
    return offset is not None and not payload[offset] & 0x01  # P bit: 0 = keyframe


def vp8_keyframe_size(payload: bytes) -> tuple[int, int] | None:
    """(width, height) from the first packet of a VP8 keyframe (RFC 6386 §9.1: a 3-byte
    frame tag, the start code 9d 01 2a, then 14-bit width and height)."""
    if not vp8_keyframe_start(payload):
        return None
    offset = vp8_descriptor_size(payload) or 0
    header = payload[offset : offset + 10]
    if len(header) < 10 or header[3:6] != b"\x9d\x01\x2a":
        return None
    width = int.from_bytes(header[6:8], "little") & 0x3FFF
    height = int.from_bytes(header[8:10], "little") & 0x3FFF
    return width, height


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


CLOCK_RATES = {"video/vp8": 90_000, "video/h264": 90_000, "audio/opus": 48_000}
"""RTP clock rates fixed by each codec's RTP payload format."""


def keyframe_detector(mime_type: str) -> Callable[[bytes], bool]:
    """The check for this codec, chosen once per track."""
    return {"video/vp8": vp8_keyframe_start, "video/h264": h264_keyframe_start}.get(
        mime_type.lower(), _always
    )


class _Bits:
    """Exp-Golomb reader over an H264 RBSP."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def bit(self) -> int:
        byte = self.data[self.pos >> 3]  # IndexError past the end
        self.pos += 1
        return byte >> (7 - ((self.pos - 1) & 7)) & 1

    def bits(self, count: int) -> int:
        value = 0
        for _ in range(count):
            value = value << 1 | self.bit()
        return value

    def ue(self) -> int:
        zeros = 0
        while not self.bit():
            zeros += 1
            if zeros > 31:
                raise ValueError("bad exp-Golomb code")
        return (1 << zeros) - 1 + self.bits(zeros)

    def se(self) -> int:
        value = self.ue()
        return (value + 1) // 2 if value & 1 else -(value // 2)


_HIGH_PROFILES = {100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135}


def h264_sps_size(nal: bytes) -> tuple[int, int] | None:
    """(width, height) from an H264 sequence parameter set NAL unit (ITU-T H.264
    §7.3.2.1.1), None if it is not one or is cut short."""
    if not nal or nal[0] & 0x1F != _H264_SPS:
        return None
    rbsp = nal[1:].replace(b"\x00\x00\x03", b"\x00\x00")
    try:
        bits = _Bits(rbsp)
        profile = bits.bits(8)
        bits.bits(16)  # constraint flags, level
        bits.ue()  # seq_parameter_set_id
        chroma_format = 1
        if profile in _HIGH_PROFILES:
            chroma_format = bits.ue()
            if chroma_format == 3:
                bits.bit()
            bits.ue()
            bits.ue()
            bits.bit()
            if bits.bit():  # scaling matrices
                for index in range(8 if chroma_format != 3 else 12):
                    if bits.bit():
                        last = next_ = 8
                        for _ in range(16 if index < 6 else 64):
                            if next_:
                                next_ = (last + bits.se() + 256) % 256
                            last = next_ or last
        bits.ue()  # log2_max_frame_num_minus4
        poc_type = bits.ue()
        if poc_type == 0:
            bits.ue()
        elif poc_type == 1:
            bits.bit()
            bits.se()
            bits.se()
            for _ in range(bits.ue()):
                bits.se()
        bits.ue()  # max_num_ref_frames
        bits.bit()
        width_mbs = bits.ue() + 1
        height_units = bits.ue() + 1
        frame_mbs_only = bits.bit()
        if not frame_mbs_only:
            bits.bit()
        bits.bit()
        crop = (bits.ue(), bits.ue(), bits.ue(), bits.ue()) if bits.bit() else (0, 0, 0, 0)
    except (IndexError, ValueError):
        return None
    unit_x = 1 if chroma_format in (0, 3) else 2
    unit_y = (2 if chroma_format == 1 else 1) * (2 - frame_mbs_only)
    width = width_mbs * 16 - unit_x * (crop[0] + crop[1])
    height = (2 - frame_mbs_only) * height_units * 16 - unit_y * (crop[2] + crop[3])
    return width, height


def h264_payload_size(payload: bytes) -> tuple[int, int] | None:
    """The picture size, if this RTP payload carries an SPS (alone or in a STAP-A)."""
    if not payload:
        return None
    kind = payload[0] & 0x1F
    if kind == _H264_SPS:
        return h264_sps_size(payload)
    if kind == _H264_STAP_A:
        offset = 1
        while offset + 2 < len(payload):
            size = int.from_bytes(payload[offset : offset + 2], "big")
            found = h264_sps_size(payload[offset + 2 : offset + 2 + size])
            if found:
                return found
            offset += 2 + size
    return None


def keyframe_size(codec: str, payload: bytes) -> tuple[int, int] | None:
    """The picture size a keyframe's first packet announces (VP8 header, H264 SPS)."""
    codec = codec.lower()
    if codec == "video/vp8":
        return vp8_keyframe_size(payload)
    if codec == "video/h264":
        return h264_payload_size(payload)
    return None
