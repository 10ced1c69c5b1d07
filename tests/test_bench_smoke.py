"""The relay benchmark runs end to end and ends with its JSON summary line. A smoke
test only: the figures are a benchmark's business (``python -m bench.relay``), so no
timing is asserted here."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
ARGS = (
    "--client-procs",
    "1",
    "--sessions",
    "1",
    "--seconds",
    "2",
    "--cycle-seconds",
    "3",
    "--record",
    "--chunk-seconds",
    "1",
)
KEYS = {
    "cpu_per_session",
    "baseline_cpu_per_session",
    "ratio",
    "latency_p50_ms",
    "latency_p95_ms",
    "packet_latency_p95_ms",
    "direct_latency_p95_ms",
    "late_join_first_frame_ms",
    "capture_added_cpu_per_session",
    "conversion_cpu_per_media_second",
}


@pytest.mark.bench
@pytest.mark.timeout(180)
def test_bench_relay_prints_a_json_summary_last() -> None:
    """One short session per path (with --record: the room with capture too, and the
    conversion of its chunks): the last line is a JSON object whose keys hold a figure
    for every path (so each path carried stamped video, matched frame by frame and
    packet by packet against its twin), and the decoded sample showed every counter."""
    summary, done = run_bench("bench.relay", *ARGS)
    assert KEYS <= set(summary)
    for key in KEYS:
        assert isinstance(summary[key], int | float), (key, summary[key])
    assert "room" in done.stdout and "relay" in done.stdout  # the human-readable table
    assert summary["conversion"]["chunks"] >= 3  # every track's chunks were converted
    sample = summary["decoded_sample"]
    assert sample["tracks"] == 4 and sample["decoded"] > 0  # face + document, room + twin
    assert sample["matched"] == sample["decoded"]


def run_bench(module: str, *args: str) -> tuple[dict[str, Any], subprocess.CompletedProcess[str]]:
    """Run a benchmark; its last line parsed as JSON, and the finished process."""
    done = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=150,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return summary, done


TINY = ("--sessions", "2", "--client-procs", "2", "--seconds", "2", "--cycle-seconds", "2")


@pytest.mark.bench
@pytest.mark.timeout(180)
def test_bench_relay_compares_server_variants() -> None:
    """--compare loop=asyncio,auto runs the room with each loop and reports CPU per
    session for both, their ratio, and no frame lost."""
    summary, _ = run_bench("bench.relay", *TINY, "--compare", "loop=asyncio,auto", "--pairs", "1")
    compare = summary["compare"]
    assert compare["name"] == "loop" and set(compare["variants"]) == {"asyncio", "auto"}
    for variant in compare["variants"].values():
        assert variant["cpu_per_session"] > 0 and len(variant["runs"]) == 1
    assert compare["ratio"] > 0


@pytest.mark.bench
@pytest.mark.timeout(180)
def test_bench_relay_measures_media_beside_api_load() -> None:
    """--api-load: the room serves the web app too; a window without and one with
    clients listing cases each give an added per-frame p95, and every request was
    answered 200."""
    summary, _ = run_bench("bench.relay", *TINY, "--api-load", "--pairs", "1", "--api-clients", "4")
    load = summary["api_load"]
    assert set(load["added_frame_p95_ms"]) == {"quiet", "api"}
    assert all(isinstance(v, float) for v in load["added_frame_p95_ms"].values())
    (requests,) = load["requests"]
    assert requests["requests"] > 0 and requests["errors"] == 0
    assert all(lag["n"] > 0 for lag in load["loop_lag_ms"].values())


@pytest.mark.bench
@pytest.mark.timeout(180)
def test_bench_capacity_ramps_and_names_what_stopped_it() -> None:
    """A two-step ramp (one session each) with the server pinned: each step has its
    figures, and the first limit met is named. Figures are checked for form, not size:
    a 2 s step's fitted slope is noise and may come out zero or negative."""
    summary, done = run_bench(
        "bench.capacity", "--max-sessions", "2", "--step", "1", "--seconds", "2",
        "--warmup", "0.5", "--cycle-seconds", "2", "--client-procs", "1",
    )  # fmt: skip
    room = summary["room"]
    assert 1 <= len(room["steps"]) <= 2 and room["first_limit"]
    assert isinstance(room["cpu_per_session"], float) and math.isfinite(room["cpu_per_session"])
    assert all(step["rss_mb"] > 0 for step in room["steps"])
    assert "sessions" in done.stdout  # the human-readable table


@pytest.mark.bench
def test_bench_log_prints_a_json_summary_last() -> None:
    """A small log run: the last line is JSON with every figure for the size asked."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.log", "--sizes", "300", "--sample", "100"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(done.stdout.splitlines()[-1])["log"]["300"]
    stall = figures.pop("cold_loop_stall_ms")
    assert set(figures) == {"append_per_s", "checkpoint_cold_ms", "checkpoint_warm_ms", "verify_ms"}
    assert all(value > 0 for value in figures.values()) and stall >= 0


@pytest.mark.bench
def test_bench_api_prints_a_json_summary_last() -> None:
    """A tiny API run (1 s windows, 4 clients): the last line is JSON with req/s,
    p50/p99 and CPU per request for the bare app, the case list and /healthz, the
    ratios to the bare app, and no request refused (the clerk's session held)."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.api", "--seconds", "1", "--rounds", "1", "--clients", "4"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout.splitlines()[-1])
    for target in ("bare", "cases", "healthz"):
        figures = summary[target]
        assert {"rps", "p50_ms", "p99_ms", "cpu_us_per_request", "errors"} <= set(figures)
        assert figures["rps"] > 0 and figures["errors"] == 0, (target, figures)
        assert 0 < figures["p50_ms"] <= figures["p99_ms"]
    assert summary["cases"]["ratio"] > 0 and summary["healthz"]["ratio"] > 0
    assert isinstance(summary["goal_met"], bool)
    assert "cases" in done.stdout and "healthz" in done.stdout  # the table
