"""The audit log's API: checkpoints on demand (see docs/evidence.md)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from recorder.errors import LogError
from signaling.web.access import allow
from signaling.web.appkeys import AUDIT
from signaling.web.errors import Conflict
from signaling.web.json_api import json_response
from signaling.web.messages import message

routes = web.RouteTableDef()


@routes.post("/api/v1/log/checkpoints")
@allow("auditor", "admin", scope="the node's whole log")
async def sign_checkpoint(request: web.Request) -> web.Response:
    audit = request.app[AUDIT]
    try:
        checkpoint = await audit.checkpoint()
    except LogError as exc:  # a log that no longer matches its signatures is not signed
        raise Conflict(exc.code) from exc
    body: dict[str, Any] = {"checkpoint": checkpoint.to_dict()}
    if audit.witness_behind:  # signed and stored all the same; logged by the log
        code = "witness_unwritten"
        body["warning"] = {"code": code, "message": message(code)}
    return json_response(body, status=201)
