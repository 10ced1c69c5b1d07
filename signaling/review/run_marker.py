"""The node's run marker: a small file saying the node runs and which review sessions it
holds, rewritten every few seconds and removed at a clean stop. Found at start, it says
the last run was killed (SIGKILL, power loss): its sessions were cut, also those that
had nothing recording at that moment, and their gap starts at the last beat."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from recorder.clock import Clock
from recorder.private_files import write_private

logger = logging.getLogger(__name__)

MARKER_NAME = "running.json"
BEAT_SECONDS = 2.0
"""How often the marker is rewritten: the crash time is known to within this."""


@dataclass(frozen=True)
class LastRun:
    """What a killed run's marker said: its last beat (s since the epoch) and sessions."""

    beat: float
    sessions: tuple[str, ...]


def _write(path: Path, beat: float, sessions: list[str]) -> None:
    """Replace the marker atomically (a crash mid-write leaves the old one)."""
    write_private(path, json.dumps({"beat": beat, "sessions": sorted(sessions)}).encode())


def read_last_run(data_dir: Path) -> LastRun | None:
    """The previous run's marker if it did not stop cleanly, else None."""
    path = data_dir / MARKER_NAME
    try:
        data = json.loads(path.read_text())
        return LastRun(float(data["beat"]), tuple(str(s) for s in data["sessions"]))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        # a marker there but unreadable: still a crash, its sessions unknown
        logger.error("run marker %s unreadable; its sessions are unknown", path)
        return LastRun(0.0, ())


class RunMarker:
    def __init__(self, data_dir: Path, clock: Clock) -> None:
        self.path = data_dir / MARKER_NAME
        self._clock = clock
        self._sessions: Callable[[], list[str]] = list
        self._task: asyncio.Task[None] | None = None

    async def start(self, sessions: Callable[[], list[str]]) -> None:
        """Beat now and every ``BEAT_SECONDS``, listing ``sessions()``."""
        self._sessions = sessions
        await self.beat()
        self._task = asyncio.create_task(self._run())

    async def beat(self) -> None:
        await asyncio.to_thread(_write, self.path, self._clock.now().timestamp(), self._sessions())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(BEAT_SECONDS)
            try:
                await self.beat()
            except OSError:
                logger.exception("could not write the run marker %s", self.path)

    async def stop(self) -> None:
        """A clean stop: no marker is left behind."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await asyncio.to_thread(self.path.unlink, missing_ok=True)
