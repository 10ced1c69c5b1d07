"""Review-session API: start, queue, accept, cancel, join tokens, co-review, end, and
the two WebSockets (signalling per session, live queue per approver)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from typing import Any

from aiohttp import WSMsgType, web

from signaling.review.consent import check_consent
from signaling.review.join_tokens import Grant
from signaling.review.live_session import send
from signaling.review.protocol import Queue
from signaling.review.sessions import ReviewSession, department_topic
from signaling.storage.models import User
from signaling.web.access import SESSION_TOKEN, USER, allow, foreign_origin
from signaling.web.appkeys import ACTIONS, CASES, LIVE, REVIEWS, TOKENS
from signaling.web.errors import Forbidden
from signaling.web.json_api import json_response, read_json

routes = web.RouteTableDef()
PUBLISH = {"clerk": ("face", "document", "audio"), "approver": ("face", "audio"), "auditor": ()}


def session_json(session: ReviewSession) -> dict[str, Any]:
    return {
        "id": session.id,
        "case_no": session.case_no,
        "state": session.state,
        "created_at": session.created_at.isoformat(timespec="seconds"),
        "end_reason": session.end_reason,
    }


async def grant_for(
    request: web.Request, user: User, session: ReviewSession, joining: bool = True
) -> Grant:
    """What the user may do in the session, or Forbidden. Auditors join live sessions
    only, but may look at any session in their scope."""
    reviews = request.app[REVIEWS]
    if user.role == "clerk" and user.id == session.created_by:
        hidden = False
    elif user.role == "approver" and (
        user.id == session.accepted_by or user.id in await reviews.co_approvers(session.id)
    ):
        hidden = False
    elif user.role == "auditor" and (session.state == "live" or not joining):
        await request.app[CASES].get(user, session.case_no)  # scope check, and logged
        hidden = True
    else:
        raise Forbidden("out_of_scope")
    return Grant(session.id, user.id, user.username, user.role, PUBLISH[user.role], hidden)


async def token_response(
    request: web.Request, session: ReviewSession, status: int = 200
) -> web.Response:
    grant = await grant_for(request, request[USER], session)
    token = request.app[TOKENS].issue(grant)
    return json_response({"session": session_json(session), "token": token}, status=status)


@routes.post("/api/v1/cases/{case_no}/sessions")
@allow("clerk", scope="a case of the clerk's outlet")
async def start_session(request: web.Request) -> web.Response:
    """Requires ``{"consent": true}``: the applicant agreed to the recording after the
    clerk showed the consent text (signaling/review/actions.py); recorded with the session."""
    user = request[USER]
    case = await request.app[CASES].get(user, request.match_info["case_no"])
    body = await read_json(request) if request.body_exists else {}
    check_consent(body)
    session = await request.app[REVIEWS].start(
        user,
        case.id,
        case.case_no,
        case.department_id,
        functools.partial(request.app[ACTIONS].record_consent, user),
    )
    return await token_response(request, session, status=201)


@routes.get("/api/v1/sessions/{session_id}")
@allow("clerk", "approver", "auditor", scope="a session the user takes part in or audits")
async def get_session(request: web.Request) -> web.Response:
    session = await request.app[REVIEWS].get(request.match_info["session_id"])
    await grant_for(request, request[USER], session, joining=False)
    return json_response({"session": session_json(session)})


@routes.post("/api/v1/sessions/{session_id}/token")
@allow("clerk", "approver", "auditor", scope="a session the user takes part in or audits")
async def join_token(request: web.Request) -> web.Response:
    session = await request.app[REVIEWS].get(request.match_info["session_id"])
    return await token_response(request, session)


@routes.post("/api/v1/sessions/{session_id}/accept")
@allow("approver", scope="a waiting session of the approver's department")
async def accept_session(request: web.Request) -> web.Response:
    session = await request.app[REVIEWS].accept(request[USER], request.match_info["session_id"])
    request.app[LIVE].expect(session)
    return await token_response(request, session)


@routes.post("/api/v1/sessions/{session_id}/cancel")
@allow("clerk", scope="a waiting session the clerk started")
async def cancel_session(request: web.Request) -> web.Response:
    session = await request.app[REVIEWS].cancel(request.match_info["session_id"], request[USER])
    return json_response({"session": session_json(session)})


@routes.post("/api/v1/sessions/{session_id}/end")
@allow("approver", scope="a live session the approver accepted or co-reviews")
async def end_session(request: web.Request) -> web.Response:
    reviews = request.app[REVIEWS]
    session_id = request.match_info["session_id"]
    if not await reviews.may_end(request[USER].id, session_id):
        raise Forbidden("not_session_approver")
    session = await reviews.end(session_id, "ended_by_approver", request[USER].username)
    return json_response({"session": session_json(session)})


@routes.post("/api/v1/sessions/{session_id}/invite")
@allow("approver", scope="a live session the approver accepted")
async def invite(request: web.Request) -> web.Response:
    data = await read_json(request)
    department = data.get("department")
    approver = data.get("approver")
    await request.app[REVIEWS].invite(
        request[USER],
        request.match_info["session_id"],
        department if isinstance(department, str) else "",
        approver if isinstance(approver, str) and approver else None,
    )
    return json_response({"status": "invited"}, status=201)


@routes.post("/api/v1/sessions/{session_id}/join-invitation")
@allow("approver", scope="an invitation to the approver's department")
async def join_invitation(request: web.Request) -> web.Response:
    session = await request.app[REVIEWS].accept_invitation(
        request[USER], request.match_info["session_id"]
    )
    return await token_response(request, session)


@routes.get("/api/v1/queue")
@allow("approver", scope="the approver's department")
async def get_queue(request: web.Request) -> web.Response:
    return json_response({"items": await request.app[REVIEWS].queue(request[USER])})


def same_origin(request: web.Request) -> None:
    """Browsers send Origin on WebSocket handshakes: refuse other sites' pages."""
    if foreign_origin(request):
        raise Forbidden("csrf_failed")


@routes.get("/api/v1/queue/ws")
@allow("approver", scope="the approver's department")
async def queue_socket(request: web.Request) -> web.WebSocketResponse:
    same_origin(request)
    user = request[USER]
    reviews = request.app[REVIEWS]
    socket = web.WebSocketResponse(heartbeat=15.0, max_msg_size=4096)
    await socket.prepare(request)
    live = request.app[LIVE]
    live.queue_sockets.add(socket)
    async with (
        live.logins.hold(request[SESSION_TOKEN], socket),
        live.bus.subscribe(department_topic(user.department_id or 0)) as events,
    ):
        await send(socket, Queue(await reviews.queue(user)))
        reader = asyncio.ensure_future(socket.receive())
        try:
            while not socket.closed:
                changed = asyncio.ensure_future(events.get())
                done, _ = await asyncio.wait({reader, changed}, return_when=asyncio.FIRST_COMPLETED)
                if reader in done:
                    changed.cancel()
                    if reader.result().type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.ERROR):
                        break
                    reader = asyncio.ensure_future(socket.receive())
                    continue
                await send(socket, Queue(await reviews.queue(user)))
        finally:
            live.queue_sockets.discard(socket)
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
    return socket


@routes.get("/api/v1/sessions/{session_id}/ws")
@allow("clerk", "approver", "auditor", scope="a session the join token names")
async def session_socket(request: web.Request) -> web.WebSocketResponse:
    same_origin(request)
    return await request.app[LIVE].serve(
        request, request[USER].id, request.match_info["session_id"], request[SESSION_TOKEN]
    )
