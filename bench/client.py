"""A client worker of the relay benchmarks: the clerks and approvers of some sessions,
in one process, decoding nothing (``bench.probe``), so that many run on little CPU.

Each session's sources (face, document, tone) feed two publishers at once: one
connected to the server under test, and, for sessions with a *twin*, one connected
straight to a twin subscriber in this process. Both get every frame at the same
moment, so the server path's arrival minus the twin's is the latency the server adds,
frame by frame and packet by packet, free of what both paths share (packetising,
this process's scheduling).

    python -m bench.client --media FILE [--loop asyncio|uvloop]

Requests (JSON lines, see ``bench.child``; session ids are strings in replies):

    {"op": "open", "sessions": [k…], "twins": [k…], "decode": bool}
        → {"offers": {k: {"publish": sdp, "publish_map": {mid: source}, "subscribe": sdp}}}
    {"op": "connect", "answers": {k: {"publish": sdp, "subscribe": sdp, "slots": {…}}}}
    {"op": "wait_video", "deadline": s}   every subscriber (and twin) has video
    {"op": "window", "t0": t, "t1": t} → figures of frames arrived in [t0, t1]
    {"op": "late_offer", "session": k} → {"sdp"};  {"op": "late_answer", "session": k,
        "sdp": answer, "slots": {…}, "deadline": s} → {"first_ms": [face, document] | null}
    {"op": "verify"} → {"decoded", "matched", "tracks"} (the kept samples, decoded)
    {"op": "cpu"} → {"cpu"};  {"op": "close"} closes every session;  {"op": "quit"}
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from aiortc import RTCPeerConnection, RTCRtpTransceiver

from bench.child import serve_lines
from bench.common import (
    VIDEO_SOURCES,
    Media,
    Source,
    accept_answer,
    make_answer,
    make_offer,
    new_pc,
    set_offer,
    sources,
)
from bench.probe import TrackProbe
from media import hooks, loops

VIDEO = tuple(spec.source for spec in VIDEO_SOURCES)
LOSS_GRACE_SECONDS = 1.0
"""Frames handed over this close to the end of the window are not counted as lost."""


def add_senders(pc: RTCPeerConnection, feeds: dict[str, Source]) -> dict[str, RTCRtpTransceiver]:
    sending = {}
    for name, source in feeds.items():
        transceiver = pc.addTransceiver(source.proxy(), direction="sendonly")
        if source.kind == "video":
            # aiortc's sender only flags its encoder on a PLI: hand it to the source
            hooks.on_keyframe_request(transceiver.sender, source.request_keyframe)
        sending[name] = transceiver
    return sending


def attach(
    pc: RTCPeerConnection, slots: dict[str, str], feeds: dict[str, Source], decode: bool
) -> dict[str, TrackProbe]:
    """A probe on each receiving transceiver ``slots`` (mid → source) names."""
    probes = {}
    for transceiver in pc.getTransceivers():
        name = slots.get(transceiver.mid or "")
        if name is not None and name not in probes:
            probes[name] = TrackProbe(feeds[name], decode)
            probes[name].attach(transceiver.receiver)
    return probes


def has_video(probes: dict[str, TrackProbe]) -> bool:
    return all(name in probes and probes[name].first_at is not None for name in VIDEO)


class ClientSession:
    def __init__(self, media: Media, decode: bool) -> None:
        self.feeds = sources(media)
        self.decode = decode
        self.publisher = new_pc()
        self._publishing = add_senders(self.publisher, self.feeds)
        self.subscriber = new_pc()
        for kind in ("video", "video", "audio"):
            self.subscriber.addTransceiver(kind, direction="recvonly")
        self.probes: dict[str, TrackProbe] = {}
        self.twin_probes: dict[str, TrackProbe] = {}
        self.pcs = [self.publisher, self.subscriber]
        self._late: RTCPeerConnection | None = None

    async def connect_twin(self) -> None:
        """A second publisher on the same sources, straight to a twin subscriber."""
        publisher, subscriber = new_pc(), new_pc()
        self.pcs += [publisher, subscriber]
        sending = add_senders(publisher, self.feeds)
        offer = await make_offer(publisher)
        await set_offer(subscriber, offer)
        slots = {t.mid or "": name for name, t in sending.items()}
        self.twin_probes = attach(subscriber, slots, self.feeds, decode=False)
        await accept_answer(publisher, await make_answer(subscriber))

    async def offers(self) -> dict[str, Any]:
        publish = await make_offer(self.publisher)
        return {
            "publish": publish,
            "publish_map": {t.mid or "": name for name, t in self._publishing.items()},
            "subscribe": await make_offer(self.subscriber),
        }

    async def connect(self, answers: dict[str, Any]) -> None:
        self.probes = attach(self.subscriber, answers["slots"], self.feeds, self.decode)
        await accept_answer(self.publisher, answers["publish"])
        await accept_answer(self.subscriber, answers["subscribe"])

    def ready(self) -> bool:
        return has_video(self.probes) and (not self.twin_probes or has_video(self.twin_probes))

    async def late_offer(self) -> tuple[str, float]:
        self._late = new_pc()
        self.pcs.append(self._late)
        started = time.monotonic()
        for kind in ("video", "video", "audio"):
            self._late.addTransceiver(kind, direction="recvonly")
        return await make_offer(self._late), started

    async def late_answer(
        self, answer: str, slots: dict[str, str], started: float, limit: float
    ) -> list[float] | None:
        assert self._late is not None
        probes = attach(self._late, slots, self.feeds, self.decode)
        await accept_answer(self._late, answer)
        deadline = time.monotonic() + limit
        while not has_video(probes):
            if time.monotonic() > deadline:
                return None
            await asyncio.sleep(0.01)
        return [((probes[name].first_at or started) - started) * 1000 for name in VIDEO]

    def window(self, t0: float, t1: float) -> dict[str, Any]:
        figures: dict[str, Any] = {key: [] for key in WINDOW_LISTS}
        counts = dict.fromkeys(WINDOW_COUNTS, 0)
        for name in VIDEO:
            source = self.feeds[name]
            probe, twin_probe = self.probes.get(name), self.twin_probes.get(name)
            if probe is None:
                continue
            got = {a.index: a for a in probe.frames}
            twin = {a.index: a for a in twin_probe.frames} if twin_probe else {}
            for a in got.values():
                if not t0 <= a.at <= t1:
                    continue
                handed = source.handed_at[a.index]
                figures["frame_ms"].append((a.at - handed) * 1000)
                figures["packet_ms"] += [(p - handed) * 1000 for p in a.packets]
                other = twin.get(a.index)
                if other is not None:
                    figures["added_frame_ms"].append((a.at - other.at) * 1000)
                    if len(other.packets) == len(a.packets):
                        figures["added_packet_ms"] += [
                            (p - q) * 1000 for p, q in zip(a.packets, other.packets, strict=True)
                        ]
            for a in twin.values():
                if t0 <= a.at <= t1:
                    figures["twin_frame_ms"].append((a.at - source.handed_at[a.index]) * 1000)
            counted = [
                n for n, h in enumerate(source.handed_at) if t0 <= h <= t1 - LOSS_GRACE_SECONDS
            ]
            counts["frames_sent"] += len(counted)
            counts["frames_lost"] += sum(1 for n in counted if n not in got)
            if twin_probe is not None:
                counts["twin_frames_lost"] += sum(1 for n in counted if n not in twin)
            counts["unreadable"] += probe.unreadable
        counts["keyframes_sent"] = sum(self.feeds[name].keyframes_sent for name in VIDEO)
        return {**figures, **counts}

    def verify(self) -> tuple[int, int, int]:
        decoded = matched = tracks = 0
        for probe in (*self.probes.values(), *self.twin_probes.values()):
            if probe.source.kind == "video":
                done, right = probe.verify()
                decoded, matched, tracks = decoded + done, matched + right, tracks + 1
        return decoded, matched, tracks

    async def close(self) -> None:
        for source in self.feeds.values():
            await source.close()
        for pc in self.pcs:
            await pc.close()


WINDOW_LISTS = (
    "frame_ms",
    "packet_ms",
    "twin_frame_ms",
    "added_frame_ms",
    "added_packet_ms",
)
"""Per frame (or packet) in the window: latency from hand-over on the server path and on
the twin, and the server path's arrival minus the twin's for the same frame (packet)."""
WINDOW_COUNTS = ("frames_sent", "frames_lost", "twin_frames_lost", "unreadable")


class Worker:
    def __init__(self, media: Media) -> None:
        self.media = media
        self.sessions: dict[str, ClientSession] = {}
        self._late_started: dict[str, float] = {}

    async def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request.get("op")
        if op == "open":
            return {"offers": await self.open(request)}
        if op == "connect":
            for key, answers in request["answers"].items():
                await self.sessions[key].connect(answers)
            return {}
        if op == "wait_video":
            deadline = time.monotonic() + float(request["deadline"])
            while not all(s.ready() for s in self.sessions.values()):
                if time.monotonic() > deadline:
                    raise TimeoutError("no video on every subscriber")
                await asyncio.sleep(0.02)
            return {}
        if op == "window":
            return self.window(float(request["t0"]), float(request["t1"]))
        if op == "late_offer":
            key = str(request["session"])
            sdp, self._late_started[key] = await self.sessions[key].late_offer()
            return {"sdp": sdp}
        if op == "late_answer":
            key = str(request["session"])
            first = await self.sessions[key].late_answer(
                request["sdp"], request["slots"], self._late_started[key], request["deadline"]
            )
            return {"first_ms": first}
        if op == "verify":
            decoded = matched = tracks = 0
            for session in self.sessions.values():
                done, right, count = session.verify()
                decoded, matched, tracks = decoded + done, matched + right, tracks + count
            return {"decoded": decoded, "matched": matched, "tracks": tracks}
        if op == "cpu":
            times = os.times()
            return {"cpu": times.user + times.system}
        if op == "close":
            await self.close()
            return {}
        raise ValueError(f"unknown op {op!r}")

    async def open(self, request: dict[str, Any]) -> dict[str, Any]:
        twins = {str(k) for k in request.get("twins", ())}
        offers = {}
        for k in request["sessions"]:
            key = str(k)
            session = self.sessions[key] = ClientSession(self.media, bool(request["decode"]))
            if key in twins:
                await session.connect_twin()
            offers[key] = await session.offers()
        return offers

    def window(self, t0: float, t1: float) -> dict[str, Any]:
        merged: dict[str, Any] = {key: [] for key in WINDOW_LISTS}
        merged.update(dict.fromkeys((*WINDOW_COUNTS, "keyframes_sent"), 0))
        for session in self.sessions.values():
            for key, value in session.window(t0, t1).items():
                merged[key] += value
        return merged

    async def close(self) -> None:
        for session in self.sessions.values():
            await session.close()
        self.sessions.clear()


async def work(media: Media, max_seconds: float) -> None:
    worker = Worker(media)
    try:
        await serve_lines(worker.handle, max_seconds)
    finally:
        await worker.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.client")
    parser.add_argument("--media", type=Path, required=True, help="bench.common.Media.dump output")
    parser.add_argument("--loop", choices=loops.CHOICES, default="auto")
    parser.add_argument("--max-seconds", type=float, default=900.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    with asyncio.Runner(loop_factory=loops.loop_factory(args.loop)) as runner:
        runner.run(work(Media.load(args.media), args.max_seconds))


if __name__ == "__main__":
    main()
