"""Pieces of the relay benchmark that run in the measuring process: pre-encoded media,
publishers that send it without encoding, subscribers that decode and read the stamped
counters, and the peer-connection set-up both ends share.

Video is encoded once, up front, with libvpx through PyAV: a cycle of stamped frames,
frame 0 a keyframe; when the far end asks for a keyframe (PLI) the publisher starts
the cycle again. A track whose ``recv()`` returns ``av.Packet`` is packetised
by aiortc's sender without encoding, so publishers cost the same in every run and their
bitrate is the one chosen here. A little noise below the counter row keeps libvpx at the
target bitrate (a static page would be a few kbit/s).

Frame n of the cycle carries counter n (``media.synthetic``). Publishers record when
they hand each frame to their sender; subscribers read the counter of each decoded
frame, map it to the latest frame sent with that counter, and keep the arrival time.
Both are in this process, so ``time.monotonic()`` is one clock (CLOCK_MONOTONIC is
system-wide on Linux in any case)."""

from __future__ import annotations

import asyncio
import fractions
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import av
import numpy as np
from aiortc import (
    MediaStreamTrack,
    RTCBundlePolicy,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpTransceiver,
    RTCSessionDescription,
    sdp,
)
from aiortc.mediastreams import MediaStreamError

from media import hooks
from media.synthetic import BLOCK, PATTERNS, read_counter, stamp_counter

VIDEO_CLOCK = 90_000
AUDIO_RATE = 48_000
AUDIO_SAMPLES = 960  # 20 ms of Opus
LOOPBACK = ("127.0.0.1",)


@dataclass(frozen=True)
class VideoSpec:
    source: str
    width: int
    height: int
    bitrate: int
    """Target in bits per second."""


FACE = VideoSpec("face", 640, 480, 500_000)
DOCUMENT = VideoSpec("document", 1280, 720, 3_000_000)
VIDEO_SOURCES = (FACE, DOCUMENT)


@dataclass
class EncodedVideo:
    spec: VideoSpec
    fps: int
    frames: list[bytes]
    """The cycle: frame n carries counter n; frame 0 is a keyframe, the only one."""

    @property
    def cycle(self) -> int:
        return len(self.frames)

    @property
    def bitrate(self) -> float:
        """Bits per second of the cycle as sent without keyframe requests."""
        return sum(len(f) for f in self.frames) * 8 * self.fps / self.cycle


def _encoder(spec: VideoSpec, fps: int) -> av.VideoCodecContext:
    """libvpx as aiortc configures it (realtime, CBR), at ``spec.bitrate``."""
    codec = av.CodecContext.create("libvpx", "w")
    codec.width, codec.height, codec.pix_fmt = spec.width, spec.height, "yuv420p"
    codec.bit_rate = spec.bitrate
    codec.time_base = fractions.Fraction(1, VIDEO_CLOCK)
    codec.framerate = fractions.Fraction(fps, 1)
    codec.gop_size = 100_000  # keyframes only where asked for
    codec.qmin, codec.qmax = 2, 56
    codec.thread_count = 1
    rate = str(spec.bitrate)
    codec.options = {
        "bufsize": rate,
        "minrate": rate,
        "maxrate": rate,
        "cpu-used": "-6",
        "deadline": "realtime",
        "lag-in-frames": "0",
        "partitions": "0",
        "static-thresh": "1",
        "undershoot-pct": "100",
        "overshoot-pct": "15",
    }
    return codec


def _frames(spec: VideoSpec, count: int, noise: int, seed: int) -> list[av.VideoFrame]:
    rng = np.random.default_rng(seed)
    page = PATTERNS[spec.source](spec.width, spec.height).astype(np.int16)
    chroma = np.full((spec.height // 2, spec.width), 128, dtype=np.uint8)
    frames = []
    for counter in range(count):
        jitter = rng.integers(-noise, noise + 1, size=(spec.height - BLOCK, spec.width))
        luma = np.empty((spec.height, spec.width), dtype=np.uint8)
        luma[:BLOCK] = page[:BLOCK]
        luma[BLOCK:] = np.clip(page[BLOCK:] + jitter, 0, 255)
        stamp_counter(luma, counter)
        frames.append(av.VideoFrame.from_ndarray(np.vstack([luma, chroma]), format="yuv420p"))
    return frames


def _encode(codec: av.VideoCodecContext, frame: av.VideoFrame, pts: int, key: bool) -> bytes:
    frame.pts = pts
    frame.pict_type = av.video.frame.PictureType.I if key else av.video.frame.PictureType.NONE
    return b"".join(bytes(packet) for packet in codec.encode(frame))


def encode_video(spec: VideoSpec, fps: int, seconds: float, noise: int = 4) -> EncodedVideo:
    """Encode a cycle of ``seconds``; rate control warms up on a first pass."""
    count = max(2, round(seconds * fps))
    frames = _frames(spec, count, noise, seed=spec.width)
    step = VIDEO_CLOCK // fps
    codec = _encoder(spec, fps)
    for n, frame in enumerate(frames[: 2 * fps]):  # warm-up pass, thrown away
        _encode(codec, frame, n * step, key=n == 0)
    cycle = [_encode(codec, f, (2 * fps + n) * step, key=n == 0) for n, f in enumerate(frames)]
    return EncodedVideo(spec, fps, cycle)


def encode_tone(frequency: float = 440.0) -> list[bytes]:
    """One second of a tone as 20 ms Opus packets (a whole number of periods, so the
    cycle loops without a click)."""
    codec = av.CodecContext.create("libopus", "w")
    codec.bit_rate = 64_000
    codec.sample_rate = AUDIO_RATE
    codec.format = "s16"
    codec.layout = "stereo"
    codec.time_base = fractions.Fraction(1, AUDIO_RATE)
    packets: list[bytes] = []
    for n in range(AUDIO_RATE // AUDIO_SAMPLES):
        t = (np.arange(AUDIO_SAMPLES) + n * AUDIO_SAMPLES) / AUDIO_RATE
        wave = (np.sin(2 * math.pi * frequency * t) * 8000).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(
            np.repeat(wave, 2).reshape(1, -1), format="s16", layout="stereo"
        )
        frame.sample_rate = AUDIO_RATE
        frame.pts = n * AUDIO_SAMPLES
        packets += [bytes(p) for p in codec.encode(frame)]
    return packets


@dataclass
class Media:
    """Everything a publisher sends, encoded once per run."""

    videos: dict[str, EncodedVideo]
    audio: list[bytes]

    @classmethod
    def encode(cls, fps: int = 15, seconds: float = 8.0) -> Media:
        videos = {spec.source: encode_video(spec, fps, seconds) for spec in VIDEO_SOURCES}
        return cls(videos, encode_tone())


# -- publishing ----------------------------------------------------------------------------


class _Paced(MediaStreamTrack):
    """Hands out item n at start + n × interval."""

    def __init__(self, interval: float) -> None:
        super().__init__()
        self.interval = interval
        self.index = 0
        self._start: float | None = None

    async def _wait_turn(self) -> None:
        if self._start is None:
            self._start = time.monotonic()
        delay = self._start + self.index * self.interval - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)


class PacketVideoTrack(_Paced):
    """Pre-encoded video. On ``request_keyframe()`` the next frame is the cycle's first
    (a keyframe), as a browser sends one at once: VP8 delta frames cannot follow a
    keyframe encoded apart (entropy contexts and references would differ)."""

    kind = "video"

    def __init__(self, video: EncodedVideo) -> None:
        super().__init__(1 / video.fps)
        self.video = video
        self.sent_at: list[float] = []
        """Send time of each frame, by frame index."""
        self.keyframes_sent = 0
        """Keyframes sent on request."""
        self._position = 0
        self._latest: dict[int, int] = {}  # position in the cycle (= counter) → index
        self._keyframe_wanted = False

    def request_keyframe(self) -> None:
        self._keyframe_wanted = True

    async def recv(self) -> av.Packet[Any]:
        if self.readyState != "live":
            raise MediaStreamError
        await self._wait_turn()
        if self._keyframe_wanted and self._position != 0:
            self._position = 0
            self.keyframes_sent += 1
        self._keyframe_wanted = False
        packet = av.Packet(self.video.frames[self._position])
        packet.pts = self.index * VIDEO_CLOCK // self.video.fps
        packet.time_base = fractions.Fraction(1, VIDEO_CLOCK)
        self._latest[self._position] = self.index
        self.sent_at.append(time.monotonic())
        self._position = (self._position + 1) % self.video.cycle
        self.index += 1
        return packet

    def frame_index(self, counter: int) -> int | None:
        """The latest frame sent with this counter (latency stays far below the time
        until a counter comes round again)."""
        return self._latest.get(counter)


class PacketAudioTrack(_Paced):
    kind = "audio"

    def __init__(self, packets: list[bytes]) -> None:
        super().__init__(AUDIO_SAMPLES / AUDIO_RATE)
        self.packets = packets

    async def recv(self) -> av.Packet[Any]:
        if self.readyState != "live":
            raise MediaStreamError
        await self._wait_turn()
        packet = av.Packet(self.packets[self.index % len(self.packets)])
        packet.pts = self.index * AUDIO_SAMPLES
        packet.time_base = fractions.Fraction(1, AUDIO_RATE)
        self.index += 1
        return packet


def new_pc() -> RTCPeerConnection:
    # MAX_BUNDLE: with the default policy aiortc never starts a second video sender
    return RTCPeerConnection(
        RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
    )


async def make_offer(pc: RTCPeerConnection) -> str:
    hooks.control_host_candidates(pc, LOOPBACK, 0, 0)  # aioice skips 127.0.0.1 itself
    await pc.setLocalDescription(await pc.createOffer())
    return str(pc.localDescription.sdp)


async def accept_answer(pc: RTCPeerConnection, answer: str) -> None:
    await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
    hooks.register_rtx_ssrcs(pc, sdp.SessionDescription.parse(answer))


async def make_answer(pc: RTCPeerConnection) -> str:
    """Answer the remote offer (``set_offer``), once the transceivers are filled."""
    hooks.control_host_candidates(pc, LOOPBACK, 0, 0)
    await pc.setLocalDescription(await pc.createAnswer())
    return str(pc.localDescription.sdp)


async def set_offer(pc: RTCPeerConnection, offer: str) -> None:
    """Set the remote offer; the caller may then fill transceivers before answering."""
    await pc.setRemoteDescription(RTCSessionDescription(offer, "offer"))
    hooks.register_rtx_ssrcs(pc, sdp.SessionDescription.parse(offer))


class Publisher:
    """A clerk: face, document and tone, pre-encoded; answers keyframe requests."""

    def __init__(self, media: Media) -> None:
        self.pc = new_pc()
        self.video = {s: PacketVideoTrack(v) for s, v in media.videos.items()}
        self.audio = PacketAudioTrack(media.audio)
        self._sending: dict[str, RTCRtpTransceiver] = {}
        for source, track in self.video.items():
            transceiver = self.pc.addTransceiver(track, direction="sendonly")
            # aiortc's sender only flags its encoder on a PLI, which the packet path
            # ignores: hand the request to the track instead
            hooks.on_keyframe_request(transceiver.sender, track.request_keyframe)
            self._sending[source] = transceiver
        self._sending["audio"] = self.pc.addTransceiver(self.audio, direction="sendonly")

    async def offer(self) -> tuple[str, dict[str, str]]:
        offer = await make_offer(self.pc)
        return offer, {t.mid or "": source for source, t in self._sending.items()}

    async def close(self) -> None:
        await self.pc.close()


# -- subscribing ---------------------------------------------------------------------------


@dataclass
class Arrivals:
    """Decoded frames of one subscribed track."""

    first_at: float | None = None
    at: list[float] = field(default_factory=list)
    index: list[int] = field(default_factory=list)
    """Frame index at the publisher (-1: counter unreadable)."""
    audio_frames: int = 0


def luma_counter(frame: av.VideoFrame) -> int:
    """The stamped counter, reading only the top rows of the luma plane."""
    plane = frame.planes[0]
    rows = np.frombuffer(memoryview(plane), np.uint8, count=plane.line_size * BLOCK)
    return read_counter(rows.reshape(BLOCK, plane.line_size))


class Subscriber:
    """An approver that only receives: two video slots and one audio slot."""

    def __init__(self, publisher: Publisher) -> None:
        self.publisher = publisher
        self.pc = new_pc()
        self.received: dict[str, Arrivals] = {}
        self.created_at = time.monotonic()
        self._readers: set[asyncio.Task[None]] = set()

    async def offer(self) -> str:
        for kind in ("video", "video", "audio"):
            self.pc.addTransceiver(kind, direction="recvonly")
        return await make_offer(self.pc)

    async def accept(self, answer: str, slots: dict[str, str]) -> None:
        """``slots``: mid → source, as the relay filled them."""
        await accept_answer(self.pc, answer)
        self.listen(slots)

    def listen(self, slots: dict[str, str]) -> None:
        for transceiver in self.pc.getTransceivers():
            source = slots.get(transceiver.mid or "")
            if source is not None and source not in self.received:
                self.received[source] = Arrivals()
                task = asyncio.create_task(self._read(source, transceiver.receiver.track))
                self._readers.add(task)

    async def _read(self, source: str, track: MediaStreamTrack) -> None:
        got = self.received[source]
        sender = self.publisher.video.get(source)
        try:
            while True:
                frame = await track.recv()
                now = time.monotonic()
                if got.first_at is None:
                    got.first_at = now
                if isinstance(frame, av.VideoFrame) and sender is not None:
                    index = sender.frame_index(luma_counter(frame))
                    got.at.append(now)
                    got.index.append(-1 if index is None else index)
                else:
                    got.audio_frames += 1
        except MediaStreamError:
            return

    def has_video(self) -> bool:
        return all(
            self.received.get(s.source, Arrivals()).first_at is not None for s in VIDEO_SOURCES
        )

    async def close(self) -> None:
        for task in self._readers:
            task.cancel()
        await asyncio.gather(*self._readers, return_exceptions=True)
        await self.pc.close()


def percentile(values: Iterable[float], q: float) -> float | None:
    ordered = sorted(values)
    if not ordered:
        return None
    return float(np.percentile(ordered, q))
