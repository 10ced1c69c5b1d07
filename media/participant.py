"""A client-side participant on aiortc with synthetic sources: used by
``coreview simulate``, the tests and the benchmarks. It speaks only what a browser
would: an offer with its sendonly sources and recvonly slots, and an answer."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

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
from av import AudioFrame, VideoFrame

from media import hooks
from media.synthetic import (
    AUDIO_RATE,
    StampedVideoTrack,
    ToneTrack,
    dominant_frequency,
    read_counter,
)

VIDEO_SLOTS = 4
AUDIO_SLOTS = 3
STALL_SECONDS = 1.5
"""A video slot with no decodable frame for this long asks for a keyframe, as
browsers do (aiortc's receiver only does on a decoder error)."""
NACK_REPEAT_SECONDS = 0.1
NACK_RETRIES = 10
"""A packet still missing is NACKed again every NACK_REPEAT_SECONDS, up to NACK_RETRIES
times, as browsers do (aiortc's receiver NACKs a loss once, when it finds it: a lost
retransmission then froze the picture until the next loss)."""


@dataclass
class Received:
    """What arrived on one receiving slot."""

    counters: list[int] = field(default_factory=list)
    arrived_at: list[float] = field(default_factory=list)
    sizes: set[tuple[int, int]] = field(default_factory=set)
    audio_frames: int = 0
    frequency: float | None = None
    first_at: float | None = None


def make_sources(publish: tuple[str, ...], fps: int = 15) -> dict[str, MediaStreamTrack]:
    sizes = {"face": (640, 480), "document": (1280, 720)}
    tracks: dict[str, MediaStreamTrack] = {}
    for source in publish:
        if source == "audio":
            tracks[source] = ToneTrack()
        else:
            tracks[source] = StampedVideoTrack(source, *sizes[source], fps)
    return tracks


class SyntheticParticipant:
    def __init__(
        self,
        sources: Mapping[str, MediaStreamTrack],
        addresses: tuple[str, ...] = ("127.0.0.1",),
        video_slots: int = VIDEO_SLOTS,
        audio_slots: int = AUDIO_SLOTS,
    ) -> None:
        self.sources = dict(sources)
        self.pc = RTCPeerConnection(
            RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
        )
        self._addresses = addresses
        self._send = {
            source: self.pc.addTransceiver(track, direction="sendonly")
            for source, track in self.sources.items()
        }
        self._recv = [
            self.pc.addTransceiver("video", direction="recvonly") for _ in range(video_slots)
        ]
        self._recv += [
            self.pc.addTransceiver("audio", direction="recvonly") for _ in range(audio_slots)
        ]
        self.received: dict[str, Received] = {}
        self.keyframe_requests = 0
        self._readers: set[asyncio.Task[None]] = set()
        self.started_at = time.monotonic()

    async def offer(self) -> tuple[str, dict[str, str]]:
        """The offer SDP and the map of its sending mids to sources."""
        hooks.control_host_candidates(self.pc, self._addresses, 0, 0)
        await self.pc.setLocalDescription(await self.pc.createOffer())
        publish = {t.mid or "": source for source, t in self._send.items()}
        return self.pc.localDescription.sdp, publish

    async def accept(self, answer_sdp: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(answer_sdp, "answer"))
        # aiortc drops retransmissions of several video tracks without this (see hooks)
        hooks.register_rtx_ssrcs(self.pc, sdp.SessionDescription.parse(answer_sdp))
        for transceiver in self._recv:
            if transceiver.currentDirection in ("recvonly", "sendrecv"):
                mid = transceiver.mid or ""
                self.received[mid] = Received()
                task = asyncio.create_task(self._read(mid, transceiver.receiver.track))
                self._readers.add(task)
        self._readers.add(asyncio.create_task(self._watch_stalls()))
        self._readers.add(asyncio.create_task(self._repeat_nacks()))

    async def _read(self, mid: str, track: MediaStreamTrack) -> None:
        slot = self.received[mid]
        audio: list[float] = []
        try:
            while True:
                frame = await track.recv()
                now = time.monotonic()
                if slot.first_at is None:
                    slot.first_at = now
                if isinstance(frame, VideoFrame):
                    luma = frame.to_ndarray(format="yuv420p")[: frame.height]
                    slot.counters.append(read_counter(luma))
                    slot.arrived_at.append(now)
                    slot.sizes.add((frame.width, frame.height))
                elif isinstance(frame, AudioFrame):
                    slot.audio_frames += 1
                    if len(audio) < AUDIO_RATE:  # up to one second of the first channel
                        channels = len(frame.layout.channels)
                        audio.extend(frame.to_ndarray().reshape(-1)[::channels].tolist())
                        # a quarter second already tells the tone (4 Hz bins): a short
                        # session on a loaded machine may get no more
                        if len(audio) >= AUDIO_RATE // 4:
                            slot.frequency = dominant_frequency(np.array(audio), frame.sample_rate)
        except MediaStreamError:
            return

    async def _watch_stalls(self) -> None:
        while True:
            await asyncio.sleep(STALL_SECONDS / 2)
            now = time.monotonic()
            for transceiver in self._recv:
                slot = self.received.get(transceiver.mid or "")
                if transceiver.kind != "video" or slot is None or not slot.arrived_at:
                    continue
                if now - slot.arrived_at[-1] > STALL_SECONDS:
                    for ssrc in hooks.remote_ssrcs(transceiver.receiver):
                        self.keyframe_requests += 1
                        hooks.send_pli(transceiver.receiver, ssrc)

    async def _repeat_nacks(self) -> None:
        asked: dict[str, dict[int, int]] = {}  # per receiving mid: missing seq → repeats
        while True:
            await asyncio.sleep(NACK_REPEAT_SECONDS)
            for transceiver in self._recv:
                receiver = transceiver.receiver
                ssrcs = hooks.remote_ssrcs(receiver)
                if not ssrcs:
                    continue
                previous = asked.get(transceiver.mid or "", {})
                # a loss found since the last pass was just NACKed by aiortc itself
                missing = {
                    seq: previous[seq] + 1 if seq in previous else 0
                    for seq in hooks.missing_packets(receiver)
                }
                asked[transceiver.mid or ""] = missing
                again = [seq for seq, count in missing.items() if 0 < count <= NACK_RETRIES]
                if again:
                    hooks.send_nack(receiver, ssrcs[-1], again)

    async def close(self) -> None:
        for task in self._readers:
            task.cancel()
        await asyncio.gather(*self._readers, return_exceptions=True)
        await self.pc.close()
