"""The light RTP reader (media/rtpread.py) reads what aiortc's own parser reads."""

from __future__ import annotations

import struct

from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import HeaderExtensionsMap, RtpPacket, unwrap_rtx
from hypothesis import given
from hypothesis import strategies as st

from media import rtpread
from media.rtpwrite import URI_ABS_SEND_TIME, URI_AUDIO_LEVEL, URI_MID


def extension_map(mid_id: int, ast_id: int, audio_id: int) -> HeaderExtensionsMap:
    ids = {URI_MID: mid_id, URI_ABS_SEND_TIME: ast_id, URI_AUDIO_LEVEL: audio_id}
    extensions = HeaderExtensionsMap()
    extensions.configure(
        RTCRtpParameters(
            headerExtensions=[
                RTCRtpHeaderExtensionParameters(id=i, uri=u) for u, i in ids.items() if i
            ]
        )
    )
    return extensions


@st.composite
def packets(draw: st.DrawFn) -> tuple[bytes, HeaderExtensionsMap, int]:
    """Serialised packets with CSRCs, padding and one- or two-byte header extensions
    (an ID over 14 or a MID over 16 bytes forces the two-byte form)."""
    mid_id, ast_id, audio_id = draw(
        st.lists(st.integers(0, 20), min_size=3, max_size=3, unique=True)
    )
    extensions = extension_map(mid_id, ast_id, audio_id)
    packet = RtpPacket(
        payload_type=draw(st.integers(0, 127)),
        marker=draw(st.integers(0, 1)),
        sequence_number=draw(st.integers(0, 0xFFFF)),
        timestamp=draw(st.integers(0, 0xFFFFFFFF)),
        ssrc=draw(st.integers(0, 0xFFFFFFFF)),
        payload=draw(st.binary(max_size=64)),
    )
    packet.csrc = draw(st.lists(st.integers(0, 0xFFFFFFFF), max_size=15))
    packet.padding_size = draw(st.integers(0, 255))
    if mid_id:
        packet.extensions.mid = draw(st.text("abc012", min_size=1, max_size=20))
    if ast_id:
        packet.extensions.abs_send_time = draw(st.integers(0, 0xFFFFFF))
    if audio_id:
        packet.extensions.audio_level = (draw(st.booleans()), draw(st.integers(0, 127)))
    return packet.serialize(extensions), extensions, audio_id


@given(packets())
def test_fields_and_payload_equal_aiortcs(case: tuple[bytes, HeaderExtensionsMap, int]) -> None:
    """Header fields, payload (CSRCs, extensions and padding skipped) and the audio
    level (one- or two-byte form) are what ``RtpPacket.parse`` reads."""
    data, extensions, audio_id = case
    expected = RtpPacket.parse(data, extensions)
    view = rtpread.parse(data, audio_id)
    assert view is not None
    assert (view.payload_type, view.marker, view.sequence_number, view.timestamp, view.ssrc) == (
        expected.payload_type,
        expected.marker,
        expected.sequence_number,
        expected.timestamp,
        expected.ssrc,
    )
    assert view.payload == expected.payload
    assert view.audio_level == expected.extensions.audio_level


@given(packets(), st.integers(0, 127), st.integers(0, 0xFFFFFFFF))
def test_rtx_unwraps_as_aiortc_does(
    case: tuple[bytes, HeaderExtensionsMap, int], apt: int, ssrc: int
) -> None:
    """A retransmission's original sequence number, payload type, SSRC and payload are
    those of aiortc's ``unwrap_rtx``; one too short to carry a sequence number is None."""
    data, extensions, _audio_id = case
    rtx = RtpPacket.parse(data, extensions)
    view = rtpread.parse(data)
    assert view is not None
    unwrapped = rtpread.unwrap_rtx(view, apt, ssrc)
    if len(rtx.payload) < 2:
        assert unwrapped is None
        return
    expected = unwrap_rtx(rtx, payload_type=apt, ssrc=ssrc)
    assert unwrapped is not None
    assert (unwrapped.payload_type, unwrapped.sequence_number, unwrapped.ssrc) == (
        expected.payload_type,
        expected.sequence_number,
        expected.ssrc,
    )
    assert (unwrapped.payload, unwrapped.timestamp) == (expected.payload, expected.timestamp)


@st.composite
def extended(draw: st.DrawFn) -> bytes:
    """Arbitrary bytes, or a header with a one- or two-byte extension block of arbitrary
    elements (truncated ones included) and an arbitrary rest."""
    if draw(st.booleans()):
        return draw(st.binary(max_size=80))
    block = draw(st.binary(max_size=24))
    words = (len(block) + 3) // 4 if draw(st.booleans()) else draw(st.integers(0, 8))
    profile = draw(st.sampled_from([b"\xbe\xde", b"\x10\x00", b"\x10\x01"]))
    header = bytes([0x90, draw(st.integers(0, 255))]) + draw(st.binary(min_size=10, max_size=10))
    return header + profile + words.to_bytes(2, "big") + block + draw(st.binary(max_size=16))


@given(extended(), st.integers(0, 15))
def test_anything_aiortc_accepts_reads_the_same(data: bytes, audio_id: int) -> None:
    """Arbitrary bytes and extension blocks, with or without an audio level ID: the
    reader refuses (None) exactly what aiortc's parser refuses, and reads what it
    accepts as aiortc does, audio level included."""
    try:
        expected = RtpPacket.parse(data, extension_map(0, 0, audio_id))
    except (ValueError, struct.error):
        expected = None
    view = rtpread.parse(data, audio_id)
    if expected is None:
        assert view is None
        return
    assert view is not None
    assert (view.sequence_number, view.ssrc, view.payload, view.audio_level) == (
        expected.sequence_number,
        expected.ssrc,
        expected.payload,
        expected.extensions.audio_level,
    )


def test_a_truncated_extension_element_is_refused():
    """An element whose declared length runs past the extension block: no packet (and
    so no audio level), as aiortc raises "value is truncated"."""
    header = bytes([0x90, 96]) + bytes(10)
    data = header + b"\xbe\xde\x00\x01\x1f\x85\x00\x00" + b"payload"
    assert rtpread.parse(data, 1) is None
    assert rtpread.parse(data) is None
    try:
        RtpPacket.parse(data, extension_map(0, 0, 1))
    except ValueError as error:
        assert "truncated" in str(error)
    else:
        raise AssertionError("aiortc accepted it")


def test_malformed_packets_are_refused():
    """Too short, another version, truncated CSRCs or extension, padding past the
    payload: None, as aiortc raises."""
    header = bytes([0x80, 96]) + bytes(10)
    assert rtpread.parse(header[:11]) is None
    assert rtpread.parse(bytes([0x40]) + header[1:]) is None
    assert rtpread.parse(bytes([0x82]) + header[1:] + bytes(4)) is None
    assert rtpread.parse(bytes([0x90]) + header[1:] + b"\xbe\xde\x00\x02" + bytes(4)) is None
    assert rtpread.parse(bytes([0xA0]) + header[1:] + b"ab\x05") is None
    assert rtpread.parse(bytes([0xA0]) + header[1:] + b"ab\x00") is None
    for data in (header[:11], bytes([0x82]) + header[1:] + bytes(4)):
        try:
            RtpPacket.parse(data)
        except ValueError:
            continue
        raise AssertionError("aiortc accepted it")
