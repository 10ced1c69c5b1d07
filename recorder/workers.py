"""The conversion worker: one process at low priority, off the event loop.

Started with "spawn" (a forked asyncio process is unsafe). A job whose worker dies (the
pool breaks) runs again on a fresh pool; a job that fails ``ATTEMPTS`` times raises
``JobFailed``.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

logger = logging.getLogger(__name__)

ATTEMPTS = 2
NICENESS = 10
T = TypeVar("T")


class JobFailed(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _worker_started(parent: int) -> None:
    """At low priority; on Linux the worker ends with the process that started it, so a
    server killed outright (SIGKILL, OOM) leaves no worker behind."""
    os.nice(NICENESS)
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # it died before prctl took effect
        os._exit(0)


class WorkerPool:
    def __init__(self) -> None:
        self._executor = self._new()
        self.rebuilt = 0

    @staticmethod
    def _new() -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=1,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_worker_started,
            initargs=(os.getpid(),),
        )

    async def run(self, job: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        reason = ""
        for attempt in range(1, ATTEMPTS + 1):
            executor = self._executor
            try:
                return await loop.run_in_executor(executor, job, *args)
            except BrokenProcessPool as exc:
                reason = f"worker died: {exc}"
                if self._executor is executor:  # the first job to notice rebuilds it
                    self._executor = self._new()
                    self.rebuilt += 1
                    executor.shutdown(wait=False, cancel_futures=True)
            except Exception as exc:
                reason = f"{type(exc).__name__}: {exc}"
            logger.warning("job %s failed (attempt %d): %s", job.__name__, attempt, reason)
        raise JobFailed(reason)

    async def close(self) -> None:
        await asyncio.to_thread(self._executor.shutdown, wait=True, cancel_futures=True)
