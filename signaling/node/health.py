"""The node's health as ``GET /healthz`` reports it: the schema was migrated at start,
and the database answers a trivial query within ``timeout`` seconds. However many probes
arrive, the query runs at most once per ``ttl`` seconds (one in flight; the others wait
for its answer)."""

from __future__ import annotations

import asyncio
import logging
import math
import time

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

logger = logging.getLogger(__name__)


class Health:
    def __init__(self, engine: AsyncEngine, ttl: float = 1.0, timeout: float = 2.0) -> None:
        self._engine = engine
        self._ttl = ttl
        self._timeout = timeout
        self._lock = asyncio.Lock()
        self._ok = False
        self._until = -math.inf  # monotonic time the last answer holds until

    async def database_ok(self) -> bool:
        if time.monotonic() < self._until:
            return self._ok
        async with self._lock:
            if time.monotonic() < self._until:  # answered while this one waited
                return self._ok
            try:
                async with asyncio.timeout(self._timeout), self._engine.connect() as conn:
                    await conn.execute(text("SELECT 1"))
                ok = True
            except TimeoutError:
                logger.error("health check: the database did not answer in %s s", self._timeout)
                ok = False
            except Exception:  # any failure to answer is "unavailable", said in the log
                logger.exception("health check: the database did not answer")
                ok = False
            self._ok, self._until = ok, time.monotonic() + self._ttl
        return ok
