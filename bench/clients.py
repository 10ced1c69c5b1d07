"""One measured path of the relay benchmarks: a server child (``bench.server``), the
client workers (``bench.client``) it serves, and the figures of each window."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.child import REPO, Child
from bench.client import WINDOW_COUNTS, WINDOW_LISTS
from bench.common import percentile

CONNECT_SECONDS = 60.0
"""Deadline for every subscriber of a path to get its first video frames."""
LATE_JOIN_SECONDS = 10.0
WARMUP_SECONDS = 1.0


@dataclass
class PathResult:
    name: str
    sessions: int
    variant: str = ""
    window_s: float = 0.0
    cpu_s: float | None = None
    """Server CPU seconds in the window."""
    client_cpu_s: float = 0.0
    frame_ms: list[float] = field(default_factory=list)
    packet_ms: list[float] = field(default_factory=list)
    twin_frame_ms: list[float] = field(default_factory=list)
    added_frame_ms: list[float] = field(default_factory=list)
    added_packet_ms: list[float] = field(default_factory=list)
    frames_sent: int = 0
    frames_lost: int = 0
    twin_frames_lost: int = 0
    unreadable: int = 0
    keyframes_sent: int = 0
    """Keyframes the sources sent on request (PLI) or to start a path."""
    late_join_ms: list[float] = field(default_factory=list)
    late_join_failed: int = 0
    server: dict[str, Any] = field(default_factory=dict)
    decoded: dict[str, int] = field(default_factory=dict)
    api: dict[str, Any] | None = None

    @property
    def cpu_per_session(self) -> float | None:
        if self.cpu_s is None or not self.window_s:
            return None
        return self.cpu_s / self.window_s / self.sessions

    @property
    def client_cpu_per_session(self) -> float | None:
        return self.client_cpu_s / self.window_s / self.sessions if self.window_s else None

    def added(self, q: float, unit: str = "frame") -> float | None:
        return percentile(self.added_packet_ms if unit == "packet" else self.added_frame_ms, q)

    def add_window(self, figures: dict[str, Any]) -> None:
        for key in WINDOW_LISTS:
            getattr(self, key).extend(figures[key])
        for key in (*WINDOW_COUNTS, "keyframes_sent"):
            setattr(self, key, getattr(self, key) + figures[key])


class Clients:
    """The client worker processes; session k lives in worker k mod P."""

    def __init__(self, workers: list[Child]) -> None:
        self.workers = workers

    @classmethod
    async def start(cls, count: int, media: Path, log_dir: Path, loop: str) -> Clients:
        args = ("--media", str(media), "--loop", loop)
        workers = await asyncio.gather(
            *(Child.start("bench.client", args, log_dir / f"client{n}.log") for n in range(count))
        )
        return cls(list(workers))

    def of(self, session: int) -> Child:
        return self.workers[session % len(self.workers)]

    async def each(self, op: str, limit: float = 30.0, **fields: Any) -> list[Any]:
        return list(await asyncio.gather(*(w.call(op, limit, **fields) for w in self.workers)))

    async def cpu(self) -> float:
        return sum(float(r["cpu"]) for r in await self.each("cpu"))

    async def open(self, sessions: range, twins: range, decode: bool) -> dict[int, Any]:
        """Every session's offers, by session."""
        replies = await asyncio.gather(
            *(
                worker.call(
                    "open",
                    CONNECT_SECONDS,
                    sessions=[k for k in sessions if self.of(k) is worker],
                    twins=[k for k in twins if self.of(k) is worker],
                    decode=decode,
                )
                for worker in self.workers
            )
        )
        return {int(k): offers for reply in replies for k, offers in reply["offers"].items()}

    async def stop(self) -> None:
        await asyncio.gather(*(w.stop() for w in self.workers))


async def connect(
    server: Child, clients: Clients, sessions: range, twins: range, mode: str
) -> None:
    offers = await clients.open(sessions, twins, decode=mode == "relay")

    async def session(k: int) -> tuple[int, dict[str, Any]]:
        offer = offers[k]
        published = await server.call(
            "publish",
            CONNECT_SECONDS,
            session=k,
            sdp=offer["publish"],
            publish=offer["publish_map"],
        )
        subscribed = await server.call(
            "subscribe", session=k, name="approver", sdp=offer["subscribe"]
        )
        answers = {"publish": published["sdp"], "subscribe": subscribed["sdp"]}
        return k, answers | {"slots": subscribed["slots"]}

    answers = dict(await asyncio.gather(*(session(k) for k in sessions)))
    await asyncio.gather(
        *(
            worker.call(
                "connect",
                CONNECT_SECONDS,
                answers={k: a for k, a in answers.items() if clients.of(k) is worker},
            )
            for worker in clients.workers
        )
    )


async def late_join(server: Child, clients: Clients, k: int) -> list[float] | None:
    worker = clients.of(k)
    offer = await worker.call("late_offer", session=k)
    answer = await server.call("subscribe", session=k, name="late", sdp=offer["sdp"])
    reply = await worker.call(
        "late_answer",
        LATE_JOIN_SECONDS + 5,
        session=k,
        sdp=answer["sdp"],
        slots=answer["slots"],
        deadline=LATE_JOIN_SECONDS,
    )
    first: list[float] | None = reply["first_ms"]
    return first


async def api_load(server: Child, clients: int, seconds: float, log_dir: Path) -> dict[str, Any]:
    login = await server.call("api")
    with (log_dir / "apiload.log").open("ab") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.apiload", "--url", login["url"],
            "--username", login["username"], "--password", login["password"],
            "--clients", str(clients), "--seconds", str(seconds),
            stdout=asyncio.subprocess.PIPE, stderr=log, cwd=REPO,
        )  # fmt: skip
        out, _ = await process.communicate()
    if process.returncode:
        raise RuntimeError(f"bench.apiload exited {process.returncode}: see {log_dir}")
    figures: dict[str, Any] = json.loads(out.decode().splitlines()[-1])
    return figures


async def measure(
    result: PathResult, server: Child, clients: Clients, seconds: float, load: Any = None
) -> None:
    """One window: server and client CPU, then every worker's figures for it."""
    before = (await server.call("probe"))["udp"]  # and the loop lag from here on
    cpu0, client0 = await server.cpu(), await clients.cpu()
    t0 = time.monotonic()
    if load is not None:
        result.api = await load
    else:
        await asyncio.sleep(seconds)
    t1 = time.monotonic()
    result.cpu_s = await server.cpu() - cpu0
    result.client_cpu_s = await clients.cpu() - client0
    result.window_s = t1 - t0
    result.server = await server.call("probe")
    after = result.server.pop("udp")
    result.server["udp_errors"] = {k: after[k] - before.get(k, 0) for k in after}
    if result.api is not None:  # frames only while the requests ran (not its start-up)
        t0, t1 = result.api.pop("began"), result.api.pop("ended")
    for figures in await clients.each("window", t0=t0, t1=t1):
        result.add_window(figures)


async def run_path(
    name: str,
    variant: str,
    mode: str,
    flags: tuple[str, ...],
    clients: Clients,
    sessions: int,
    seconds: float,
    log_dir: Path,
    windows: tuple[str, ...] = ("",),
    api_clients: int = 40,
    twins: int | None = None,
    server_cpus: set[int] | None = None,
) -> list[PathResult]:
    """Connect ``sessions`` (the first ``twins`` with a twin; all by default) through a
    fresh server, measure each window, then late joiners and the decoded samples."""
    args = (mode, "--max-seconds", str(seconds * (len(windows) + 2) + 300), *flags)
    server = await Child.start("bench.server", args, log_dir / f"server-{mode}.log")
    results = [PathResult(f"{name} {w}".strip(), sessions, w or variant) for w in windows]
    try:
        if server_cpus:
            server.pin(server_cpus)
        everyone = range(sessions)
        await connect(server, clients, everyone, range(sessions if twins is None else twins), mode)
        await clients.each("wait_video", CONNECT_SECONDS + 5, deadline=CONNECT_SECONDS)
        await asyncio.sleep(WARMUP_SECONDS)
        for result in results:
            load = (
                api_load(server, api_clients, seconds, log_dir) if result.variant == "api" else None
            )
            await measure(result, server, clients, seconds, load)
        head = results[0]  # late joiners and samples belong to the path: its first result
        firsts = await asyncio.gather(*(late_join(server, clients, k) for k in everyone))
        for first in firsts:
            if first is None:
                head.late_join_failed += 1
            else:
                head.late_join_ms += first
        stats = await server.call("stats")
        verified = await clients.each("verify")
        head.decoded = {
            key: sum(v[key] for v in verified) for key in ("decoded", "matched", "tracks")
        }
        for result in results:
            result.server = {**stats, **result.server}
    finally:
        await clients.each("close")
        await server.stop()
    return results
