"""HTTP routes of document stills and snapshots (docs/api.md): upload, list, fetch, and
server-side snapshots of live video tracks."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from signaling.review.join_tokens import Grant
from signaling.review.session_routes import grant_for
from signaling.review.sessions import ReviewSession
from signaling.storage.models import Role
from signaling.web.access import USER, allow
from signaling.web.appkeys import LIVE, REVIEWS, STILLS
from signaling.web.errors import Conflict, Forbidden, InvalidInput, NotFound, UnsupportedType
from signaling.web.json_api import json_response, read_json

routes = web.RouteTableDef()
HASH = re.compile(r"[0-9a-f]{64}")
REQUEST_ID = re.compile(r"[0-9a-f]{16}")
STILL_TYPES = ("image/jpeg", "image/png", "image/webp")
READ_CHUNK = 1 << 16
VIEWERS: tuple[Role, ...] = ("clerk", "approver", "auditor")


async def _session(request: web.Request) -> tuple[ReviewSession, Grant]:
    session = await request.app[REVIEWS].get(request.match_info["session_id"])
    return session, await grant_for(request, request[USER], session, joining=False)


def _material_id(value: str | None) -> int | None:
    if value is None or value == "":
        return None
    if not value.isdigit() or len(value) > 9:
        raise InvalidInput("unknown_material")
    return int(value)


async def _body(request: web.Request) -> bytes:
    """The raw body, read as a stream under the still limit (the app's own limit is for
    JSON bodies); nothing over the limit is kept."""
    stills = request.app[STILLS]
    stills.check_size(request.content_length)
    body = bytearray()
    async for chunk in request.content.iter_chunked(READ_CHUNK):
        body += chunk
        stills.check_size(len(body))
    return bytes(body)


@routes.post("/api/v1/sessions/{session_id}/stills")
@allow(*VIEWERS, scope="a live session whose document camera the user publishes (its clerk)")
async def upload_still(request: web.Request) -> web.Response:
    session, grant = await _session(request)
    if grant.hidden or grant.role != "clerk" or "document" not in grant.publish:
        raise Forbidden("no_document_grant")
    if session.state != "live":
        raise Conflict("still_not_live")
    content_type = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if content_type not in STILL_TYPES:
        raise UnsupportedType("still_bad_content_type")
    sha256 = request.headers.get("X-Still-SHA256", "").strip().lower()
    if not HASH.fullmatch(sha256):
        raise InvalidInput("still_bad_hash")
    request_id = request.query.get("request") or None
    if request_id is not None and not REQUEST_ID.fullmatch(request_id):
        raise InvalidInput("unknown_still_request")
    stills = request.app[STILLS]
    material = await stills.filed_under(
        session, _material_id(request.query.get("material")), request_id
    )
    data = await _body(request)
    still, created = await stills.add(
        session, grant.username, data, content_type, sha256, material, request_id
    )
    return json_response({"still": still}, status=201 if created else 200)


@routes.get("/api/v1/sessions/{session_id}/stills")
@allow(*VIEWERS, scope="a session the user takes part in or audits")
async def list_stills(request: web.Request) -> web.Response:
    session, grant = await _session(request)
    stills = request.app[STILLS]
    body: dict[str, Any] = {"stills": await stills.of_session(session.id)}
    if grant.role != "clerk":
        body["snapshots"] = await stills.of_session(session.id, "snapshot", hidden=grant.hidden)
    return json_response(body)


async def _image(request: web.Request, role: str) -> web.FileResponse:
    session, _grant = await _session(request)
    sha256 = request.match_info["sha256"]
    if not HASH.fullmatch(sha256):
        raise NotFound("still_not_found")
    path, content_type = await request.app[STILLS].file(session.id, role, sha256)
    response = web.FileResponse(path)
    response.content_type = content_type
    # content-addressed: the bytes under this name never change
    response.headers["Cache-Control"] = "private, max-age=31536000, immutable"
    return response


@routes.get("/api/v1/sessions/{session_id}/stills/{sha256}")
@allow(*VIEWERS, scope="a still of a session the user takes part in or audits")
async def get_still(request: web.Request) -> web.FileResponse:
    return await _image(request, "still")


@routes.get("/api/v1/sessions/{session_id}/snapshots/{sha256}")
@allow("approver", "auditor", scope="a snapshot of a session the user takes part in or audits")
async def get_snapshot(request: web.Request) -> web.FileResponse:
    return await _image(request, "snapshot")


@routes.post("/api/v1/sessions/{session_id}/snapshots")
@allow("approver", "auditor", scope="a live session the approver takes part in or audits")
async def take_snapshot(request: web.Request) -> web.Response:
    session, grant = await _session(request)
    if session.state != "live":
        raise Conflict("still_not_live")
    data = await read_json(request)
    participant, source = data.get("participant"), data.get("source")
    image_format = data.get("format", "png")
    if not isinstance(participant, str) or not participant:
        raise InvalidInput("field_required", field="participant")
    if source not in ("face", "document"):
        raise InvalidInput("field_invalid", field="source")
    if image_format not in ("png", "jpeg"):
        raise InvalidInput("field_invalid", field="format")
    live = request.app[LIVE].sessions.get(session.id)
    track = None if live is None or live.room is None else live.room.track(participant, source)
    if track is None:
        raise NotFound("track_not_found")
    shot = await request.app[STILLS].snapshot(
        session, grant.username, track, image_format, hidden=grant.hidden
    )
    return json_response({"snapshot": shot}, status=201)
