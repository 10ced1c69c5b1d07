"""Reading forwarded RTP packets straight from bytes, in C (media/_fastpath.c): what
forwarding, the recorder and snapshots read of a packet, without building aiortc's
``RtpPacket`` (whose parse decodes every header extension). Pure, no I/O.

    RtpView(payload_type, marker, sequence_number, timestamp, ssrc, payload,
            audio_level=None)
        one media packet (RTX already unwrapped); ``audio_level`` is (voice, level) if
        the packet carried one and it was asked for
    parse(data, audio_level_id=0) -> RtpView | None
        the fixed header, the payload between CSRCs/header extension and padding, and
        with an ``audio_level_id`` the audio level (RFC 6464, one- or two-byte form);
        None if ``data`` is not a well-formed RTP packet
"""

from __future__ import annotations

from media._fastpath import RtpView, parse

__all__ = ["RtpView", "parse", "unwrap_rtx"]


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
