"""Relay benchmark: coreview's RTP-level forwarding (``MediaRoom``) against aiortc's
``MediaRelay`` (decode, then re-encode per subscriber), with a direct
publisher→subscriber link as the latency reference.

    python -m bench.relay --sessions 2 --seconds 10

A session is one clerk publishing face 640x480 (~0.5 Mbit/s), document 1280x720
(~3 Mbit/s, both VP8 at 15 fps, pre-encoded: see ``bench.common``) and Opus audio, and
one approver subscribing to all three. The three paths run one after the other:

1. ``direct``: publisher and subscriber connected to each other.
2. ``room``: through ``MediaRoom`` in a child process (``bench.server``).
3. ``relay``: through ``MediaRelay`` in a child process.

Per path: connect every session, wait for video on every subscriber, warm up, then
measure over ``--seconds``: the child's CPU time (``os.times()`` in the child, all
threads) per media second per session; the latency of each decoded video frame (publisher
hand-over to subscriber decode, one monotonic clock, this process); frames sent in the
window (less a grace second) that never arrived. After the window a second subscriber
joins each session: time from its offer to its first decoded frame on each video track.

With ``--record`` a fourth path runs between ``room`` and ``relay``: ``record``, the room
with a capture writer on every published track (chunks of ``--chunk-seconds`` stored
in a temporary evidence store), alternating with the room ``--pairs`` times. Its CPU
less the room's, summed over those runs, is the
capture's added CPU per session (``capture_added_cpu_per_session`` and, as a share of
forwarding, ``capture_added_percent``). Every chunk it stored is then converted by the
conversion worker; the worker's CPU time over the media seconds converted is
``conversion_cpu_per_media_second``.

Output: a table, then as the last line one JSON object. ``latency_*_ms`` there is the
latency *added* over the direct link (difference of percentiles); ``ratio`` is
MediaRelay's CPU per session over coreview's (how many times cheaper coreview is)."""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.capture import capture_figures, conversion_cost
from bench.common import (
    VIDEO_SOURCES,
    Media,
    Publisher,
    Subscriber,
    accept_answer,
    make_answer,
    percentile,
    set_offer,
)

logger = logging.getLogger("bench.relay")

REPO = Path(__file__).resolve().parents[1]
CONNECT_SECONDS = 30.0
"""Deadline for every subscriber of a path to decode its first video frames."""
LATE_JOIN_SECONDS = 10.0
WARMUP_SECONDS = 1.0
LOSS_GRACE_SECONDS = 1.0
"""Frames sent this close to the end of the window are not counted as lost."""
LOG_TAIL_LINES = 30


class ServerProcess:
    """``python -m bench.server MODE`` as a child: JSON lines over its stdin/stdout."""

    def __init__(self, process: asyncio.subprocess.Process, log_path: Path) -> None:
        self.process = process
        self.log_path = log_path
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def start(
        cls, mode: str, log_path: Path, max_seconds: float, extra: tuple[str, ...] = ()
    ) -> ServerProcess:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        with log_path.open("ab") as log:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bench.server",
                mode,
                "--max-seconds",
                str(max_seconds),
                *extra,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
                cwd=REPO,
                env=env,
                limit=1 << 22,
            )
        return cls(process, log_path)

    async def _read(self) -> None:
        assert self.process.stdout is not None
        while line := await self.process.stdout.readline():
            message = json.loads(line)
            future = self._waiting.pop(message.get("id"), None)
            if future is not None and not future.done():
                future.set_result(message)
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(RuntimeError(f"bench server exited\n{self.log_tail()}"))

    def log_tail(self) -> str:
        lines = self.log_path.read_text("utf-8", errors="replace").splitlines()
        return "\n".join(lines[-LOG_TAIL_LINES:])

    async def call(self, op: str, limit: float = CONNECT_SECONDS, **fields: Any) -> Any:
        assert self.process.stdin is not None
        request_id = next(self._ids)
        future = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = future
        line = json.dumps({"id": request_id, "op": op, **fields}) + "\n"
        self.process.stdin.write(line.encode())
        await self.process.stdin.drain()
        message = await asyncio.wait_for(future, limit)
        if "error" in message:
            raise RuntimeError(f"bench server: {op}: {message['error']}\n{self.log_tail()}")
        message.pop("id")
        return message

    async def cpu(self) -> float:
        return float((await self.call("cpu"))["cpu"])

    async def stop(self) -> None:
        """Ask it to quit; terminate, then kill it (by its PID) if it does not."""
        if self.process.returncode is None:
            try:
                await self.call("quit", limit=10)
                await asyncio.wait_for(self.process.wait(), 10)
            except (TimeoutError, RuntimeError, ConnectionError):
                if self.process.returncode is None:
                    self.process.terminate()
                    try:
                        await asyncio.wait_for(self.process.wait(), 5)
                    except TimeoutError:
                        self.process.kill()
                        await self.process.wait()
        self._reader.cancel()
        await asyncio.gather(self._reader, return_exceptions=True)


@dataclass
class PathResult:
    name: str
    sessions: int
    window_s: float = 0.0
    cpu_s: float | None = None
    latencies_ms: list[float] = field(default_factory=list)
    frames_sent: int = 0
    frames_received: int = 0
    frames_lost: int = 0
    unreadable: int = 0
    late_join_ms: list[float] = field(default_factory=list)
    late_join_failed: int = 0
    keyframes_sent: int = 0
    """Keyframes the publishers sent on request (PLI)."""
    server: dict[str, Any] = field(default_factory=dict)

    @property
    def cpu_per_session(self) -> float | None:
        if self.cpu_s is None or not self.window_s:
            return None
        return self.cpu_s / self.window_s / self.sessions

    def latency(self, q: float) -> float | None:
        return percentile(self.latencies_ms, q)


async def wait_for(condition: Callable[[], bool], limit: float, what: str) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {what} within {limit:.0f} s")
        await asyncio.sleep(0.02)


async def connect_direct(publisher: Publisher) -> Subscriber:
    subscriber = Subscriber(publisher)
    offer, publish = await publisher.offer()
    await set_offer(subscriber.pc, offer)
    answer = await make_answer(subscriber.pc)
    await accept_answer(publisher.pc, answer)
    subscriber.listen(publish)
    return subscriber


async def connect_publisher(server: ServerProcess, publisher: Publisher, session: int) -> None:
    offer, publish = await publisher.offer()
    answer = await server.call("publish", session=session, sdp=offer, publish=publish)
    await accept_answer(publisher.pc, answer["sdp"])


async def connect_subscriber(
    server: ServerProcess, publisher: Publisher, session: int, name: str
) -> Subscriber:
    subscriber = Subscriber(publisher)
    offer = await subscriber.offer()
    answer = await server.call("subscribe", session=session, name=name, sdp=offer)
    await subscriber.accept(answer["sdp"], answer["slots"])
    return subscriber


def window_figures(
    result: PathResult, pairs: list[tuple[Publisher, Subscriber]], t0: float, t1: float
) -> None:
    """Latency of every video frame decoded in [t0, t1]; frames sent in [t0, t1 - grace]
    that arrived (by t1) or not."""
    for publisher, subscriber in pairs:
        for spec in VIDEO_SOURCES:
            track = publisher.video[spec.source]
            got = subscriber.received.get(spec.source)
            if got is None:
                continue
            arrived = set()
            for at, index in zip(got.at, got.index, strict=True):
                if index < 0:
                    result.unreadable += t0 <= at <= t1
                    continue
                arrived.add(index)
                if t0 <= at <= t1:
                    result.latencies_ms.append((at - track.sent_at[index]) * 1000)
            counted = [
                n for n, sent in enumerate(track.sent_at) if t0 <= sent <= t1 - LOSS_GRACE_SECONDS
            ]
            result.frames_sent += len(counted)
            result.frames_received += sum(1 for n in counted if n in arrived)
            result.frames_lost += sum(1 for n in counted if n not in arrived)


async def late_join(
    server: ServerProcess, publisher: Publisher, session: int, joined: list[Subscriber]
) -> list[float] | None:
    started = time.monotonic()
    subscriber = await connect_subscriber(server, publisher, session, "late")
    joined.append(subscriber)
    try:
        await wait_for(subscriber.has_video, LATE_JOIN_SECONDS, "late joiner's video")
    except TimeoutError:
        return None
    return [
        ((subscriber.received[s.source].first_at or started) - started) * 1000
        for s in VIDEO_SOURCES
    ]


async def run_path(
    name: str,
    media: Media,
    sessions: int,
    seconds: float,
    log_dir: Path,
    extra: tuple[str, ...] = (),
) -> PathResult:
    result = PathResult(name, sessions)
    server = None
    publishers = [Publisher(media) for _ in range(sessions)]
    subscribers: list[Subscriber] = []
    try:
        if name == "direct":
            subscribers = list(await asyncio.gather(*(connect_direct(p) for p in publishers)))
        else:
            server = await ServerProcess.start(
                name, log_dir / f"{name}-server.log", seconds * 2 + 120, extra
            )
            await asyncio.gather(
                *(connect_publisher(server, p, i) for i, p in enumerate(publishers))
            )
            subscribers = list(
                await asyncio.gather(
                    *(
                        connect_subscriber(server, p, i, "approver")
                        for i, p in enumerate(publishers)
                    )
                )
            )
        await wait_for(lambda: all(s.has_video() for s in subscribers), CONNECT_SECONDS, "video")
        await asyncio.sleep(WARMUP_SECONDS)
        cpu0 = await server.cpu() if server else None
        t0 = time.monotonic()
        await asyncio.sleep(seconds)
        t1 = time.monotonic()
        if server is not None and cpu0 is not None:
            result.cpu_s = await server.cpu() - cpu0
        result.window_s = t1 - t0
        window_figures(result, list(zip(publishers, subscribers, strict=True)), t0, t1)
        if server is not None:
            joined: list[Subscriber] = []
            try:
                firsts = await asyncio.gather(
                    *(late_join(server, p, i, joined) for i, p in enumerate(publishers))
                )
            finally:
                subscribers += joined
            for first in firsts:
                if first is None:
                    result.late_join_failed += 1
                else:
                    result.late_join_ms += first
            result.server = await server.call("stats")
        result.keyframes_sent = sum(t.keyframes_sent for p in publishers for t in p.video.values())
    finally:
        for subscriber in subscribers:
            await subscriber.close()
        for publisher in publishers:
            await publisher.close()
        if server is not None:
            await server.stop()
    return result


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


def table(results: list[PathResult], direct: PathResult) -> str:
    header = (
        f"{'path':<8} {'CPU-s/media-s/session':>22} {'latency p50/p95 ms':>19} "
        f"{'added p50/p95 ms':>17} {'frames sent/recv/lost':>22} {'late join ms med/max':>21} "
        f"{'PLI kf':>6}"
    )
    rows = [header, "-" * len(header)]
    for r in results:
        cpu = "—" if r.cpu_per_session is None else f"{r.cpu_per_session:.3f}"
        p50, p95 = r.latency(50), r.latency(95)
        d50, d95 = direct.latency(50), direct.latency(95)
        added = (
            f"{_ms(p50 - d50 if p50 is not None and d50 is not None else None)}/"
            f"{_ms(p95 - d95 if p95 is not None and d95 is not None else None)}"
        )
        late = (
            f"{_ms(percentile(r.late_join_ms, 50))}/{_ms(max(r.late_join_ms, default=None))}"
            if r.late_join_ms
            else "—"
        )
        if r.late_join_failed:
            late += f" ({r.late_join_failed} failed)"
        rows.append(
            f"{r.name:<8} {cpu:>22} {_ms(p50) + '/' + _ms(p95):>19} {added:>17} "
            f"{f'{r.frames_sent}/{r.frames_received}/{r.frames_lost}':>22} {late:>21} "
            f"{r.keyframes_sent:>6}"
        )
    return "\n".join(rows)


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def summary(
    room: PathResult, relay: PathResult, direct: PathResult, media: Media, seconds: float
) -> dict[str, Any]:
    def added(r: PathResult, q: float) -> float | None:
        mine, reference = r.latency(q), direct.latency(q)
        return None if mine is None or reference is None else mine - reference

    cpu, baseline = room.cpu_per_session, relay.cpu_per_session
    return {
        "cpu_per_session": _round(cpu, 4),
        "baseline_cpu_per_session": _round(baseline, 4),
        "ratio": _round(baseline / cpu, 2) if cpu and baseline is not None else None,
        "latency_p50_ms": _round(added(room, 50)),
        "latency_p95_ms": _round(added(room, 95)),
        "baseline_latency_p50_ms": _round(added(relay, 50)),
        "baseline_latency_p95_ms": _round(added(relay, 95)),
        "direct_latency_p50_ms": _round(direct.latency(50)),
        "direct_latency_p95_ms": _round(direct.latency(95)),
        "frames_lost": room.frames_lost,
        "baseline_frames_lost": relay.frames_lost,
        "direct_frames_lost": direct.frames_lost,
        "late_join_first_frame_ms": _round(percentile(room.late_join_ms, 50)),
        "baseline_late_join_first_frame_ms": _round(percentile(relay.late_join_ms, 50)),
        "sessions": room.sessions,
        "seconds": seconds,
        "input_kbps": {s: round(v.bitrate / 1000) for s, v in media.videos.items()},
        "room_server": room.server,
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    started = time.monotonic()
    media = Media.encode(fps=args.fps, seconds=args.cycle_seconds)
    rates = ", ".join(f"{s} {v.bitrate / 1e6:.2f} Mbit/s" for s, v in media.videos.items())
    took = time.monotonic() - started
    print(f"pre-encoded {args.cycle_seconds:g} s cycles ({rates}) in {took:.1f} s")
    with tempfile.TemporaryDirectory(prefix="coreview-bench-") as folder:
        log_dir = Path(args.log_dir) if args.log_dir else Path(folder)
        log_dir.mkdir(parents=True, exist_ok=True)
        results = []
        loads: dict[str, float] = {}
        store = log_dir / "record-store"
        extra = ("--record-dir", str(store), "--chunk-seconds", str(args.chunk_seconds))
        pairs = ("room", "record") * args.pairs if args.record else ("room",)
        paths = ("direct", *pairs, "relay")
        for name in paths:
            began = time.monotonic()
            results.append(
                await run_path(
                    name,
                    media,
                    args.sessions,
                    args.seconds,
                    log_dir,
                    extra if name == "record" else (),
                )
            )
            loads[f"{name}{len(results)}"] = round(os.getloadavg()[0], 2)
            took = time.monotonic() - began
            load = os.getloadavg()[0]
            print(f"{name}: done in {took:.1f} s (load average {load:.2f})", flush=True)
        conversion = await conversion_cost(store) if args.record else None
    direct, room, relay = results[0], results[1], results[-1]
    print()
    print(
        f"{args.sessions} session(s), {args.seconds:g} s measured per path; "
        "added = over the direct link"
    )
    print(table(results, direct))
    print("load average (1 min) after each path:", loads, "— other work distorts the figures")
    figures = {**summary(room, relay, direct, media, args.seconds), "load_average": loads}
    if conversion is not None:
        captured = capture_figures(
            [r for r in results if r.name == "room"],
            [r for r in results if r.name == "record"],
            conversion,
        )
        print(
            f"capture adds {captured['capture_added_cpu_per_session']} CPU-s/media-s per session "
            f"({captured['capture_added_percent']} % of forwarding); conversion "
            f"{captured['conversion_cpu_per_media_second']} CPU-s per media-s "
            f"({conversion['chunks']} chunks, {conversion['media_seconds']} media-s)"
        )
        figures.update(captured)
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.relay", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--sessions", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=10.0, help="measured window per path")
    parser.add_argument("--fps", type=int, default=15)
    parser.add_argument(
        "--cycle-seconds", type=float, default=8.0, help="length of the pre-encoded loop"
    )
    parser.add_argument("--log-dir", help="keep the relay processes' logs here")
    parser.add_argument("--record", action="store_true", help="also measure capture and conversion")
    parser.add_argument("--chunk-seconds", type=float, default=10.0)
    parser.add_argument(
        "--pairs", type=int, default=2, help="with --record: room/record runs, alternating"
    )
    args = parser.parse_args(argv)
    if not 1 <= args.sessions <= 20 or not 0 < args.seconds <= 600:
        parser.error("--sessions 1..20, --seconds up to 600")
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    print(json.dumps(asyncio.run(run(args))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
