"""Real encoded RTP payloads for unit tests of the recorder: stamped synthetic frames
encoded and packetised by aiortc's own encoders (VP8, H264, Opus)."""

from __future__ import annotations

import fractions
from dataclasses import dataclass

import numpy as np
from aiortc.codecs import get_encoder
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from av import AudioFrame, VideoFrame

from media.synthetic import AUDIO_RATE, AUDIO_SAMPLES, PATTERNS, VIDEO_CLOCK, stamp_counter


@dataclass
class Packet:
    """What a PacketSink sees (the fields of aiortc's RtpPacket the capture reads)."""

    sequence_number: int
    timestamp: int
    marker: int
    payload_type: int
    ssrc: int
    payload: bytes


CODECS = {
    "video/vp8": RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=97),
    "video/h264": RTCRtpCodecParameters(
        mimeType="video/H264",
        clockRate=90000,
        payloadType=99,
        parameters={"packetization-mode": "1", "profile-level-id": "42e01f"},
    ),
    "audio/opus": RTCRtpCodecParameters(
        mimeType="audio/opus", clockRate=48000, channels=2, payloadType=96
    ),
}


def video_packets(
    codec: str,
    frames: int,
    fps: int = 15,
    size: tuple[int, int] = (640, 480),
    keyframes: tuple[int, ...] = (0,),
    seq: int = 65000,
    start_counter: int = 0,
) -> list[tuple[int, Packet]]:
    """(frame counter, packet) for ``frames`` stamped frames; keyframes forced at the
    given frame numbers (the first is always one). Sequence numbers start at ``seq``."""
    encoder = get_encoder(CODECS[codec])
    width, height = size
    luma = PATTERNS["document"](width, height)
    chroma = np.full((height // 2, width), 128, dtype=np.uint8)
    out = []
    for n in range(frames):
        plane = luma.copy()
        stamp_counter(plane, start_counter + n)
        frame = VideoFrame.from_ndarray(np.vstack([plane, chroma]), format="yuv420p")
        frame.pts = int((start_counter + n) * VIDEO_CLOCK / fps)
        frame.time_base = fractions.Fraction(1, VIDEO_CLOCK)
        payloads, timestamp = encoder.encode(frame, force_keyframe=n in keyframes)
        for index, payload in enumerate(payloads):
            marker = int(index == len(payloads) - 1)
            out.append(
                (start_counter + n, Packet(seq & 0xFFFF, timestamp, marker, 97, 1234, payload))
            )
            seq += 1
    return out


def audio_packets(count: int, seq: int = 100) -> list[Packet]:
    encoder = get_encoder(CODECS["audio/opus"])
    out = []
    for n in range(count):
        t = (np.arange(AUDIO_SAMPLES) + n * AUDIO_SAMPLES) / AUDIO_RATE
        wave = (np.sin(2 * np.pi * 440 * t) * 8000).astype(np.int16)
        frame = AudioFrame.from_ndarray(wave.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = AUDIO_RATE
        frame.pts = n * AUDIO_SAMPLES
        frame.time_base = fractions.Fraction(1, AUDIO_RATE)
        payloads, timestamp = encoder.encode(frame)
        for payload in payloads:
            out.append(Packet((seq + len(out)) & 0xFFFF, timestamp, 1, 96, 5678, payload))
    return out
