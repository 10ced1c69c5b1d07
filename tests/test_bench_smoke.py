"""The relay benchmark runs end to end and ends with its JSON summary line. A smoke
test only: the figures are a benchmark's business (``python -m bench.relay``), so no
timing is asserted here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ARGS = (
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
    "late_join_first_frame_ms",
    "capture_added_cpu_per_session",
    "conversion_cpu_per_media_second",
}


@pytest.mark.bench
@pytest.mark.timeout(180)
def test_bench_relay_prints_a_json_summary_last() -> None:
    """One short session per path (with --record: the room with capture too, and the
    conversion of its chunks): the last line is a JSON object whose keys hold a figure
    for every path (so each path carried decodable, stamped video)."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.relay", *ARGS],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=150,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout.splitlines()[-1])
    assert KEYS <= set(summary)
    for key in KEYS:
        assert isinstance(summary[key], int | float), (key, summary[key])
    assert "room" in done.stdout and "relay" in done.stdout  # the human-readable table
    assert summary["conversion"]["chunks"] >= 3  # every track's chunks were converted


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
