"""Open WebSockets by the login session that opened them: when a login session ends
(logout, password change or reset, account disabled, expiry) its sockets are told why
(``login_ended``) and closed with 4002, on every node (the end goes over the bus); each
node also forgets the login's kept lookup (signaling/accounts/login_cache.py)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from recorder.clock import Clock
from signaling.accounts.accounts import Accounts, login_key
from signaling.review import protocol
from signaling.storage.bus import Bus
from signaling.web.messages import LOGIN_END_REASONS, message

logger = logging.getLogger(__name__)

TOPIC = "logins"
CLOSE_LOGIN_ENDED = 4002


class LoginSockets:
    def __init__(self, accounts: Accounts, bus: Bus, clock: Clock) -> None:
        self._accounts = accounts
        self._bus = bus
        self._clock = clock
        self._sockets: dict[str, set[web.WebSocketResponse]] = {}
        self._closing: set[asyncio.Task[Any]] = set()
        self._watch: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Follow ended logins (of every node) and tell the bus about this node's."""
        ready = asyncio.Event()
        self._watch = asyncio.create_task(self._follow(ready))
        await ready.wait()
        self._accounts.on_logins_ended(self._announce)

    async def _announce(self, keys: list[str], reason: str) -> None:
        await self._bus.publish(TOPIC, {"event": "logins_ended", "keys": keys, "reason": reason})

    async def _follow(self, ready: asyncio.Event) -> None:
        async with self._bus.subscribe(TOPIC) as queue:
            ready.set()
            while True:
                event = await queue.get()
                reason = str(event.get("reason", ""))
                keys = [str(key) for key in event.get("keys", ())]
                self._accounts.forget_logins(keys)  # ended on another node: not kept here
                for key in keys:
                    self.end(key, reason)

    def end(self, key: str, reason: str) -> None:
        """Tell the sockets of login ``key`` why, and close them (in the background: a
        dead client's close may take seconds)."""
        for socket in tuple(self._sockets.get(key, ())):
            task = asyncio.ensure_future(self._close(socket, reason))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    @staticmethod
    async def _close(socket: web.WebSocketResponse, reason: str) -> None:
        text = LOGIN_END_REASONS.get(reason, LOGIN_END_REASONS["logout"])
        if not socket.closed:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await socket.send_str(
                    protocol.Error(
                        "login_ended", message("login_ended", {"reason": text})
                    ).to_json()
                )
            await socket.close(code=CLOSE_LOGIN_ENDED, message=b"login ended")

    @contextlib.asynccontextmanager
    async def hold(self, token: str, socket: web.WebSocketResponse) -> AsyncIterator[None]:
        """While open, ``socket`` follows the login session of ``token``: it closes when
        that ends, or expires."""
        key = login_key(token)
        self._sockets.setdefault(key, set()).add(socket)
        expires = await self._accounts.login_expiry(token)
        delay = 0.0 if expires is None else (expires - self._clock.now()).total_seconds()
        timer = asyncio.get_running_loop().call_later(max(0.0, delay), self.end, key, "expired")
        try:
            yield
        finally:
            timer.cancel()
            held = self._sockets.get(key, set())
            held.discard(socket)
            if not held:
                self._sockets.pop(key, None)

    async def close(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            await asyncio.gather(self._watch, return_exceptions=True)
        for task in tuple(self._closing):
            task.cancel()
        await asyncio.gather(*self._closing, return_exceptions=True)
