"""Writing forwarded RTP packets straight to bytes: a fixed header and one-byte header
extensions (RFC 8285) for MID, abs-send-time and audio level. Pure, no I/O. About ten
times cheaper than building an ``RtpPacket`` and serialising it, per packet per leg."""

from __future__ import annotations

import struct
from dataclasses import dataclass

NTP_EPOCH_OFFSET = 2_208_988_800
"""Seconds from 1900 (NTP) to 1970 (Unix)."""
URI_MID = "urn:ietf:params:rtp-hdrext:sdes:mid"
URI_ABS_SEND_TIME = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
URI_AUDIO_LEVEL = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"
_HEADER = struct.Struct("!BBHII")


def abs_send_time(now: float) -> int:
    """6.18 fixed-point seconds, 24 bits (the abs-send-time extension)."""
    return int((now + NTP_EPOCH_OFFSET) * (1 << 18)) & 0xFFFFFF


@dataclass(frozen=True)
class PacketWriter:
    """Writes packets for one outgoing sender; extension IDs as negotiated on its leg.
    An ID outside 1..14 cannot be written in one-byte form: that extension is left out
    (receivers route by SSRC; the extensions are optional)."""

    mid_element: bytes = b""
    """The MID extension element, the same on every packet of the leg."""
    abs_send_time_id: int = 0
    audio_level_id: int = 0

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
        now: float,
        audio_level: tuple[bool, int] | None = None,
    ) -> bytes:
        elements = bytearray(self.mid_element)
        if self.abs_send_time_id:
            elements.append(self.abs_send_time_id << 4 | 2)
            elements += abs_send_time(now).to_bytes(3, "big")
        if self.audio_level_id and audio_level is not None:
            elements.append(self.audio_level_id << 4)
            elements.append((0x80 if audio_level[0] else 0) | (audio_level[1] & 0x7F))
        first = 0x80
        extension = b""
        if elements:
            elements += b"\x00" * (-len(elements) % 4)
            extension = b"\xbe\xde" + (len(elements) // 4).to_bytes(2, "big") + bytes(elements)
            first |= 0x10
        header = _HEADER.pack(
            first, (marker & 1) << 7 | payload_type, sequence_number, timestamp, ssrc
        )
        return header + extension + payload
