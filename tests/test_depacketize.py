"""recorder/depacketize.py: RTP packets made by aiortc's own VP8 and H264 packetisers come
back as whole frames that PyAV decodes to the stamped counters sent, in order, also when
packets arrive reordered and duplicated; a frame missing a packet is dropped, not
passed on broken, and malformed payloads give no frame rather than an error."""

from __future__ import annotations

import fractions
import random

import av
import numpy as np
import pytest
from aiortc import RTCRtpCodecParameters
from aiortc.codecs import get_encoder

from media.synthetic import read_counter, stamp_counter
from recorder.chunkfile import Record
from recorder.depacketize import Frame, depacketize

WIDTH, HEIGHT = 480, 240


def packet(seq: int, timestamp: int, marker: int, payload: bytes) -> Record:
    return Record(0, seq, timestamp, marker, 96, 1, payload)


def frames(packets: list[Record], mime_type: str) -> list[Frame]:
    return depacketize(mime_type, packets).frames


def packetise(
    mime_type: str, count: int, first_seq: int, keyframes: frozenset[int] = frozenset({0})
) -> list[Record]:
    """``count`` stamped frames through aiortc's encoder and packetiser; the frames in
    ``keyframes`` are keyframes."""
    encoder = get_encoder(RTCRtpCodecParameters(mimeType=mime_type, clockRate=90_000))
    packets: list[Record] = []
    seq = first_seq
    for counter in range(count):
        noise = np.random.default_rng(counter).integers(0, 256, (HEIGHT, WIDTH))
        luma = noise.astype(np.uint8)  # detail, so that a keyframe takes several packets
        stamp_counter(luma, counter)
        chroma = np.full((HEIGHT // 2, WIDTH), 128, dtype=np.uint8)
        frame = av.VideoFrame.from_ndarray(np.vstack([luma, chroma]), format="yuv420p")
        frame.pts = counter * 6000
        frame.time_base = fractions.Fraction(1, 90_000)
        payloads, timestamp = encoder.encode(frame, force_keyframe=counter in keyframes)
        for index, payload in enumerate(payloads):
            marker = int(index == len(payloads) - 1)
            packets.append(packet(seq & 0xFFFF, timestamp, marker, payload))
            seq += 1
    return packets


def decode(codec: str, data: list[bytes]) -> list[int]:
    context = av.CodecContext.create(codec, "r")
    counters = []
    for chunk in data:
        for picture in context.decode(av.Packet(chunk)):
            counters.append(read_counter(picture.to_ndarray(format="gray")))
    return counters


CODECS = [("video/VP8", "vp8"), ("video/H264", "h264")]


@pytest.mark.parametrize(("mime_type", "codec"), CODECS)
def test_frames_in_order_decode_to_the_counters_sent(mime_type: str, codec: str) -> None:
    """In order, across the sequence-number wrap: every frame, the first a keyframe."""
    packets = packetise(mime_type, 20, 0xFFF0)
    out = list(frames(packets, mime_type))
    assert len(out) == 20
    assert out[0].keyframe and not any(f.keyframe for f in out[1:])
    assert [f.timestamp & 0xFFFFFFFF for f in out] == sorted({p.timestamp for p in packets})
    assert decode(codec, [f.data for f in out]) == list(range(20))


@pytest.mark.parametrize(("mime_type", "codec"), CODECS)
def test_reordered_and_duplicated_packets_make_the_same_frames(mime_type: str, codec: str) -> None:
    """Packets shuffled within a short window and some sent twice give the same frames."""
    packets = packetise(mime_type, 20, 0xFFF0)
    expected = list(frames(packets, mime_type))
    shaken = list(packets)
    rng = random.Random(7)
    for i in range(0, len(shaken) - 4, 3):
        window = shaken[i : i + 4]
        rng.shuffle(window)
        shaken[i : i + 4] = window
    shaken[10:10] = shaken[2:5]  # late duplicates
    assert list(frames(shaken, mime_type)) == expected


@pytest.mark.parametrize(("mime_type", "codec"), CODECS)
def test_a_frame_missing_a_packet_is_dropped(mime_type: str, codec: str) -> None:
    """Losing a packet of the first keyframe drops it and the frames that depend on it;
    output starts at the next keyframe, which decodes."""
    packets = packetise(mime_type, 6, 100, frozenset({0, 3}))
    first_key = [p for p in packets if p.timestamp == packets[0].timestamp]
    assert len(first_key) > 1
    result = depacketize(mime_type, [p for p in packets if p is not first_key[1]])
    out = result.frames
    assert [f.keyframe for f in out] == [True, False, False]
    assert decode(codec, [f.data for f in out]) == [3, 4, 5]


def test_output_starts_at_a_keyframe_that_completes_after_later_frames() -> None:
    """A frame that is whole before the keyframe ahead of it is not let out first: the
    keyframe comes first, then the others in order."""
    packets = packetise("video/VP8", 4, 500)
    key = [p for p in packets if p.timestamp == packets[0].timestamp]
    rest = [p for p in packets if p not in key]
    out = list(frames([rest[-1], *key, *rest[:-1]], "video/VP8"))
    assert decode("vp8", [f.data for f in out]) == [0, 1, 2, 3]


def test_malformed_payloads_give_no_frame() -> None:
    """Payloads that break their format (a VP8 keyframe without its start code, an FU-A
    continuation without a start, an overrunning STAP-A unit, a STAP-B) make no frame
    and raise nothing."""
    vp8 = [packet(1, 3000, 1, b""), packet(2, 6000, 1, bytes([0x10, 0x00, 0x00, 0x00]))]
    assert frames(vp8, "video/VP8") == []
    for payload in (
        bytes([0x7C, 0x05, 0x00]),
        bytes([0x78, 0x00, 0x09, 0x67]),
        bytes([0x79, 0x00]),
    ):
        assert frames([packet(1, 3000, 1, payload)], "video/H264") == []


@pytest.mark.parametrize(("mime_type", "codec"), CODECS)
def test_a_late_retransmission_before_the_keyframe_does_not_drop_the_chunk(
    mime_type: str, codec: str
) -> None:
    """A retransmitted packet of the previous chunk's last frame that lands before the
    keyframe (sorted by sequence) leaves the keyframe and its frames whole."""
    packets = packetise(mime_type, 6, 1000)
    late = packet(995, packets[0].timestamp - 6000, 0, packets[1].payload)
    out = frames([*packets[:3], late, *packets[3:]], mime_type)
    assert decode(codec, [f.data for f in out]) == list(range(6))


def test_an_h264_keyframe_missing_its_first_slice_is_not_taken_while_waiting() -> None:
    """While waiting for a keyframe, an IDR whose first slice (first_mb_in_slice 0) was
    lost is not a frame: output starts at the next whole keyframe."""
    key0 = bytes([0x65, 0x88, 0x84])  # IDR, first_mb_in_slice 0
    key1 = bytes([0x65, 0x40, 0x84])  # IDR, first_mb_in_slice 1
    late_slices = [packet(2, 3000, 1, key1)]
    assert frames(late_slices, "video/H264") == []
    whole = [packet(3, 6000, 0, key0), packet(4, 6000, 1, key1)]
    assert [f.keyframe for f in frames([*late_slices, *whole], "video/H264")] == [True]
