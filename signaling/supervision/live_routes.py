"""Live supervision API: ``GET /api/v1/supervision/live`` (docs/api.md)."""

from __future__ import annotations

from aiohttp import web

from signaling.china_time import china_iso
from signaling.supervision.live import Supervision
from signaling.web.access import USER, allow
from signaling.web.appkeys import CASES, CLOCK, ENGINE, LIVE
from signaling.web.json_api import json_response

routes = web.RouteTableDef()


def supervision(app: web.Application) -> Supervision:
    return Supervision(app[ENGINE], app[CLOCK], app[CASES], app[LIVE])


@routes.get("/api/v1/supervision/live")
@allow("auditor", scope="open sessions of cases in the auditor's jurisdiction")
async def live_sessions(request: web.Request) -> web.Response:
    """Waiting and live sessions in scope, with their figures, as of ``at``."""
    found = await supervision(request.app).open_sessions(request[USER])
    at = china_iso(request.app[CLOCK].now())
    return json_response({"sessions": found, "at": at})
