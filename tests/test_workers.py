"""The conversion worker pool (recorder/workers.py) with real processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from recorder.workers import WorkerPool

SERVER = """
import asyncio, os
from recorder.workers import WorkerPool

async def main():
    pool = WorkerPool()
    print(await pool.run(os.getpid), flush=True)
    await asyncio.sleep(60)  # ok-sleep: killed by the test before this ends

asyncio.run(main())
"""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_server_killed_outright_leaves_no_worker():
    """SIGKILL the process that owns the pool (as the OOM killer would a server): its
    worker process ends too, instead of living on as an orphan."""
    owner = subprocess.Popen(
        [sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True, cwd=os.getcwd()
    )
    try:
        assert owner.stdout is not None
        worker = int(owner.stdout.readline())
        assert worker != owner.pid and alive(worker)
        owner.send_signal(signal.SIGKILL)
        owner.wait(timeout=10)
        deadline = time.monotonic() + 10
        while alive(worker):
            assert time.monotonic() < deadline, "the worker outlived its server"
            time.sleep(0.02)  # ok-sleep: polling interval of a deadline-bound wait
    finally:
        owner.kill()
        owner.wait(timeout=10)
        if owner.stdout is not None:
            owner.stdout.close()


async def test_a_job_runs_in_a_worker_at_low_priority():
    pool = WorkerPool()
    try:
        assert await pool.run(os.getpid) != os.getpid()
        assert await pool.run(os.nice, 0) >= os.nice(0) + 10
    finally:
        await pool.close()
