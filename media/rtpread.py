"""Reading forwarded RTP packets straight from bytes: the fixed header, the payload
between CSRCs/header extension and padding, and the audio level (RFC 6464) when asked.
Pure, no I/O. What forwarding, the recorder and snapshots read of a packet, without
building aiortc's ``RtpPacket`` (whose parse decodes every header extension)."""

from __future__ import annotations

import struct

_HEADER = struct.Struct("!BBHII")
_EXTENSION = struct.Struct("!HH")
ONE_BYTE_PROFILE = 0xBEDE
TWO_BYTE_PROFILE = 0x100  # the profile's top 12 bits (RFC 8285); the low 4 are app bits


class RtpView:
    """One media packet (RTX already unwrapped). ``audio_level`` is (voice, level) if
    the packet carried one and it was asked for."""

    __slots__ = (
        "audio_level",
        "marker",
        "payload",
        "payload_type",
        "sequence_number",
        "ssrc",
        "timestamp",
    )

    def __init__(
        self,
        payload_type: int,
        marker: int,
        sequence_number: int,
        timestamp: int,
        ssrc: int,
        payload: bytes,
        audio_level: tuple[bool, int] | None = None,
    ) -> None:
        self.payload_type = payload_type
        self.marker = marker
        self.sequence_number = sequence_number
        self.timestamp = timestamp
        self.ssrc = ssrc
        self.payload = payload
        self.audio_level = audio_level

    def __repr__(self) -> str:
        return (
            f"RtpView(pt={self.payload_type}, m={self.marker}, seq={self.sequence_number}, "
            f"ts={self.timestamp}, ssrc={self.ssrc}, {len(self.payload)} bytes)"
        )


def parse(data: bytes, audio_level_id: int = 0) -> RtpView | None:
    """The packet in ``data``; None if it is not a well-formed RTP packet. With an
    ``audio_level_id``, the header extension of that ID (one- or two-byte form) is read."""
    size = len(data)
    if size < 12:
        return None
    first, second, seq, timestamp, ssrc = _HEADER.unpack_from(data)
    if first >> 6 != 2:
        return None
    pos = 12 + 4 * (first & 0x0F)
    if pos > size:
        return None
    audio_level = None
    if first & 0x10:
        if pos + 4 > size:
            return None
        profile, words = _EXTENSION.unpack_from(data, pos)
        pos += 4
        end = pos + 4 * words
        if end > size:
            return None
        if audio_level_id and profile == ONE_BYTE_PROFILE:
            audio_level = _audio_level(data, pos, end, audio_level_id, two_byte=False)
        elif audio_level_id and profile >> 4 == TWO_BYTE_PROFILE:
            audio_level = _audio_level(data, pos, end, audio_level_id, two_byte=True)
        pos = end
    if first & 0x20:
        padding = data[-1]
        if padding == 0 or pos + padding > size:
            return None
        size -= padding
    return RtpView(second & 0x7F, second >> 7, seq, timestamp, ssrc, data[pos:size], audio_level)


def _audio_level(
    data: bytes, pos: int, end: int, wanted: int, two_byte: bool
) -> tuple[bool, int] | None:
    while pos < end:
        element = data[pos]
        if element == 0:  # padding
            pos += 1
            continue
        if two_byte:  # ID byte, length byte, data
            if pos + 1 >= end:
                return None
            ident, length, start = element, data[pos + 1], pos + 2
        else:  # ID and length - 1 in one byte, data
            ident, length, start = element >> 4, (element & 0x0F) + 1, pos + 1
        if ident == wanted:
            if length < 1 or start >= end:
                return None
            level = data[start]
            return (level & 0x80 == 0x80, level & 0x7F)
        pos = start + length
    return None


def unwrap_rtx(packet: RtpView, payload_type: int, ssrc: int) -> RtpView | None:
    """The original packet a retransmission (RFC 4588) carries; None if too short."""
    payload = packet.payload
    if len(payload) < 2:
        return None
    return RtpView(
        payload_type,
        packet.marker,
        payload[0] << 8 | payload[1],
        packet.timestamp,
        ssrc,
        payload[2:],
        packet.audio_level,
    )
