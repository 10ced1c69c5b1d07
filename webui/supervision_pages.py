"""The supervision dashboard page (监察统计): time-limit cards rendered here, figures and
charts drawn in the page by its ES module from the supervision API."""

from __future__ import annotations

from aiohttp import web

from signaling.supervision.stats import DEFAULT_DAYS, MAX_RANGE_DAYS
from signaling.supervision.stats_routes import SCOPE
from signaling.web.access import USER, allow
from signaling.web.appkeys import SUPERVISION, TIME_LIMITS
from webui.pages import render

routes = web.RouteTableDef()
SHOWN_CARDS = 200
"""Cards listed on the page (the most urgent first); the API has them all."""


@routes.get("/supervision")
@allow("auditor", "admin", scope=SCOPE, page=True)
async def supervision_page(request: web.Request) -> web.Response:
    today = request.app[SUPERVISION].today()
    values = {
        "limits": await request.app[TIME_LIMITS].cards(request[USER]),
        "today": today.isoformat(),
        "default_days": DEFAULT_DAYS,
        "max_days": MAX_RANGE_DAYS,
        "shown_cards": SHOWN_CARDS,
    }
    return render(request, "supervision.html", values)
