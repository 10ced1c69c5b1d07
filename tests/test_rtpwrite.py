"""The raw RTP writer produces what aiortc's own parser reads back."""

from __future__ import annotations

import time

from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import HeaderExtensionsMap, RtpPacket

from media.rtpwrite import URI_ABS_SEND_TIME, URI_AUDIO_LEVEL, URI_MID, PacketWriter, abs_send_time

IDS = {URI_MID: 4, URI_ABS_SEND_TIME: 2, URI_AUDIO_LEVEL: 1}


def extension_map() -> HeaderExtensionsMap:
    extensions = HeaderExtensionsMap()
    extensions.configure(
        RTCRtpParameters(
            headerExtensions=[RTCRtpHeaderExtensionParameters(id=i, uri=u) for u, i in IDS.items()]
        )
    )
    return extensions


def test_written_packet_parses_with_every_field():
    """Header fields, payload and each extension survive a round trip through aiortc."""
    now = time.time()
    writer = PacketWriter.from_ids("3", IDS)
    data = writer.write(111, 1, 65535, 0xFFFFFFF0, 0x12345678, b"\x01\x02payload", now, (True, 42))
    packet = RtpPacket.parse(data, extension_map())
    assert (packet.payload_type, packet.marker, packet.sequence_number) == (111, 1, 65535)
    assert (packet.timestamp, packet.ssrc, packet.payload) == (
        0xFFFFFFF0,
        0x12345678,
        b"\x01\x02payload",
    )
    assert packet.extensions.mid == "3"
    assert packet.extensions.abs_send_time == abs_send_time(now)
    assert packet.extensions.audio_level == (True, 42)


def test_without_extensions_there_is_no_extension_block():
    """No negotiated extension: a plain 12-byte header."""
    data = PacketWriter.from_ids(None, {}).write(96, 0, 1, 2, 3, b"x", time.time())
    assert len(data) == 13 and data[0] == 0x80
    assert RtpPacket.parse(data).payload == b"x"


def test_ids_beyond_one_byte_form_are_left_out():
    """An extension negotiated with an ID over 14 is skipped, the rest is written."""
    writer = PacketWriter.from_ids("0", {URI_MID: 15, URI_ABS_SEND_TIME: 3})
    packet = RtpPacket.parse(writer.write(96, 0, 1, 2, 3, b"x", time.time()), extension_map())
    assert packet.extensions.mid is None
