"""Pieces the relay benchmarks share: pre-encoded media, sources that hand it to
senders without encoding, and the peer-connection set-up both ends share.

Video is encoded once, up front, with libvpx through PyAV: a cycle of stamped frames,
frame 0 a keyframe; when a far end asks for a keyframe (PLI) the source starts the
cycle again. A track whose ``recv()`` returns ``av.Packet`` is packetised by aiortc's
sender without encoding, so publishers cost the same in every run and their bitrate is
the one chosen here. A little noise below the counter row keeps libvpx at the target
bitrate (a static page would be a few kbit/s).

Frame n of the cycle carries counter n (``media.synthetic``); its bytes identify it
too. A ``Source`` records when it hands each item over; the receiving side
(``bench.probe``) maps each arrived frame back to the latest item handed over with the
same bytes (or, decoded, the same counter). ``time.monotonic()`` is CLOCK_MONOTONIC,
system-wide on Linux, so client processes and the coordinator share one clock."""

from __future__ import annotations

import asyncio
import base64
import bisect
import dataclasses
import fractions
import json
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np
from aiortc import (
    MediaStreamTrack,
    RTCBundlePolicy,
    RTCConfiguration,
    RTCPeerConnection,
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

    def dump(self, path: Path) -> None:
        """For the client workers (``load``): JSON, the media base64-encoded."""
        text = {
            "videos": {
                name: {"spec": dataclasses.asdict(v.spec), "fps": v.fps, "frames": _b64(v.frames)}
                for name, v in self.videos.items()
            },
            "audio": _b64(self.audio),
        }
        path.write_text(json.dumps(text))

    @classmethod
    def load(cls, path: Path) -> Media:
        text = json.loads(path.read_text())
        videos = {
            name: EncodedVideo(VideoSpec(**v["spec"]), v["fps"], _unb64(v["frames"]))
            for name, v in text["videos"].items()
        }
        return cls(videos, _unb64(text["audio"]))


def _b64(items: list[bytes]) -> list[str]:
    return [base64.b64encode(item).decode() for item in items]


def _unb64(items: list[str]) -> list[bytes]:
    return [base64.b64decode(item) for item in items]


# -- publishing ----------------------------------------------------------------------------


class ProxyTrack(MediaStreamTrack):
    """What one sender sees of a ``Source``: its packets, handed over as they come."""

    def __init__(self, source: Source) -> None:
        super().__init__()
        self.kind = source.kind
        self.source = source
        self.active = False
        """Set on the first ``recv()``: only a running sender is handed packets (a queue
        filled before would burst stale frames into the connection)."""
        self.queue: asyncio.Queue[av.Packet[Any] | None] = asyncio.Queue()

    async def recv(self) -> av.Packet[Any]:
        if not self.active:
            self.active = True
            self.source.start()
        packet = await self.queue.get()
        if packet is None or self.readyState != "live":
            raise MediaStreamError
        return packet


class Source:
    """One publisher's pre-encoded track, paced, and handed to every active proxy at the
    same moment: paths fed by one source share each item's hand-over time, so their
    arrival times compare directly. A keyframe request (PLI) from any of them restarts
    the cycle (frame 0, the keyframe) for all, as a browser's encoder would."""

    def __init__(self, name: str, kind: str, items: list[bytes], interval: float, clock: int):
        self.name, self.kind, self.items = name, kind, items
        self.interval = interval
        self.ticks = round(interval * clock)
        self.time_base = fractions.Fraction(1, clock)
        self.proxies: list[ProxyTrack] = []
        self.handed_at: list[float] = []
        """Hand-over time of each item, by index."""
        self.position: list[int] = []
        """Cycle position (= stamped counter) of each item, by index."""
        self.keyframes_sent = 0
        self._by_position: dict[int, list[int]] = {}
        self._lookup = {data: n for n, data in enumerate(items)}
        self._restart = True
        self._task: asyncio.Task[None] | None = None

    def proxy(self) -> ProxyTrack:
        proxy = ProxyTrack(self)
        self.proxies.append(proxy)
        return proxy

    def request_keyframe(self) -> None:
        self._restart = True

    def start(self) -> None:
        self._restart = True  # a new path starts on a keyframe
        if self._task is None:
            self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        start = time.monotonic()
        place = 0
        while True:
            index = len(self.handed_at)
            delay = start + index * self.interval - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if self._restart and self.kind == "video":
                self.keyframes_sent += place != 0
                place = 0
            self._restart = False
            now = time.monotonic()
            self.handed_at.append(now)
            self.position.append(place)
            self._by_position.setdefault(place, []).append(index)
            for proxy in self.proxies:
                if proxy.active:
                    packet = av.Packet(self.items[place])
                    packet.pts = index * self.ticks
                    packet.time_base = self.time_base
                    proxy.queue.put_nowait(packet)
            place = (place + 1) % len(self.items)

    def position_of(self, data: bytes) -> int | None:
        return self._lookup.get(data)

    def index_of(self, position: int, arrived: float) -> int | None:
        """The latest item handed over with this position before ``arrived``."""
        indexes = self._by_position.get(position, [])
        at = bisect.bisect_right(indexes, arrived, key=lambda n: self.handed_at[n]) - 1
        return indexes[at] if at >= 0 else None

    async def close(self) -> None:
        for proxy in self.proxies:
            proxy.queue.put_nowait(None)
            proxy.stop()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


def sources(media: Media) -> dict[str, Source]:
    """A session's three sources: face, document, tone."""
    made = {
        name: Source(name, "video", video.frames, 1 / video.fps, VIDEO_CLOCK)
        for name, video in media.videos.items()
    }
    made["audio"] = Source("audio", "audio", media.audio, AUDIO_SAMPLES / AUDIO_RATE, AUDIO_RATE)
    return made


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


def luma_counter(frame: av.VideoFrame) -> int:
    """The stamped counter, reading only the top rows of the luma plane."""
    plane = frame.planes[0]
    rows = np.frombuffer(memoryview(plane), np.uint8, count=plane.line_size * BLOCK)
    return read_counter(rows.reshape(BLOCK, plane.line_size))


def percentile(values: Iterable[float], q: float) -> float | None:
    ordered = sorted(values)
    if not ordered:
        return None
    return float(np.percentile(ordered, q))
