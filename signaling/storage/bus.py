"""The bus: topic-based fan-out of small JSON messages between parts of the service, and
one-time claims (a key that may be claimed once, e.g. a spent join token).

In-process by default; a Redis implementation behind the same Protocol serves several
nodes (see docs/operations.md)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections.abc import AsyncIterator
from typing import Any, Protocol

import redis.asyncio as redis

logger = logging.getLogger(__name__)

Message = dict[str, Any]


class Bus(Protocol):
    async def publish(self, topic: str, message: Message) -> None: ...

    def subscribe(
        self, topic: str
    ) -> contextlib.AbstractAsyncContextManager[asyncio.Queue[Message]]:
        """A queue receiving every message published on ``topic`` while open."""
        ...

    async def claim(self, key: str, seconds: float) -> bool:
        """True for the first claim of ``key`` on any node; False while an earlier claim
        holds (it lapses ``seconds`` after it was made)."""
        ...

    async def close(self) -> None: ...


class InProcessBus:
    QUEUE_LIMIT = 256

    def __init__(self) -> None:
        self._queues: dict[str, set[asyncio.Queue[Message]]] = {}
        self._claims: dict[str, float] = {}  # key -> when its claim lapses (monotonic)

    async def publish(self, topic: str, message: Message) -> None:
        for queue in tuple(self._queues.get(topic, ())):
            if queue.full():  # a stuck reader loses its oldest message, not the bus
                queue.get_nowait()
            queue.put_nowait(message)

    @contextlib.asynccontextmanager
    async def subscribe(self, topic: str) -> AsyncIterator[asyncio.Queue[Message]]:
        queue: asyncio.Queue[Message] = asyncio.Queue(self.QUEUE_LIMIT)
        self._queues.setdefault(topic, set()).add(queue)
        try:
            yield queue
        finally:
            listeners = self._queues.get(topic, set())
            listeners.discard(queue)
            if not listeners:
                self._queues.pop(topic, None)

    async def claim(self, key: str, seconds: float) -> bool:
        now = time.monotonic()
        self._claims = {k: until for k, until in self._claims.items() if until > now}
        if key in self._claims:
            return False
        self._claims[key] = now + seconds
        return True

    async def close(self) -> None:
        self._queues.clear()
        self._claims.clear()


class RedisBus:
    """The bus across nodes: Redis pub/sub, one subscription per topic per node, fanned
    out locally to every subscriber of this node."""

    PREFIX = "coreview:"

    def __init__(self, url: str) -> None:
        self._redis = redis.from_url(url)
        self._pubsub = self._redis.pubsub()
        self._local = InProcessBus()
        self._counts: dict[str, int] = {}
        self._lock = asyncio.Lock()
        self._reader: asyncio.Task[None] | None = None

    async def publish(self, topic: str, message: Message) -> None:
        await self._redis.publish(self.PREFIX + topic, json.dumps(message, ensure_ascii=False))

    @contextlib.asynccontextmanager
    async def subscribe(self, topic: str) -> AsyncIterator[asyncio.Queue[Message]]:
        async with self._local.subscribe(topic) as queue:
            async with self._lock:
                if not self._counts.get(topic):
                    await self._pubsub.subscribe(self.PREFIX + topic)
                self._counts[topic] = self._counts.get(topic, 0) + 1
                if self._reader is None or self._reader.done():
                    self._reader = asyncio.create_task(self._read())
            try:
                yield queue
            finally:
                async with self._lock:
                    self._counts[topic] -= 1
                    if not self._counts[topic]:
                        del self._counts[topic]
                        await self._pubsub.unsubscribe(self.PREFIX + topic)

    async def claim(self, key: str, seconds: float) -> bool:
        milliseconds = max(1, math.ceil(seconds * 1000))
        return bool(await self._redis.set(self.PREFIX + key, b"1", nx=True, px=milliseconds))

    async def _read(self) -> None:
        while self._counts:
            item = await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if item is None or item.get("type") != "message":
                continue
            channel = (
                item["channel"].decode() if isinstance(item["channel"], bytes) else item["channel"]
            )
            try:
                message = json.loads(item["data"])
            except ValueError:
                logger.warning("bus: ignored a malformed message on %s", channel)
                continue
            await self._local.publish(channel.removeprefix(self.PREFIX), message)

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
        await self._pubsub.aclose()
        await self._redis.aclose()
