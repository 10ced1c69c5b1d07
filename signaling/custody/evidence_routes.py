"""A case's evidence over the JSON API, and the stored evidence files themselves
(see docs/api.md). Both are scoped like the case."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from aiohttp import web

from recorder.auditlog import chain_of
from recorder.integrity import PURGE_EVENT
from recorder.stills import sniff
from recorder.store import HASH_PATTERN
from signaling.custody.evidence import SUPERVISORS
from signaling.custody.playback_routes import ticket_valid
from signaling.web.access import STAFF, USER, allow
from signaling.web.appkeys import AUDIT, CASE_EVIDENCE, CASES, EVIDENCE, KEYS
from signaling.web.errors import NotFound
from signaling.web.json_api import json_response

routes = web.RouteTableDef()
SNIFF_BYTES = 16


def content_type(head: bytes, role: str, meta: dict[str, Any], source: str | None) -> str:
    """By the file's meta if it says, else by its first bytes."""
    declared = meta.get("content_type")
    if isinstance(declared, str) and declared:
        return declared
    image = sniff(head)
    if image is not None:
        return image
    if role == "playable":
        kind = "audio" if source == "audio" else "video"
        if head.startswith(b"\x1a\x45\xdf\xa3"):
            return f"{kind}/webm"
        if head[4:8] == b"ftyp":
            return f"{kind}/mp4"
    return "application/octet-stream"


def _head(path: Path) -> bytes | None:
    try:
        with path.open("rb") as handle:
            return handle.read(SNIFF_BYTES)
    except FileNotFoundError:
        return None


def _from_start(request: web.Request) -> bool:
    """A whole read or the first range of one (a player reads a file in ranges), as
    aiohttp will serve it: a suffix range (``bytes=-N``) or ``bytes=00-`` reads from the
    start too, and a Range it cannot parse gets the whole file."""
    try:
        start = request.http_range.start
    except ValueError:
        return True
    return start is None or start <= 0


@routes.get("/api/v1/cases/{case_no}/evidence")
@allow(
    "clerk", "approver", "auditor", scope="a case of the user's outlet, department or jurisdiction"
)
async def case_evidence(request: web.Request) -> web.Response:
    case = await request.app[CASES].get(request[USER], request.match_info["case_no"])
    return json_response(await request.app[CASE_EVIDENCE].build(case, request[USER]))


def _in_playback(request: web.Request, session_id: str | None) -> bool:
    """Read by the player of a logged playback of the file's session (``?view=``)."""
    ticket = request.query.get("view")
    return bool(ticket and session_id) and ticket_valid(
        request.app[KEYS].cookie_key, request[USER], str(session_id), str(ticket)
    )


@routes.get("/api/v1/evidence/{sha256}")
@allow(*STAFF, "admin", scope="a file of a case in the user's scope (404 otherwise)")
async def evidence_file(request: web.Request) -> web.StreamResponse:
    user, sha256 = request[USER], request.match_info["sha256"]
    found = None
    if HASH_PATTERN.fullmatch(sha256):
        found = await request.app[CASE_EVIDENCE].find_file(user, sha256)
    if found is None:
        raise NotFound("evidence_not_found")
    row, case_no = found
    path = request.app[EVIDENCE].path(sha256)
    head = await asyncio.to_thread(_head, path)
    if head is None:
        purged = await request.app[AUDIT].events(chain_of(case_no), PURGE_EVENT)
        if any(e.detail.get("sha256") == sha256 for e in purged):
            raise NotFound("evidence_purged")
        raise NotFound("evidence_missing")
    playback = row.role == "playable" and _in_playback(request, row.session_id)
    if user.role in SUPERVISORS and _from_start(request) and not playback:
        await request.app[AUDIT].append(
            "evidence_viewed", actor=user.username, case_no=case_no, sha256=sha256, role=row.role
        )
    response = web.FileResponse(path)
    response.content_type = content_type(head, row.role, row.meta or {}, row.source)
    response.headers["Content-Disposition"] = "inline"
    return response
