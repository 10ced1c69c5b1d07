"""The bus: topic-based fan-out of small JSON messages between parts of the service.

In-process by default; a Redis implementation behind the same Protocol serves several
nodes (see docs/operations.md)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any, Protocol

Message = dict[str, Any]


class Bus(Protocol):
    async def publish(self, topic: str, message: Message) -> None: ...

    def subscribe(
        self, topic: str
    ) -> contextlib.AbstractAsyncContextManager[asyncio.Queue[Message]]:
        """A queue receiving every message published on ``topic`` while open."""
        ...

    async def close(self) -> None: ...


class InProcessBus:
    QUEUE_LIMIT = 256

    def __init__(self) -> None:
        self._queues: dict[str, set[asyncio.Queue[Message]]] = {}

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

    async def close(self) -> None:
        self._queues.clear()
