"""The case search page (案件查询) and the auditor's live supervision page (实时监察).
Filters live in the URL (a GET form), so a search can be bookmarked, shared and paged."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from signaling import id_numbers
from signaling.cases.id_search import ID_SEARCH_ROLES
from signaling.cases.search import (
    CASE_STATUS,
    DECISIONS,
    PAGE_SIZES,
    RATINGS,
    SORTS,
    CasePage,
    CaseQuery,
)
from signaling.storage.models import User
from signaling.web.access import STAFF, USER, allow
from signaling.web.appkeys import ACCOUNTS, CASES, CATALOG
from signaling.web.errors import InvalidInput, Throttled
from signaling.web.messages import OUTCOME_NAMES, SCORE_NAMES, message
from signaling.web.presenters import Lookup
from webui.pages import render

routes = web.RouteTableDef()

SORT_NAMES = {
    "created": "受理时间",
    "case_no": "案件编号",
    "waiting": "等待时长",
    "duration": "审办时长",
    "due": "办理期限",
}
DECISION_NAMES = {**OUTCOME_NAMES, "none": "尚未决定"}
RATING_NAMES = {**SCORE_NAMES, "bad": "差评（不满意、非常不满意）", "none": "未评价"}
REFRESH_SECONDS = 5
"""How often the live supervision page lists the sessions again."""
PAGER_WINDOW = 2
"""Page links shown on each side of the current page."""


def _link(query: CaseQuery, **changes: Any) -> str:
    params = query.params(**changes)
    if id_numbers.is_valid(id_numbers.normalize(query.q)):
        params.pop("q", None)  # a full ID number never goes into a link
    return "/cases" + (f"?{urlencode(params)}" if params else "")


def _pager(found: CasePage) -> list[dict[str, Any]]:
    """Page links: first, a window around the current one, last (None: a gap)."""
    current, last = found.query.page, found.pages
    numbers = sorted(
        {1, last, *range(max(1, current - PAGER_WINDOW), min(last, current + PAGER_WINDOW) + 1)}
    )
    links: list[dict[str, Any]] = []
    for number in numbers:
        if links and number - links[-1]["number"] > 1:
            links.append({"number": number - 1, "gap": True})
        links.append({"number": number, "href": _link(found.query, page=number), "gap": False})
    return links


def _sort_links(query: CaseQuery) -> dict[str, dict[str, str]]:
    """Per sortable column: the link that sorts by it (again: the other way) and the
    arrow showing the current order."""
    links = {}
    for key in SORTS:
        current = query.sort == key
        order = ("asc" if query.order == "desc" else "desc") if current else "desc"
        arrow = ("↓" if query.order == "desc" else "↑") if current else ""
        links[key] = {"href": _link(query, sort=key, order=order, page=1), "arrow": arrow}
    return links


async def _filter_choices(request: web.Request, user: User) -> dict[str, Any]:
    """The catalogue and the approvers of the auditor's jurisdiction (and below), for
    the filter form: no names of units or staff the auditor cannot see cases of."""
    catalog = await request.app[CATALOG].snapshot()
    codes = None if user.jurisdiction_code is None else catalog.subtree(user.jurisdiction_code)
    outlets = [u for u in catalog.outlets if codes is None or u.jurisdiction_code in codes]
    departments = [u for u in catalog.departments if codes is None or u.jurisdiction_code in codes]
    ids = {d.id for d in departments}
    return {
        "matters": [m for m in catalog.matters if m.department_id in ids],
        "outlets": outlets,
        "departments": departments,
        "approvers": [
            u
            for u in await request.app[ACCOUNTS].list()
            if u.role == "approver" and u.department_id in ids
        ],
        "decisions": [(d, DECISION_NAMES[d]) for d in DECISIONS],
        "ratings": [(r, RATING_NAMES[r]) for r in RATINGS],
        "sorts": [(s, SORT_NAMES[s]) for s in SORTS],
        "page_sizes": PAGE_SIZES,
    }


@routes.get("/cases")
@allow(*STAFF, scope="cases of the user's outlet, department or jurisdiction", page=True)
async def cases_page(request: web.Request) -> web.Response:
    user = request[USER]
    lookup = await Lookup.load(request.app)
    error, code, rows = None, 200, []
    query, found = CaseQuery(), None
    try:
        query = CaseQuery.parse(request.query)
        found = await request.app[CASES].find(user, query)
    except (InvalidInput, Throttled) as exc:  # a refused role (403) gets the error page
        error, code = message(exc.code, exc.params), exc.status
    if found is not None:
        rows = [lookup.found(row) for row in found.rows]
    id_searched = id_numbers.is_valid(id_numbers.normalize(query.q))
    auditor = user.role == "auditor"
    paged = found is not None and found.pages > 1 and not id_searched
    values = {
        "cases": rows,
        "found": found,
        "form": {
            **query.params(),
            "q": "" if id_searched else query.q,  # never shown back: see login_redirect
        },
        "pager": _pager(found) if found and paged else [],
        "prev_href": _link(query, page=query.page - 1) if paged and query.page > 1 else None,
        "next_href": _link(query, page=query.page + 1)
        if found and paged and query.page < found.pages
        else None,
        "sort_links": _sort_links(query),
        "error": error,
        "id_search": user.role in ID_SEARCH_ROLES,
        "detailed": auditor,
        "statuses": CASE_STATUS,
        "reset": "/cases",
        **(await _filter_choices(request, user) if auditor else {}),
    }
    return render(request, "cases.html", values, status=code)


@routes.get("/supervision/live")
@allow("auditor", scope="open sessions of cases in the auditor's jurisdiction", page=True)
async def live_page(request: web.Request) -> web.Response:
    """The page's module lists the sessions from the API and refreshes them."""
    return render(request, "supervision_live.html", {"refresh_seconds": REFRESH_SECONDS})
