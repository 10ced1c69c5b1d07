"""Writing forwarded RTP packets straight to bytes: a fixed header and one-byte header
extensions (RFC 8285) for MID, abs-send-time and audio level. Pure, no I/O. About ten
times cheaper than building an ``RtpPacket`` and serialising it, per packet per leg."""

from __future__ import annotations

import struct

NTP_EPOCH_OFFSET = 2_208_988_800
"""Seconds from 1900 (NTP) to 1970 (Unix)."""
URI_MID = "urn:ietf:params:rtp-hdrext:sdes:mid"
URI_ABS_SEND_TIME = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
URI_AUDIO_LEVEL = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"
_HEADER = struct.Struct("!BBHII")


def abs_send_time(now: float) -> int:
    """6.18 fixed-point seconds, 24 bits (the abs-send-time extension)."""
    return int((now + NTP_EPOCH_OFFSET) * (1 << 18)) & 0xFFFFFF


class _Layout:
    """One packet shape of a leg: the header and extension block as one ``struct``, with
    the leg's constant bytes (extension head with MID, padding) filled in per packet."""

    __slots__ = ("ast", "audio", "first", "head", "struct", "tail")

    def __init__(self, mid_element: bytes, ast_id: int, audio_id: int) -> None:
        size = len(mid_element) + (4 if ast_id else 0) + (2 if audio_id else 0)
        pad = -size % 4
        self.first = 0x90 if size else 0x80
        words = ((size + pad) // 4).to_bytes(2, "big")
        self.head = b"\xbe\xde" + words + mid_element if size else b""
        self.tail = b"\x00" * pad
        self.ast = (ast_id << 4 | 2) << 24 if ast_id else 0
        """The abs-send-time element's first byte, shifted above its 24-bit value."""
        self.audio = audio_id << 12 if audio_id else 0
        """The audio level element's first byte, shifted above its value byte."""
        fmt = f"!BBHII{len(self.head)}s" + ("I" if ast_id else "") + ("H" if audio_id else "")
        self.struct = struct.Struct(fmt + f"{pad}s")


class PacketWriter:
    """Writes packets for one outgoing sender; extension IDs as negotiated on its leg.
    An ID outside 1..14 cannot be written in one-byte form: that extension is left out
    (receivers route by SSRC; the extensions are optional). Each packet is one
    ``struct.pack`` of a layout built once, plus the payload."""

    __slots__ = ("_audio", "_plain", "audio_level_id")

    def __init__(
        self, mid_element: bytes = b"", abs_send_time_id: int = 0, audio_level_id: int = 0
    ) -> None:
        self.audio_level_id = audio_level_id
        self._plain = _Layout(mid_element, abs_send_time_id, 0)
        self._audio = _Layout(mid_element, abs_send_time_id, audio_level_id)

    @classmethod
    def from_ids(cls, mid: str | None, ids: dict[str, int]) -> PacketWriter:
        def usable(uri: str) -> int:
            value = ids.get(uri, 0)
            return value if 1 <= value <= 14 else 0

        value = (mid or "").encode()
        mid_id = usable(URI_MID) if 1 <= len(value) <= 16 else 0
        mid_element = bytes([mid_id << 4 | (len(value) - 1)]) + value if mid_id else b""
        return cls(mid_element, usable(URI_ABS_SEND_TIME), usable(URI_AUDIO_LEVEL))

    def write(
        self,
        payload_type: int,
        marker: int,
        sequence_number: int,
        timestamp: int,
        ssrc: int,
        payload: bytes,
        send_time: int,
        audio_level: tuple[bool, int] | None = None,
    ) -> bytes:
        """``send_time`` is the abs-send-time value (``abs_send_time(now)``), computed
        once per forwarded packet for all its legs."""
        mpt = (marker & 1) << 7 | payload_type
        if audio_level is None or not self.audio_level_id:
            plain = self._plain
            if plain.ast:
                return plain.struct.pack(
                    plain.first, mpt, sequence_number, timestamp, ssrc,
                    plain.head, plain.ast | send_time, plain.tail,
                ) + payload  # fmt: skip
            return plain.struct.pack(
                plain.first, mpt, sequence_number, timestamp, ssrc, plain.head, plain.tail
            ) + payload  # fmt: skip
        audio = self._audio
        level = audio.audio | (0x80 if audio_level[0] else 0) | (audio_level[1] & 0x7F)
        if audio.ast:
            return audio.struct.pack(
                audio.first, mpt, sequence_number, timestamp, ssrc,
                audio.head, audio.ast | send_time, level, audio.tail,
            ) + payload  # fmt: skip
        return audio.struct.pack(
            audio.first, mpt, sequence_number, timestamp, ssrc, audio.head, level, audio.tail
        ) + payload  # fmt: skip
