"""Pages of live review sessions (远程审办): the clerk's start page with device pickers,
the approver's live queue and the live screen. They only render; everything live runs
in the pages' ES modules over the JSON API and the signalling socket."""

from __future__ import annotations

from aiohttp import web

from signaling.review.consent import consent_json
from signaling.review.session_routes import grant_for, session_json
from signaling.web.access import USER, allow
from signaling.web.appkeys import CASES, REVIEWS
from signaling.web.messages import OUTCOME_NAMES, SCORE_NAMES, SESSION_STATE_NAMES, message
from signaling.web.presenters import Lookup, review
from webui.pages import open_sessions, render

routes = web.RouteTableDef()


@routes.get("/cases/{case_no}/review")
@allow("clerk", scope="a case of the clerk's outlet", page=True)
async def review_start_page(request: web.Request) -> web.Response:
    """Pick face camera, document camera and microphone, preview them, start."""
    user = request[USER]
    case = await request.app[CASES].get(user, request.match_info["case_no"])
    lookup = await Lookup.load(request.app)
    sessions = [review(s, user) for s in await request.app[REVIEWS].for_case(case.id)]
    current = next((s for s in sessions if s["open"]), None)
    values = {"case": lookup.case(case), "current": current, "consent": consent_json()}
    return render(request, "review_start.html", values)


@routes.get("/queue")
@allow("approver", scope="the approver's department", page=True)
async def queue_page(request: web.Request) -> web.Response:
    lookup = await Lookup.load(request.app)
    values = {"me": lookup.user(request[USER]), **await open_sessions(request)}
    return render(request, "queue.html", values)


@routes.get("/sessions/{session_id}")
@allow(
    "clerk",
    "approver",
    "auditor",
    scope="a session the user takes part in, or audits within the auditor's jurisdiction",
    page=True,
)
async def session_page(request: web.Request) -> web.Response:
    """The live screen. Participants are checked here as the join-token route checks
    them, so an outsider gets the 403 page rather than a page that cannot connect."""
    user = request[USER]
    session = await request.app[REVIEWS].get(request.match_info["session_id"])
    if user.role != "auditor":
        await grant_for(request, user, session)
    # For an auditor this is the scope check, and the view is logged; a co-reviewing
    # approver of another department sees the case too.
    case = await request.app[CASES].get(user, session.case_no)
    lookup = await Lookup.load(request.app)
    can_invite = user.role == "approver" and user.id == session.accepted_by
    departments = lookup.catalog.departments if can_invite else ()
    values = {
        "session": session_json(session),
        "case": lookup.case(case),
        "state_name": SESSION_STATE_NAMES.get(session.state, session.state),
        "state_message": message(f"state_{session.state}"),
        "can_end": user.role == "approver"
        and await request.app[REVIEWS].may_end(user.id, session.id),
        "can_decide": user.role == "approver" and user.id == session.accepted_by,
        "can_invite": can_invite,
        "departments": [d for d in departments if d.id != session.department_id],
        "outcome_names": OUTCOME_NAMES,
        "score_names": SCORE_NAMES,
    }
    return render(request, "session.html", values)
