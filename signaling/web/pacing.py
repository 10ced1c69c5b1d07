"""Reads paced beside the media: while media flows in the process, at most
``READS_AT_ONCE`` GET/HEAD handlers run at once.

Media is forwarded in the event loop's I/O callbacks, between the loop's runs of
everything else that is ready. When 40 clients poll the case list, every loop iteration
also starts dozens of handlers (each ~100 µs before its first wait), and a packet that
arrives meanwhile waits for all of them: its added latency's p95 went from 1.7 ms to
5.1 ms (bench.relay --api-load). With two handlers at once it stayed within ~1.2 ms of
the quiet figure; once forwarding itself was in C (a lower quiet figure) within 1.6-2.2
ms, and with one at a time within 1.5-1.9 ms, while beside the media the API answers as
many requests either way (1 800-2 000 a second: the loop's CPU is the limit). With no
media there is nothing to protect and pacing would only cost: the API answered ~30 %
fewer requests paced (less done per loop iteration), so it is off while no published
track is open (``install``'s ``active``).

A handler's place is given back when it returns, when it starts its response
(``on_response_prepare``: a download or an event stream does not hold it while the
client reads), or after HOLD_LIMIT. WebSocket upgrades and writes (their bodies come at
the client's pace) are not paced.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiohttp import web

from signaling.web.access import Handler

READS_AT_ONCE = 1
HOLD_LIMIT = 0.1
"""A paced handler still running after this long (s) gives its place back: it is waiting
(a slow query, a thread, another service), not keeping the loop busy, and must not hold
every other read back for as long."""
PACED_METHODS = frozenset({"GET", "HEAD"})

READ_PLACES = web.AppKey("read_places", asyncio.Semaphore)
PACING_ACTIVE: web.AppKey[Callable[[], bool]] = web.AppKey("pacing_active")
HOLDS_PLACE = web.RequestKey("holds_read_place", bool)


def install(app: web.Application, active: Callable[[], bool]) -> None:
    """Pace ``app``'s reads (its first middleware) whenever ``active()``."""
    app[READ_PLACES] = asyncio.Semaphore(READS_AT_ONCE)
    app[PACING_ACTIVE] = active
    app.middlewares.insert(0, pacing_middleware)
    app.on_response_prepare.append(_started_response)


@web.middleware
async def pacing_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if (
        request.method not in PACED_METHODS
        or "Upgrade" in request.headers
        or not request.app[PACING_ACTIVE]()
    ):
        return await handler(request)
    await request.app[READ_PLACES].acquire()
    request[HOLDS_PLACE] = True
    lease = asyncio.get_running_loop().call_later(HOLD_LIMIT, _give_back, request)
    try:
        return await handler(request)
    finally:
        lease.cancel()
        _give_back(request)


async def _started_response(request: web.Request, _response: web.StreamResponse) -> None:
    _give_back(request)


def _give_back(request: web.Request) -> None:
    if request.get(HOLDS_PLACE):
        request[HOLDS_PLACE] = False
        request.app[READ_PLACES].release()
