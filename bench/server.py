"""The relay under test, alone in a process so that its CPU time is its own.

``python -m bench.server room|relay`` reads one JSON request per line on stdin and
writes one JSON reply per line on stdout (same ``id``); logs go to stderr. It exits on
``quit``, at the end of stdin, or after ``--max-seconds`` whatever happens.

    {"op": "publish", "session": k, "sdp": offer, "publish": {mid: source}} → {"sdp"}
    {"op": "subscribe", "session": k, "name": n, "sdp": offer} → {"sdp", "slots": {mid: source}}
    {"op": "cpu"} → {"cpu": user + system seconds of this process, all threads}
    {"op": "stats"} → relay-specific counters, with the loop lag and UDP drops
    {"op": "probe"} → {"loop_lag_ms": {p50, p99, max, n} since the last probe, "udp": {…}}
    {"op": "api"} → {"url", "username", "password"} of the web app (``--with-api``)
    {"op": "quit"} → {}

``--loop asyncio|uvloop`` chooses the event loop (media/loops.py); ``--with-api DIR``
also serves coreview's web app (``create_app``, demo data seeded into DIR) on the same
loop, as the service shares one process between media and API.

- ``room``: coreview's ``MediaRoom`` (RTP-level forwarding), one per session; the
  publisher joins as ``clerk``, subscribers publish nothing.
- ``record``: the same, with a capture writer (recorder/capture.py) on every published
  track as the live service attaches it, closed chunks fsync'ed, hashed and stored in a
  thread (``--record-dir``); ``stats`` lists the stored chunks and their media seconds.
- ``relay``: aiortc's ``MediaRelay``: one server peer receives (decodes) the publisher's
  tracks, each subscriber peer sends them re-encoded by aiortc. Subscriber proxies are
  unbuffered (a slow encoder skips to the newest frame instead of queueing), and a
  sink reads each source from the start so nothing queues before a subscriber comes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
from pathlib import Path
from typing import Any, Protocol

from aiortc import MediaStreamTrack, RTCPeerConnection
from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import MediaStreamError

from bench.child import serve_lines
from bench.common import LOOPBACK, make_answer, new_pc, set_offer
from bench.serverprobe import Api, LoopLag, udp_errors
from media import loops
from media.forwarder import PublishedTrack
from media.room import INGESTS, SENDS, SOURCES, MediaConfig, MediaRoom
from recorder.capture import ClosedChunk, TrackCapture, TrackInfo
from recorder.store import EvidenceStore
from signaling.node.serving import settle_heap

logger = logging.getLogger(__name__)


class Relay(Protocol):
    async def publish(self, session: int, offer: str, publish: dict[str, str]) -> str: ...

    async def subscribe(
        self, session: int, name: str, offer: str
    ) -> tuple[str, dict[str, str]]: ...

    def stats(self) -> dict[str, Any]: ...

    async def close(self) -> None: ...


class Capturing:
    """Captures on every published track, chunks stored off the loop, as in the service
    (without the database rows and log events)."""

    def __init__(self, root: Path, chunk_seconds: float) -> None:
        self.store = EvidenceStore(root)
        self.chunk_seconds = chunk_seconds
        self.chunks: dict[str, float] = {}
        """Stored chunk hash → media seconds."""
        self._tasks: set[asyncio.Task[None]] = set()

    def attach(self, session: int, track: PublishedTrack) -> None:
        info = TrackInfo(
            f"bench-{session}", "BENCH", 0, track.participant, track.source, track.kind,
            track.mime_type.lower(), f"{session}/{track.source}",
        )  # fmt: skip
        track.sinks.append(
            TrackCapture(
                info,
                self.store.root / "incoming",
                self.chunk_seconds,
                on_chunk=self._closed,
                on_event=lambda _kind, _detail: None,
                on_failure=lambda code, detail: logger.error("capture: %s %s", code, detail),
                request_keyframe=track.request_keyframe,
                sender_report=lambda: track.last_report,
            )
        )

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _closed(self, chunk: ClosedChunk) -> None:
        async def keep() -> None:
            stored = await asyncio.to_thread(self.store.adopt, chunk.path)
            self.chunks[stored.sha256] = chunk.seconds

        self._spawn(keep())

    async def close(self) -> None:
        while self._tasks:
            await asyncio.gather(*tuple(self._tasks), return_exceptions=True)


class RoomRelay:
    """coreview's forwarding (and capture, if given one)."""

    def __init__(self, capturing: Capturing | None = None) -> None:
        self.config = MediaConfig(announced_addresses=LOOPBACK)
        self.rooms: dict[int, MediaRoom] = {}
        self.capturing = capturing

    def _room(self, session: int) -> MediaRoom:
        if session not in self.rooms:
            capturing = self.capturing
            on_track = (
                (lambda track: capturing.attach(session, track)) if capturing is not None else None
            )
            self.rooms[session] = MediaRoom(f"bench-{session}", self.config, on_track=on_track)
        return self.rooms[session]

    async def publish(self, session: int, offer: str, publish: dict[str, str]) -> str:
        return await self._room(session).connect("clerk", offer, publish, frozenset(SOURCES))

    async def subscribe(self, session: int, name: str, offer: str) -> tuple[str, dict[str, str]]:
        room = self._room(session)
        answer = await room.connect(name, offer, {}, frozenset())
        slots = {mid: shown["source"] for mid, shown in room.slots(name).items() if shown}
        return answer, slots

    def stats(self) -> dict[str, Any]:
        tracks = [
            track
            for room in self.rooms.values()
            for source in SOURCES
            if (track := room.track("clerk", source)) is not None
        ]
        stats: dict[str, Any] = {
            "packets_in": sum(t.packets for t in tracks),
            "packets_out": sum(leg.forwarded for t in tracks for leg in t.legs),
            "keyframe_requests": sum(t.keyframe_requests for t in tracks),
        }
        if self.capturing is not None:
            stats["store"] = str(self.capturing.store.root)
            stats["chunks"] = dict(self.capturing.chunks)
        return stats

    async def close(self) -> None:
        for room in self.rooms.values():
            await room.close()
        if self.capturing is not None:
            await self.capturing.close()


class MediaRelayServer:
    """aiortc's MediaRelay: decode once, re-encode per subscriber."""

    def __init__(self) -> None:
        self.relay = MediaRelay()
        self.pcs: list[RTCPeerConnection] = []
        self.sources: dict[int, dict[str, MediaStreamTrack]] = {}
        self._sinks: set[asyncio.Task[None]] = set()

    async def publish(self, session: int, offer: str, publish: dict[str, str]) -> str:
        pc = new_pc()
        self.pcs.append(pc)
        await set_offer(pc, offer)
        tracks = self.sources[session] = {}
        for transceiver in pc.getTransceivers():
            source = publish.get(transceiver.mid or "")
            if source is not None:
                transceiver.direction = "recvonly"
                tracks[source] = transceiver.receiver.track
                sink = self.relay.subscribe(transceiver.receiver.track, buffered=False)
                self._sinks.add(asyncio.create_task(self._drain(sink)))
        return await make_answer(pc)

    @staticmethod
    async def _drain(track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                await track.recv()

    async def subscribe(self, session: int, name: str, offer: str) -> tuple[str, dict[str, str]]:
        pc = new_pc()
        self.pcs.append(pc)
        await set_offer(pc, offer)
        tracks = self.sources[session]
        wanted = {"video": ["face", "document"], "audio": ["audio"]}
        slots: dict[str, str] = {}
        for transceiver in pc.getTransceivers():
            left = wanted.get(transceiver.kind, [])
            if not left or left[0] not in tracks:
                transceiver.direction = "inactive"
                continue
            source = left.pop(0)
            transceiver.sender.replaceTrack(self.relay.subscribe(tracks[source], buffered=False))
            transceiver.direction = "sendonly"
            slots[transceiver.mid or ""] = source
        return await make_answer(pc), slots

    def stats(self) -> dict[str, Any]:
        return {"peer_connections": len(self.pcs)}

    async def close(self) -> None:
        for task in self._sinks:
            task.cancel()
        await asyncio.gather(*self._sinks, return_exceptions=True)
        for pc in self.pcs:
            await pc.close()


class Server:
    """One relay with its probes (and the web app, if asked), answering requests."""

    def __init__(self, relay: Relay, api: Api | None) -> None:
        self.relay = relay
        self.api = api
        self.lag = LoopLag()

    async def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request.get("op")
        relay = self.relay
        if op == "publish":
            sdp = await relay.publish(request["session"], request["sdp"], request["publish"])
            return {"sdp": sdp}
        if op == "subscribe":
            answer, slots = await relay.subscribe(
                request["session"], request["name"], request["sdp"]
            )
            return {"sdp": answer, "slots": slots}
        if op == "cpu":
            times = os.times()
            return {"cpu": times.user + times.system}
        if op == "stats":
            return {**relay.stats(), **self.probe()}
        if op == "probe":
            return self.probe()
        if op == "api":
            if self.api is None:
                raise ValueError("started without --with-api")
            return self.api.login
        raise ValueError(f"unknown op {op!r}")

    def probe(self) -> dict[str, Any]:
        return {"loop_lag_ms": self.lag.take(), "udp": udp_errors(), "loop": self.loop}

    @property
    def loop(self) -> str:
        return loops.impl_name(asyncio.get_running_loop())


async def serve(
    mode: str,
    max_seconds: float,
    record_dir: Path | None,
    chunk_seconds: float,
    api_dir: Path | None = None,
) -> None:
    relay: Relay
    if mode == "relay":
        relay = MediaRelayServer()
    else:
        capturing = Capturing(record_dir, chunk_seconds) if record_dir is not None else None
        relay = RoomRelay(capturing)
    server = Server(relay, Api(api_dir) if api_dir is not None else None)
    server.lag.start()
    try:
        if server.api is not None:
            await server.api.start()
        settle_heap()  # as coreview serve does once started
        await serve_lines(server.handle, max_seconds)
    finally:
        await server.lag.close()
        if server.api is not None:
            await server.api.close()
        await relay.close()


def add_media_path_flags(parser: argparse.ArgumentParser) -> None:
    """``--ingest``/``--send``: which media path the room forwards on (media/room.py)."""
    parser.add_argument(
        "--ingest", choices=INGESTS, help="fast: off the socket; aiortc: its transport"
    )
    parser.add_argument("--send", choices=SENDS, help="sync: at once; async: aiortc's coroutines")


def apply_media_path_flags(args: argparse.Namespace) -> None:
    """Set for this process only, before any room exists (unset: the defaults)."""
    if args.ingest:
        os.environ["COREVIEW_MEDIA_INGEST"] = args.ingest
    if args.send:
        os.environ["COREVIEW_MEDIA_SEND"] = args.send


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.server")
    parser.add_argument("mode", choices=("room", "record", "relay"))
    parser.add_argument("--max-seconds", type=float, default=600.0)
    parser.add_argument("--record-dir", type=Path, help="evidence store root (mode record)")
    parser.add_argument("--chunk-seconds", type=float, default=10.0)
    parser.add_argument("--loop", choices=loops.CHOICES, default="auto")
    parser.add_argument("--with-api", type=Path, metavar="DIR", help="also serve the web app")
    add_media_path_flags(parser)
    args = parser.parse_args()
    apply_media_path_flags(args)
    if args.mode == "record" and args.record_dir is None:
        parser.error("mode record needs --record-dir")
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    record_dir = args.record_dir if args.mode == "record" else None
    with asyncio.Runner(loop_factory=loops.loop_factory(args.loop)) as runner:
        runner.run(
            serve(args.mode, args.max_seconds, record_dir, args.chunk_seconds, args.with_api)
        )


if __name__ == "__main__":
    main()
