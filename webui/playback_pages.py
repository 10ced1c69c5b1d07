"""The playback page (回放): a session's recording with its event timeline, for
auditors and admins. The page opens the playback (logged ``recording_viewed``) and
hands the timeline to its ES module (webui/static/js/playback.js)."""

from __future__ import annotations

import json
import math

from aiohttp import web

from signaling.custody.playback_routes import PLAYBACK_ROLES, SCOPE, open_playback
from signaling.web.access import USER, allow
from signaling.web.appkeys import CASES
from signaling.web.presenters import Lookup
from webui.case_view import SOURCE_NAMES, event_rows
from webui.pages import render

routes = web.RouteTableDef()


def clock(seconds: float) -> str:
    """12.3 → "00:12"; before the recording, rounded away from it: -0.3 → "-00:01"."""
    sign = "-" if seconds < 0 else ""
    whole = math.ceil(-seconds) if seconds < 0 else int(seconds)
    minutes, secs = divmod(whole, 60)
    hours, minutes = divmod(minutes, 60)
    text = f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"
    return sign + text


@routes.get("/cases/{case_no}/sessions/{session_id}/playback")
@allow(*PLAYBACK_ROLES, scope=SCOPE, page=True)
async def playback_page(request: web.Request) -> web.Response:
    data = await open_playback(request)
    case = await request.app[CASES].get(request[USER], data["case_no"], log_view=False)
    lookup = await Lookup.load(request.app)
    described = event_rows([{**e, "case_seq": e["seq"]} for e in data["events"]])
    events = [
        {**row, "t": e["t"], "clock": clock(e["t"]), "sha256": e["detail"].get("sha256")}
        for row, e in zip(described, data["events"], strict=True)
    ]
    values = {
        "case": lookup.case(case),
        "session": data["session"],
        "events": events,
        "duration": clock(data["duration"]),
        "data": json.dumps(data, ensure_ascii=False).replace("<", "\\u003c"),  # in <script>
        "source_names": SOURCE_NAMES,
    }
    return render(request, "playback.html", values)
