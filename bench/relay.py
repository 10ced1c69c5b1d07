"""Relay benchmark: coreview's RTP-level forwarding (``MediaRoom``) against aiortc's
``MediaRelay`` (decode, then re-encode per subscriber), with the latency each adds
measured against a direct twin of every session.

    python -m bench.relay --sessions 2 --seconds 10 [--client-procs 2]

A session is one clerk publishing face 640x480 (~0.5 Mbit/s), document 1280x720
(~3 Mbit/s, both VP8 at 15 fps, pre-encoded: see ``bench.common``) and Opus audio, and
one approver subscribing to all three. The clients run in ``--client-procs`` worker
processes (``bench.client``), sessions spread over them, and decode nothing: frames are
depacketised where they arrive and matched by their bytes (``bench.probe``; a sample
per track is decoded afterwards to show they were valid). Each session also has a
twin: the same frames, handed over at the same moment, sent straight to a subscriber in
the same worker. The server under test (``bench.server``) runs in its own process.

Paths, one after the other: ``room`` (coreview), ``relay`` (MediaRelay; its frames are
re-encoded, so its subscribers decode them to read the stamped counter). Per path:
connect every session, wait for video, warm up, then measure over ``--seconds``: the
server's CPU time per media second per session; per frame the latency from hand-over to
complete arrival (last packet), and *added* latency = server path minus twin for the
same frame (and for each of its packets); frames handed over in the window (less a
grace second) that never arrived. After the window a second subscriber joins each
session: time from its offer to its first complete frame on each video track.

- ``--record``: the room alternates with ``record`` (a capture writer on every track)
  ``--pairs`` times; see ``bench.capture`` for the figures.
- ``--compare NAME=A,B``: instead, the room with ``bench.server --NAME A`` and
  ``--NAME B`` alternating ABAB ``--pairs`` times; CPU per session per variant and B/A.
- ``--api-load``: instead, one room serving coreview's web app on its loop
  (``--with-api``), windows alternating without and with 40 clients listing cases
  (``bench.apiload``); the added per-frame p95 of each and their gap.

Output: a table, then as the last line one JSON object. ``latency_*_ms`` there is the
added latency per frame (p50/p95 of server path minus twin); ``ratio`` is MediaRelay's
CPU per session over coreview's (how many times cheaper coreview is)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.capture import capture_figures, conversion_cost
from bench.clients import Clients, PathResult, run_path
from bench.common import Media, percentile
from media import loops

logger = logging.getLogger("bench.relay")


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


def _pair(a: float | None, b: float | None) -> str:
    return f"{_ms(a)}/{_ms(b)}"


def table(results: list[PathResult]) -> str:
    header = (
        f"{'path':<14} {'CPU-s/media-s/session':>22} {'frame p50/p95 ms':>17} "
        f"{'added frame p50/p95':>20} {'added pkt p50/p95':>18} "
        f"{'frames sent/lost':>17} {'late join med/max':>18} {'PLI kf':>6}"
    )
    rows = [header, "-" * len(header)]
    for r in results:
        cpu = "—" if r.cpu_per_session is None else f"{r.cpu_per_session:.4f}"
        late = (
            _pair(percentile(r.late_join_ms, 50), max(r.late_join_ms, default=None))
            if r.late_join_ms
            else "—"
        )
        if r.late_join_failed:
            late += f" ({r.late_join_failed} failed)"
        rows.append(
            f"{r.name:<14} {cpu:>22} "
            f"{_pair(percentile(r.frame_ms, 50), percentile(r.frame_ms, 95)):>17} "
            f"{_pair(r.added(50), r.added(95)):>20} "
            f"{_pair(r.added(50, 'packet'), r.added(95, 'packet')):>18} "
            f"{f'{r.frames_sent}/{r.frames_lost}':>17} {late:>18} {r.keyframes_sent:>6}"
        )
    return "\n".join(rows)


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def path_figures(r: PathResult) -> dict[str, Any]:
    return {
        "cpu_per_session": _round(r.cpu_per_session, 4),
        "latency_p50_ms": _round(r.added(50)),
        "latency_p95_ms": _round(r.added(95)),
        "packet_latency_p50_ms": _round(r.added(50, "packet")),
        "packet_latency_p95_ms": _round(r.added(95, "packet")),
        "frame_latency_p50_ms": _round(percentile(r.frame_ms, 50)),
        "frame_latency_p95_ms": _round(percentile(r.frame_ms, 95)),
        "direct_latency_p50_ms": _round(percentile(r.twin_frame_ms, 50)),
        "direct_latency_p95_ms": _round(percentile(r.twin_frame_ms, 95)),
        "frames_lost": r.frames_lost,
        "direct_frames_lost": r.twin_frames_lost,
        "late_join_first_frame_ms": _round(percentile(r.late_join_ms, 50)),
        "late_join_failed": r.late_join_failed,
        "client_cpu_per_session": _round(r.client_cpu_per_session, 4),
    }


def summary(room: PathResult, relay: PathResult | None) -> dict[str, Any]:
    figures = path_figures(room)
    if relay is not None:
        base = path_figures(relay)
        cpu, baseline = room.cpu_per_session, relay.cpu_per_session
        figures |= {
            "baseline_cpu_per_session": base["cpu_per_session"],
            "ratio": _round(baseline / cpu, 2) if cpu and baseline is not None else None,
            "baseline_latency_p50_ms": base["latency_p50_ms"],
            "baseline_latency_p95_ms": base["latency_p95_ms"],
            "baseline_frames_lost": relay.frames_lost,
            "baseline_late_join_first_frame_ms": base["late_join_first_frame_ms"],
        }
    return figures | {"room_server": room.server, "decoded_sample": room.decoded}


def compare_figures(name: str, values: list[str], results: list[PathResult]) -> dict[str, Any]:
    """Per variant: CPU per session over all its runs, added p95; B/A of the CPU."""
    per: dict[str, Any] = {}
    for value in values:
        runs = [r for r in results if r.variant == value]
        window = sum(r.window_s for r in runs)
        cpu = sum(r.cpu_s or 0.0 for r in runs) / window / runs[0].sessions if window else None
        per[value] = {
            "cpu_per_session": _round(cpu, 4),
            "runs": [_round(r.cpu_per_session, 4) for r in runs],
            "latency_p95_ms": _round(percentile([x for r in runs for x in r.added_frame_ms], 95)),
            "frames_lost": sum(r.frames_lost for r in runs),
        }
    a, b = (per[v]["cpu_per_session"] for v in values[:2])
    return {"name": name, "variants": per, "ratio": _round(b / a, 3) if a and b else None}


def api_figures(results: list[PathResult]) -> dict[str, Any]:
    quiet = [r for r in results if r.variant == "quiet"]
    loaded = [r for r in results if r.variant == "api"]
    p95 = {
        kind: _round(percentile([x for r in runs for x in r.added_frame_ms], 95), 2)
        for kind, runs in (("quiet", quiet), ("api", loaded))
    }
    gap = p95["api"] - p95["quiet"] if p95["api"] is not None and p95["quiet"] else None
    return {
        "added_frame_p95_ms": p95,
        "gap_ms": _round(gap, 2),
        "requests": [r.api for r in loaded],
        "loop_lag_ms": {r.name: r.server.get("loop_lag_ms") for r in results},
    }


def plan(args: argparse.Namespace, store: Path) -> list[tuple[str, str, str, tuple[str, ...]]]:
    """(name, variant, server mode, server flags) of every path to run, in order."""
    loop = ("--loop", args.loop)
    if args.compare:
        flag, values = args.compare
        return [
            (f"room {flag}={v}", v, "room", (*loop, f"--{flag}", v))
            for _ in range(args.pairs)
            for v in values
        ]
    if args.api_load:
        return [("room+api", "", "room", (*loop, "--with-api", str(store.parent / "api")))]
    record = ("--record-dir", str(store), "--chunk-seconds", str(args.chunk_seconds))
    pairs = [("room", "", "room", loop), ("record", "", "record", (*loop, *record))]
    paths = pairs * args.pairs if args.record else pairs[:1]
    return [*paths, ("relay", "", "relay", loop)]


async def run(args: argparse.Namespace) -> dict[str, Any]:
    started = time.monotonic()
    media = Media.encode(fps=args.fps, seconds=args.cycle_seconds)
    rates = ", ".join(f"{s} {v.bitrate / 1e6:.2f} Mbit/s" for s, v in media.videos.items())
    took = time.monotonic() - started
    print(f"pre-encoded {args.cycle_seconds:g} s cycles ({rates}) in {took:.1f} s")
    with tempfile.TemporaryDirectory(prefix="coreview-bench-") as folder:
        log_dir = Path(args.log_dir) if args.log_dir else Path(folder)
        log_dir.mkdir(parents=True, exist_ok=True)
        media_path = Path(folder) / "media.json"
        media.dump(media_path)
        store = Path(folder) / "record-store"
        windows = ("quiet", "api") * args.pairs if args.api_load else ("",)
        results: list[PathResult] = []
        loads: dict[str, float] = {}
        clients = await Clients.start(args.client_procs, media_path, log_dir, args.client_loop)
        try:
            for name, variant, mode, flags in plan(args, store):
                began = time.monotonic()
                results += await run_path(
                    name, variant, mode, flags, clients, args.sessions, args.seconds, log_dir,
                    windows=windows, api_clients=args.api_clients,
                )  # fmt: skip
                loads[f"{name}#{len(results)}"] = round(os.getloadavg()[0], 2)
                took = time.monotonic() - began
                print(f"{name}: done in {took:.1f} s (load {os.getloadavg()[0]:.2f})", flush=True)
        finally:
            await clients.stop()
        conversion = await conversion_cost(store) if args.record else None
    print()
    print(
        f"{args.sessions} session(s) over {args.client_procs} client process(es), "
        f"{args.seconds:g} s per window; added = server path minus its direct twin"
    )
    print(table(results))
    print("load average (1 min) after each path:", loads, "— other work distorts the figures")
    rooms = [r for r in results if r.name == "room"] or results
    relay = next((r for r in results if r.name == "relay"), None)
    figures = summary(rooms[0], relay) | {
        "sessions": args.sessions,
        "seconds": args.seconds,
        "client_procs": args.client_procs,
        "loop": args.loop,
        "input_kbps": {s: round(v.bitrate / 1000) for s, v in media.videos.items()},
        "load_average": loads,
    }
    if args.compare:
        figures["compare"] = compare_figures(args.compare[0], args.compare[1], results)
        print("compare:", json.dumps(figures["compare"]))
    if args.api_load:
        figures["api_load"] = api_figures(results)
        print("api load:", json.dumps(figures["api_load"], ensure_ascii=False))
    if conversion is not None:
        records = [r for r in results if r.name == "record"]
        captured = capture_figures(rooms, records, conversion)
        print(
            f"capture adds {captured['capture_added_cpu_per_session']} CPU-s/media-s per session "
            f"({captured['capture_added_percent']} % of forwarding); conversion "
            f"{captured['conversion_cpu_per_media_second']} CPU-s per media-s "
            f"({conversion['chunks']} chunks, {conversion['media_seconds']} media-s)"
        )
        figures.update(captured)
    return figures


def _compare(text: str) -> tuple[str, list[str]]:
    name, _, values = text.partition("=")
    choices = [v for v in values.split(",") if v]
    if not name or len(choices) != 2:
        raise argparse.ArgumentTypeError("NAME=A,B (a bench.server flag and two values)")
    return name, choices


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.relay", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--sessions", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=10.0, help="measured window per path")
    parser.add_argument("--fps", type=int, default=15)
    parser.add_argument(
        "--cycle-seconds", type=float, default=8.0, help="length of the pre-encoded loop"
    )
    parser.add_argument("--client-procs", type=int, default=2, help="client worker processes")
    parser.add_argument("--loop", choices=loops.CHOICES, default="auto", help="server's loop")
    parser.add_argument("--client-loop", choices=loops.CHOICES, default="auto")
    parser.add_argument("--log-dir", help="keep the child processes' logs here")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--record", action="store_true", help="also measure capture and conversion")
    mode.add_argument("--compare", type=_compare, metavar="NAME=A,B", help="server variants, ABAB")
    mode.add_argument("--api-load", action="store_true", help="media beside API load, ABAB")
    parser.add_argument("--api-clients", type=int, default=40)
    parser.add_argument("--chunk-seconds", type=float, default=10.0)
    parser.add_argument("--pairs", type=int, default=2, help="alternations (AB) per comparison")
    return parser


def main(argv: list[str] | None = None) -> int:
    command = parser()
    args = command.parse_args(argv)
    if not 1 <= args.sessions <= 40 or not 0 < args.seconds <= 600:
        command.error("--sessions 1..40, --seconds up to 600")
    if not 1 <= args.client_procs <= args.sessions:
        command.error("--client-procs 1..sessions")
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    with asyncio.Runner(loop_factory=loops.loop_factory(args.client_loop)) as runner:
        print(json.dumps(runner.run(run(args))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
