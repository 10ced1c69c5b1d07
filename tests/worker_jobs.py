"""Jobs for the worker pool tests; they run in the spawned worker process."""

from __future__ import annotations

import os
import time
from pathlib import Path

JOB_LIMIT_SECONDS = 30.0


def started_then_wait(started: str, release: str) -> int:
    """Say (by a file holding this PID) that the job started; return once ``release``
    exists (or fail after a deadline)."""
    Path(started + ".tmp").write_text(str(os.getpid()))
    os.replace(started + ".tmp", started)  # whole, or not there
    deadline = time.monotonic() + JOB_LIMIT_SECONDS
    while not Path(release).exists():
        if time.monotonic() > deadline:
            raise TimeoutError("never released")
        time.sleep(0.01)  # ok-sleep: polling interval of a deadline-bound wait
    return os.getpid()


def always_fails() -> None:
    raise ValueError("broken chunk")


def niceness() -> int:
    return os.nice(0)
