"""Review actions over the JSON API: the consent text, the session's checklist state,
material marks, the decision and the rating (see docs/api.md)."""

from __future__ import annotations

from aiohttp import web

from signaling.cases.cases import case_materials
from signaling.review.consent import consent_json
from signaling.review.session_routes import grant_for
from signaling.web.access import USER, allow
from signaling.web.appkeys import ACTIONS, CASES, ENGINE, FOLLOWUPS, REVIEWS
from signaling.web.json_api import json_response, read_json

routes = web.RouteTableDef()


@routes.get("/api/v1/consent")
@allow("clerk", scope="the consent text every clerk shows")
async def get_consent(_request: web.Request) -> web.Response:
    return json_response({"consent": consent_json()})


@routes.get("/api/v1/sessions/{session_id}/actions")
@allow("clerk", "approver", "auditor", scope="a session the user takes part in or audits")
async def get_actions(request: web.Request) -> web.Response:
    """The case's materials, marks, decision, and the session's consent and rating."""
    session = await request.app[REVIEWS].get(request.match_info["session_id"])
    await grant_for(request, request[USER], session, joining=False)
    actions = request.app[ACTIONS]
    done = await actions.of_case(session.case_id)
    return json_response(
        {
            "materials": await case_materials(request.app[ENGINE], session.case_id),
            "marks": done["marks"],
            "decision": done["decision"],
            "consent": done["consents"].get(session.id),
            "rating": done["ratings"].get(session.id),
        }
    )


@routes.post("/api/v1/sessions/{session_id}/marks")
@allow("approver", scope="a live session the approver accepted or co-reviews")
async def post_mark(request: web.Request) -> web.Response:
    mark = await request.app[ACTIONS].mark(
        request[USER], request.match_info["session_id"], await read_json(request)
    )
    return json_response({"mark": mark}, status=201)


@routes.post("/api/v1/sessions/{session_id}/decision")
@allow("approver", scope="a live session the approver accepted")
async def post_decision(request: web.Request) -> web.Response:
    decision = await request.app[ACTIONS].decide(
        request[USER], request.match_info["session_id"], await read_json(request)
    )
    return json_response({"decision": decision}, status=201)


@routes.post("/api/v1/sessions/{session_id}/rating")
@allow("clerk", scope="a live or ended session the clerk started")
async def post_rating(request: web.Request) -> web.Response:
    rating = await request.app[ACTIONS].rate(
        request[USER], request.match_info["session_id"], await read_json(request)
    )
    return json_response({"rating": rating}, status=201)


@routes.post("/api/v1/sessions/{session_id}/followup")
@allow("auditor", scope="a case in the auditor's jurisdiction")
async def post_followup(request: web.Request) -> web.Response:
    """The open stage of a bad rating's follow-up done: 回访核实 (with whether the
    complaint holds) or 整改."""
    user = request[USER]
    session = await request.app[REVIEWS].get(request.match_info["session_id"])
    await request.app[CASES].get(user, session.case_no)
    followup = await request.app[FOLLOWUPS].advance(user, session, await read_json(request))
    return json_response({"followup": followup})
