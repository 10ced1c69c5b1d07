"""Playback of a session's recording for auditors and admins (docs/api.md, "Playback").

Opening a playback is logged once (``recording_viewed``) and answered with a view
ticket; the player fetches the session's playable files from
``GET /api/v1/evidence/{sha256}?view=<ticket>``, which then logs no ``evidence_viewed``
per chunk (the view is already logged). A ticket is an HMAC over the user, the session
and the view's log index, so no file of a session reaches the player unlogged.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
from typing import Any

from aiohttp import web

from recorder.auditlog import chain_of
from recorder.store import EvidenceStore
from signaling.china_time import china_iso
from signaling.custody.evidence import case_files
from signaling.custody.playback import Files, purged_files, timeline
from signaling.storage.models import Role, User
from signaling.web.access import USER, allow
from signaling.web.appkeys import AUDIT, CASES, ENGINE, EVIDENCE, KEYS, REVIEWS
from signaling.web.errors import NotFound
from signaling.web.json_api import json_response
from signaling.web.messages import EVENT_NAMES, SESSION_STATE_NAMES

routes = web.RouteTableDef()
VIEW_EVENT = "recording_viewed"
PLAYBACK_ROLES: tuple[Role, ...] = ("auditor", "admin")
SCOPE = "a session of a case in the auditor's jurisdiction (admins: every case)"


def _mac(key: bytes, user: User, session_id: str, log_index: int) -> str:
    message = f"{VIEW_EVENT}\n{user.id}\n{session_id}\n{log_index}".encode()
    digest = hmac.new(key, message, hashlib.sha256).digest()[:18]
    return base64.urlsafe_b64encode(digest).decode()


def view_ticket(key: bytes, user: User, session_id: str, log_index: int) -> str:
    return f"{log_index}.{_mac(key, user, session_id, log_index)}"


def ticket_valid(key: bytes, user: User, session_id: str, ticket: str) -> bool:
    """The ticket was issued to this user for a logged view of this session."""
    index, _, mac = ticket.partition(".")
    if not index.isdigit() or len(index) > 18:
        return False
    return hmac.compare_digest(mac, _mac(key, user, session_id, int(index)))


def _absent(store: EvidenceStore, hashes: list[str]) -> frozenset[str]:
    return frozenset(sha for sha in hashes if not store.path(sha).is_file())


async def open_playback(request: web.Request) -> dict[str, Any]:
    """The playback of the session named in the URL, for the requesting user; logs the
    view (``recording_viewed``) and issues its ticket. 404 for an unknown case or a
    session of another case, 403 out of scope."""
    app, user = request.app, request[USER]
    case_no, session_id = request.match_info["case_no"], request.match_info["session_id"]
    case = await app[CASES].get(user, case_no, log_view=False)
    session = await app[REVIEWS].get(session_id)
    if session.case_no != case.case_no:
        raise NotFound("session_not_found")
    rows = await case_files(app[ENGINE], case.id)
    events = await app[AUDIT].events(chain_of(case.case_no))
    playables = {r.derived_from: r for r in rows if r.role == "playable" and r.derived_from}
    purged = purged_files(events)
    hashes = [r.sha256 for r in playables.values() if r.sha256 not in purged]
    failed = frozenset(str(e.detail.get("chunk")) for e in events if e.kind == "conversion_failed")
    missing = await asyncio.to_thread(_absent, app[EVIDENCE], hashes)
    files = Files(playables, purged, missing, failed)
    laid = timeline(session_id, rows, events, files)
    for event in laid["events"]:
        event["name"] = EVENT_NAMES.get(event["kind"], event["kind"])
    viewed = await app[AUDIT].append(
        VIEW_EVENT, actor=user.username, case_no=case.case_no, session=session_id
    )
    return {
        "case_no": case.case_no,
        "session": {
            "id": session.id,
            "state": session.state,
            "state_name": SESSION_STATE_NAMES.get(session.state, session.state),
            "created_at": china_iso(session.created_at),
        },
        **laid,
        "view": view_ticket(app[KEYS].cookie_key, user, session_id, viewed.log_index),
    }


@routes.get("/api/v1/cases/{case_no}/sessions/{session_id}/playback")
@allow(*PLAYBACK_ROLES, scope=SCOPE)
async def playback(request: web.Request) -> web.Response:
    return json_response(await open_playback(request))
