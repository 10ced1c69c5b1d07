"""The raw RTP writer produces what aiortc's own parser reads back, byte for byte what
the writer before its per-leg layouts wrote."""

from __future__ import annotations

import itertools
import struct
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
    data = writer.write(
        111, 1, 65535, 0xFFFFFFF0, 0x12345678, b"\x01\x02payload", abs_send_time(now), (True, 42)
    )
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
    data = PacketWriter.from_ids(None, {}).write(96, 0, 1, 2, 3, b"x", 0)
    assert len(data) == 13 and data[0] == 0x80
    assert RtpPacket.parse(data).payload == b"x"


def test_ids_beyond_one_byte_form_are_left_out():
    """An extension negotiated with an ID over 14 is skipped, the rest is written."""
    writer = PacketWriter.from_ids("0", {URI_MID: 15, URI_ABS_SEND_TIME: 3})
    packet = RtpPacket.parse(writer.write(96, 0, 1, 2, 3, b"x", 0), extension_map())
    assert packet.extensions.mid is None


def reference_write(
    mid_element: bytes,
    ast_id: int,
    audio_id: int,
    args: tuple[int, int, int, int, int, bytes, float, tuple[bool, int] | None],
) -> bytes:
    """The writer as it was before layouts (extensions built per packet), kept as the
    reference the layouts must equal byte for byte."""
    payload_type, marker, sequence_number, timestamp, ssrc, payload, now, audio_level = args
    elements = bytearray(mid_element)
    if ast_id:
        elements.append(ast_id << 4 | 2)
        elements += abs_send_time(now).to_bytes(3, "big")
    if audio_id and audio_level is not None:
        elements.append(audio_id << 4)
        elements.append((0x80 if audio_level[0] else 0) | (audio_level[1] & 0x7F))
    first = 0x80
    extension = b""
    if elements:
        elements += b"\x00" * (-len(elements) % 4)
        extension = b"\xbe\xde" + (len(elements) // 4).to_bytes(2, "big") + bytes(elements)
        first |= 0x10
    header = struct.pack(
        "!BBHII", first, (marker & 1) << 7 | payload_type, sequence_number, timestamp, ssrc
    )
    return header + extension + payload


def test_layouts_write_what_the_per_packet_writer_wrote():
    """For every mix of MID (none, short, 16 bytes, ID over 14), abs-send-time and audio
    level (negotiated or not, present or not), the output is byte-identical."""
    now = time.time()
    mids = [(None, 4), ("0", 4), ("abcdefghijklmnop", 4), ("1", 15)]
    ast_ids, audio_ids = (0, 2, 14, 15), (0, 1, 14)
    levels = (None, (True, 127), (False, 0), (True, 200))
    for (mid, mid_id), ast_id, audio_id, level in itertools.product(
        mids, ast_ids, audio_ids, levels
    ):
        ids = {URI_MID: mid_id, URI_ABS_SEND_TIME: ast_id, URI_AUDIO_LEVEL: audio_id}
        writer = PacketWriter.from_ids(mid, ids)
        value = (mid or "").encode()
        mid_element = (
            bytes([mid_id << 4 | (len(value) - 1)]) + value if mid and mid_id < 15 else b""
        )
        for marker, seq, ts, payload in ((0, 0, 0, b""), (1, 65535, 0xFFFFFFFF, b"\x90" * 1200)):
            args = (111, marker, seq, ts, 0xDEADBEEF, payload, now, level)
            usable = [i if i <= 14 else 0 for i in (ast_id, audio_id)]
            expected = reference_write(mid_element, *usable, args)
            written = writer.write(
                111, marker, seq, ts, 0xDEADBEEF, payload, abs_send_time(now), level
            )
            assert written == expected, (mid, ast_id, audio_id, level)
