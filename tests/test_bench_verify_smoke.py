"""The verify benchmark runs end to end on a small package and ends with its JSON
summary line. A smoke test only: no timing is asserted (``python -m bench.verify``)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIGURES = {
    "export_mb_per_s",
    "export_30_min_session_seconds",
    "verify_mb_per_s",
    "verify_no_sm3_mb_per_s",
    "hash_only_mb_per_s",
    "replay_mb_per_s",
    "reproduce_mb_per_s",
    "sha256_baseline_mb_per_s",
    "sm3_baseline_mb_per_s",
    "ratio",
    "ratio_no_sm3",
}


@pytest.mark.bench
def test_bench_verify_prints_a_json_summary_last() -> None:
    """A 16 MB package (captures and their playable files): the package verified clean
    (exit 0), and the last line is JSON with every throughput figure, per phase too, and
    the ratio to plain SHA-256."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.verify", "--megabytes", "16", "--chunk-megabytes", "4"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    figures = json.loads(done.stdout.splitlines()[-1])["verify"]
    assert FIGURES <= set(figures)
    assert all(figures[k] > 0 for k in FIGURES)
    assert figures["bytes"] >= 16 * 1024 * 1024
