"""The audit log's API: checkpoints on demand (see docs/evidence.md)."""

from __future__ import annotations

from aiohttp import web

from recorder.errors import LogError
from signaling.access import allow
from signaling.api import json_response
from signaling.appkeys import AUDIT
from signaling.errors import Conflict

routes = web.RouteTableDef()


@routes.post("/api/v1/log/checkpoints")
@allow("auditor", "admin", scope="the node's whole log")
async def sign_checkpoint(request: web.Request) -> web.Response:
    try:
        checkpoint = await request.app[AUDIT].checkpoint()
    except LogError as exc:  # a log that no longer matches its signatures is not signed
        raise Conflict(exc.code) from exc
    return json_response({"checkpoint": checkpoint.to_dict()}, status=201)
