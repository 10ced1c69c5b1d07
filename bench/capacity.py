"""Capacity: how many sessions one core forwards.

    python -m bench.capacity [--max-sessions 40] [--step 2] [--seconds 10] [--record]

The server (``bench.server room``, or ``record`` with ``--record``) is pinned to one
core (``--server-core``); the client workers (``bench.client``) to the others. Sessions
are added ``--step`` at a time to the same server; after each step a warm-up, then a
window of ``--seconds``: the server's CPU (% of its core), resident memory, frames
lost, added latency per frame (only the first ``--twins`` sessions carry a direct twin,
as probes), the loop lag, and how busy the client cores were. The ramp stops at the
first of: a frame lost, added p95 over ``--max-added-ms``, the server core at
``--server-limit`` %, the client cores at ``--client-limit`` % (then the figure is only a
lower bound: "client-bound"), or ``--max-sessions``.

Reported: sessions per core (the last step that held, or, if the server core did not
saturate, an estimate, marked so: where the line fitted to the steps' server CPU reaches
one core, its fixed part counted), CPU and RSS per session (slopes over the steps), what
saturated first. With ``--record`` the same ramp runs with
capture on every track too, and the capture's CPU per session is set against the room's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.child import Child, proc_rss
from bench.clients import CONNECT_SECONDS, Clients, PathResult, connect, measure
from bench.common import Media
from media import loops


@dataclass
class Step:
    sessions: int
    server_core_pct: float
    server_core_busy_pct: float
    """The server core's busy share, whoever used it."""
    rss_mb: float
    frames_lost: int
    added_p50_ms: float | None
    added_p95_ms: float | None
    loop_lag_p99_ms: float | None
    client_cores_pct: float
    """The client workers' CPU, % of the cores they run on."""
    client_cores_busy_pct: float
    """Those cores' busy share, whoever used them."""
    udp_errors: int

    def limit(self, args: argparse.Namespace) -> str | None:
        """What this step ran into, if anything."""
        if self.frames_lost:
            return "frame lost"
        if self.added_p95_ms is not None and self.added_p95_ms > args.max_added_ms:
            return f"added p95 > {args.max_added_ms:g} ms"
        if self.server_core_pct >= args.server_limit:
            return "server core"
        if self.client_cores_pct >= args.client_limit:
            return "client cores (client-bound)"
        return None


def busy(cores: set[int]) -> tuple[int, int]:
    """Busy and total jiffies of ``cores`` (/proc/stat), idle and iowait excluded."""
    done = total = 0
    with open("/proc/stat") as stat:
        for line in stat:
            name, *values = line.split()
            if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cores:
                numbers = [int(v) for v in values]
                total += sum(numbers)
                done += sum(numbers) - numbers[3] - numbers[4]
    return done, total


def line(xs: list[float], ys: list[float]) -> tuple[float, float] | None:
    """Least-squares (slope, intercept); None from fewer than two distinct points."""
    if len(set(xs)) < 2:
        return None
    fitted = np.polyfit(xs, ys, 1)
    return float(fitted[0]), float(fitted[1])


async def ramp(
    mode: str, args: argparse.Namespace, clients: Clients, folder: Path
) -> tuple[list[Step], str]:
    flags: tuple[str, ...] = ("--loop", args.loop)
    if mode == "record":
        flags += ("--record-dir", str(folder / "store"), "--chunk-seconds", "10")
    max_seconds = (args.seconds + args.warmup + 30) * (args.max_sessions // args.step + 1) + 300
    server = await Child.start(
        "bench.server", (mode, "--max-seconds", str(max_seconds), *flags), folder / f"{mode}.log"
    )
    client_cores = set(range(os.cpu_count() or 1)) - {args.server_core} or {args.server_core}
    steps: list[Step] = []
    reason = f"--max-sessions {args.max_sessions}"
    try:
        server.pin({args.server_core})
        for worker in clients.workers:
            worker.pin(client_cores)
        while (have := len(steps) * args.step) < args.max_sessions:
            new = range(have, min(have + args.step, args.max_sessions))
            await connect(server, clients, new, range(have, min(new.stop, args.twins)), mode)
            await clients.each("wait_video", CONNECT_SECONDS + 5, deadline=CONNECT_SECONDS)
            await asyncio.sleep(args.warmup)
            result = PathResult(f"{mode} {new.stop}", new.stop)
            before = busy(client_cores), busy({args.server_core})
            await measure(result, server, clients, args.seconds)
            after = busy(client_cores), busy({args.server_core})
            step = figures(result, server, len(client_cores), before, after)
            steps.append(step)
            print(row(step), flush=True)
            if (hit := step.limit(args)) is not None:
                reason = hit
                break
    finally:
        await clients.each("close")
        await server.stop()
    return steps, reason


Jiffies = tuple[int, int]


def share(before: Jiffies, after: Jiffies) -> float:
    spent = after[1] - before[1]
    return round(100 * (after[0] - before[0]) / spent, 1) if spent else 0.0


def figures(
    result: PathResult,
    server: Child,
    cores: int,
    before: tuple[Jiffies, Jiffies],
    after: tuple[Jiffies, Jiffies],
) -> Step:
    """A step's figures. CPU shares are the processes' own; each core set's busy share,
    other processes included, is shown beside them (on a shared machine another
    process on the server's core shows as lag, not as server CPU)."""
    lag = result.server.get("loop_lag_ms", {})
    return Step(
        sessions=result.sessions,
        server_core_pct=round(100 * (result.cpu_s or 0.0) / result.window_s, 1),
        server_core_busy_pct=share(before[1], after[1]),
        rss_mb=round(proc_rss(server.process.pid) / 2**20, 1),
        frames_lost=result.frames_lost,
        added_p50_ms=_round(result.added(50)),
        added_p95_ms=_round(result.added(95)),
        loop_lag_p99_ms=lag.get("p99"),
        client_cores_pct=round(100 * result.client_cpu_s / result.window_s / cores, 1),
        client_cores_busy_pct=share(before[0], after[0]),
        udp_errors=sum(result.server.get("udp_errors", {}).values()),
    )


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


HEADER = (
    f"{'sessions':>8} {'server % (busy)':>15} {'RSS MB':>7} {'lost':>5} "
    f"{'added p50/p95 ms':>17} {'lag p99 ms':>10} {'clients % (busy)':>16} {'UDP drops':>9}"
)


def row(s: Step) -> str:
    return (
        f"{s.sessions:>8} {f'{s.server_core_pct} ({s.server_core_busy_pct})':>15} "
        f"{s.rss_mb:>7} {s.frames_lost:>5} "
        f"{f'{s.added_p50_ms}/{s.added_p95_ms}':>17} {s.loop_lag_p99_ms!s:>10} "
        f"{f'{s.client_cores_pct} ({s.client_cores_busy_pct})':>16} {s.udp_errors:>9}"
    )


def report(steps: list[Step], reason: str) -> dict[str, Any]:
    failed = reason == "frame lost" or reason.startswith("added")
    held = steps[:-1] if failed else steps
    sessions = [float(s.sessions) for s in steps]
    fitted = line(sessions, [s.server_core_pct / 100 for s in steps])
    if fitted is None and steps:  # one step: its share (the idle server's CPU is small)
        fitted = (steps[-1].server_core_pct / 100 / steps[-1].sessions, 0.0)
    cpu, fixed = fitted if fitted else (None, 0.0)
    rss_line = line(sessions, [s.rss_mb for s in steps])
    rss = rss_line[0] if rss_line else None
    best = held[-1] if held else None
    per_core = best.sessions if best is not None and reason == "server core" else None
    # where the fitted line reaches one whole core: the fixed cost counted
    estimate = int((1 - fixed) / cpu) if cpu and cpu > 0 else None
    return {
        "steps": [vars(s) for s in steps],
        "first_limit": reason,
        "client_bound": "client" in reason,
        "sessions_held": best.sessions if best else 0,
        "sessions_per_core": per_core,
        "sessions_per_core_estimate": estimate,
        "cpu_per_session": None if cpu is None else round(cpu, 4),
        "cpu_fixed": round(fixed, 4),
        "rss_mb_per_session": _round(rss),
        "added_p95_ms_at_held": best.added_p95_ms if best else None,
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    media = Media.encode(fps=15, seconds=args.cycle_seconds)
    out: dict[str, Any] = {"loop": args.loop, "seconds": args.seconds, "step": args.step}
    with tempfile.TemporaryDirectory(prefix="coreview-capacity-") as name:
        folder = Path(name)
        media.dump(folder / "media.json")
        procs = max(1, min(args.client_procs, args.max_sessions))
        clients = await Clients.start(procs, folder / "media.json", folder, args.loop)
        try:
            for mode in ("room", "record") if args.record else ("room",):
                print(f"\n{mode}: server pinned to core {args.server_core}")
                print(HEADER)
                began = time.monotonic()
                steps, reason = await ramp(mode, args, clients, folder)
                out[mode] = report(steps, reason)
                print(f"{mode}: stopped by {reason} after {time.monotonic() - began:.0f} s")
        finally:
            await clients.stop()
    if args.record:
        room, record = out["room"]["cpu_per_session"], out["record"]["cpu_per_session"]
        added = round(record - room, 4) if room and record else None
        out["record_added_cpu_per_session"] = added
    for mode in ("room", "record"):
        if mode in out:
            r = out[mode]
            print(
                f"{mode}: held {r['sessions_held']} sessions ({r['first_limit']}); "
                f"{r['cpu_per_session']} core per session + {r['cpu_fixed']} fixed → "
                f"~{r['sessions_per_core_estimate']} sessions per core (estimate); "
                f"RSS {r['rss_mb_per_session']} MB per session"
            )
    out["load_average"] = round(os.getloadavg()[0], 2)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.capacity", description=__doc__)
    parser.add_argument("--max-sessions", type=int, default=40)
    parser.add_argument("--step", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--twins", type=int, default=2, help="sessions carrying a direct twin")
    parser.add_argument("--client-procs", type=int, default=4)
    parser.add_argument("--server-core", type=int, default=0)
    parser.add_argument("--max-added-ms", type=float, default=50.0)
    parser.add_argument("--server-limit", type=float, default=95.0)
    parser.add_argument("--client-limit", type=float, default=90.0)
    parser.add_argument("--cycle-seconds", type=float, default=8.0)
    parser.add_argument("--loop", choices=loops.CHOICES, default="auto")
    parser.add_argument("--record", action="store_true", help="also ramp with capture")
    args = parser.parse_args(argv)
    if args.server_core not in os.sched_getaffinity(0) or args.step < 1:
        parser.error("--server-core must be a core this process may use; --step ≥ 1")
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    with asyncio.Runner(loop_factory=loops.loop_factory(args.loop)) as runner:
        print(json.dumps(runner.run(run(args))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
