"""The still benchmark runs end to end and ends with its JSON summary line. A smoke
test only: the figures are the benchmark's business (``python -m bench.still``), so no
timing is asserted here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SIZE = ("--width", "1600", "--height", "1200")


@pytest.mark.bench
@pytest.mark.browser
@pytest.mark.timeout(180)
def test_bench_still_prints_a_json_summary_last() -> None:
    """One counted round of a 1600x1200 still: the last line is a JSON object with a
    figure for each step, and the still arrived at the camera's native size."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.still",
            "--rounds",
            "1",
            "--width",
            "1600",
            "--height",
            "1200",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=150,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout.splitlines()[-1])
    assert (summary["rounds"], summary["size"]) == (1, "1600x1200")
    for key in ("capture_ms", "announce_ms", "load_ms", "total_ms", "after_photo_ms"):
        assert isinstance(summary[key]["p50"], int | float), key
    assert "round 1: 1600x1200" in done.stdout
