"""``GET /healthz``: whether the node serves (see signaling/node/health.py)."""

from __future__ import annotations

from aiohttp import web

from signaling.web.access import public
from signaling.web.appkeys import HEALTH
from signaling.web.json_api import json_response

routes = web.RouteTableDef()


@routes.get("/healthz")
@public(page=False)
async def healthz(request: web.Request) -> web.Response:
    """200 once the schema is migrated and the database answers (checked at most once
    a second); 503 before that or while it does not."""
    health = request.app.get(HEALTH)
    if health is None:
        return json_response({"status": "starting"}, status=503)
    if not await health.database_ok():
        return json_response({"status": "database_unavailable"}, status=503)
    return json_response({"status": "ok"})
