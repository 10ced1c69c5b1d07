"""Reads paced beside the media (signaling/web/pacing.py), on a real aiohttp server: one GET
handler at a time while media flows (none held back while it does not), writes and
WebSocket upgrades not held back, and a handler that has started its response, or runs
longer than HOLD_LIMIT, gives its place back."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiohttp import web

from signaling.web import pacing


class Running:
    def __init__(self) -> None:
        self.now = 0
        self.most = 0

    async def during(self, seconds: float) -> None:
        self.now += 1
        self.most = max(self.most, self.now)
        try:
            await asyncio.sleep(seconds)  # ok-sleep: a handler busy for a while
        finally:
            self.now -= 1


def paced_app(
    running: Running, streams_open: asyncio.Event, media: Callable[[], bool] = lambda: True
) -> web.Application:
    async def read(_request: web.Request) -> web.Response:
        await running.during(0.02)
        return web.json_response({"ok": True})

    async def slow(_request: web.Request) -> web.Response:
        await asyncio.sleep(2)  # ok-sleep: a read waiting on something slow
        return web.json_response({"ok": True})

    async def write(_request: web.Request) -> web.Response:
        await running.during(0.02)
        return web.json_response({"ok": True})

    async def stream(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        await response.write(b"started")
        await streams_open.wait()  # the client reads at its own pace
        await response.write_eof()
        return response

    async def socket(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for _message in ws:
            pass
        return ws

    app = web.Application()
    app.router.add_get("/read", read)
    app.router.add_get("/slow", slow)
    app.router.add_post("/write", write)
    app.router.add_get("/stream", stream)
    app.router.add_get("/ws", socket)
    pacing.install(app, active=media)
    return app


async def test_paced_reads_run_one_at_a_time_and_writes_are_not_held(aiohttp_client):
    running, streams_open = Running(), asyncio.Event()
    client = await aiohttp_client(paced_app(running, streams_open))

    async def get() -> int:
        async with client.get("/read") as response:
            return response.status

    assert await asyncio.gather(*(get() for _ in range(10))) == [200] * 10
    assert running.most == pacing.READS_AT_ONCE

    running.most = 0

    async def post() -> int:
        async with client.post("/write") as response:
            return response.status

    assert await asyncio.gather(*(post() for _ in range(6))) == [200] * 6
    assert running.most == 6


async def test_started_responses_and_sockets_hold_no_place(aiohttp_client):
    """Two downloads that have started and two open WebSockets: a read is answered."""
    running, streams_open = Running(), asyncio.Event()
    client = await aiohttp_client(paced_app(running, streams_open))
    downloads = [await client.get("/stream") for _ in range(2)]
    for download in downloads:
        assert await download.content.readexactly(7) == b"started"
    sockets = [await client.ws_connect("/ws") for _ in range(2)]
    try:
        async with asyncio.timeout(5):
            async with client.get("/read") as response:
                assert response.status == 200
    finally:
        streams_open.set()
        for download in downloads:
            await download.read()
            download.release()
        for ws in sockets:
            await ws.close()


async def test_a_failing_read_gives_its_place_back(aiohttp_client):
    """Handlers that raise (404s, errors) do not use up the places."""
    running, streams_open = Running(), asyncio.Event()
    client = await aiohttp_client(paced_app(running, streams_open))
    for _ in range(pacing.READS_AT_ONCE * 3):
        async with client.get("/missing") as response:
            assert response.status == 404
    async with asyncio.timeout(5):
        async with client.get("/read") as response:
            assert response.status == 200


async def test_reads_are_not_paced_while_no_media_flows(aiohttp_client):
    running, streams_open, flowing = Running(), asyncio.Event(), False
    client = await aiohttp_client(paced_app(running, streams_open, lambda: flowing))

    async def gets(n: int) -> list[int]:
        async def get() -> int:
            async with client.get("/read") as response:
                return response.status

        return await asyncio.gather(*(get() for _ in range(n)))

    assert await gets(10) == [200] * 10
    assert running.most == 10
    running.most, flowing = 0, True
    assert await gets(10) == [200] * 10
    assert running.most == pacing.READS_AT_ONCE


async def test_a_slow_read_holds_the_others_back_only_briefly(aiohttp_client):
    """A read still waiting after HOLD_LIMIT gives its place back: the next read does not
    wait for it."""
    running, streams_open = Running(), asyncio.Event()
    client = await aiohttp_client(paced_app(running, streams_open))
    slow = asyncio.create_task(client.get("/slow"))
    await asyncio.sleep(0.01)  # ok-sleep: the slow read takes the place first
    started = asyncio.get_running_loop().time()
    async with client.get("/read") as response:
        assert response.status == 200
    assert asyncio.get_running_loop().time() - started < 1.0
    assert not slow.done()
    (await slow).release()
