"""What ``bench.server`` adds beside the relay: a loop-lag probe, the kernel's UDP drop
counters, and (``--with-api``) coreview's whole web app on the relay's loop."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from bench.common import percentile
from coreview.app import create_app
from recorder.clock import SystemClock
from signaling.node.demo import seed
from signaling.node.services import open_services
from signaling.settings import Settings

LAG_INTERVAL = 0.05
"""20 wake-ups a second: enough samples for a p99, and a cost (~0.5 ms of CPU a second)
that does not bend the server's CPU figure."""


class LoopLag:
    """How late ``sleep(LAG_INTERVAL)`` wakes up: what a packet or request waits for the
    loop."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            began = time.monotonic()
            await asyncio.sleep(LAG_INTERVAL)
            self.samples.append((time.monotonic() - began - LAG_INTERVAL) * 1000)

    def take(self) -> dict[str, float | None]:
        """p50/p99/max in ms since the last take."""
        samples, self.samples = self.samples, []

        def rounded(value: float | None) -> float | None:
            return None if value is None else round(value, 2)

        return {
            "p50": rounded(percentile(samples, 50)),
            "p99": rounded(percentile(samples, 99)),
            "max": rounded(max(samples, default=None)),
            "n": len(samples),
        }

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


def udp_errors() -> dict[str, int]:
    """``InErrors`` and ``RcvbufErrors`` of this network namespace (/proc/net/snmp)."""
    rows = [line.split() for line in Path("/proc/net/snmp").read_text().splitlines()]
    udp = [row[1:] for row in rows if row[0] == "Udp:"]
    if len(udp) < 2:
        return {}
    values = dict(zip(udp[0], udp[1], strict=False))
    return {key: int(values.get(key, 0)) for key in ("InErrors", "RcvbufErrors")}


class Api:
    """coreview's app (temporary data directory with the demo data) on this loop."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.runner: web.AppRunner | None = None
        self.login: dict[str, Any] = {}

    async def start(self) -> dict[str, Any]:
        settings = Settings(data_dir=self.data_dir)
        async with open_services(settings, SystemClock()) as services:
            accounts = await seed(services, self.data_dir)
        clerk = next(a for a in accounts if a["role"] == "clerk")
        self.runner = web.AppRunner(create_app(settings), access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = self.runner.addresses[0][1]
        self.login = {
            "url": f"http://127.0.0.1:{port}",
            "username": clerk["username"],
            "password": clerk["password"],
        }
        return self.login

    async def close(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
