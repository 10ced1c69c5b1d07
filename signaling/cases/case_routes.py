"""Cases over the JSON API (see docs/api.md): the case search, a clerk's new case, one case."""

from __future__ import annotations

from aiohttp import web

from signaling.cases.search import CaseQuery
from signaling.web.access import STAFF, USER, allow
from signaling.web.appkeys import CASES
from signaling.web.json_api import json_response, read_json
from signaling.web.presenters import Lookup

routes = web.RouteTableDef()


@routes.get("/api/v1/cases")
@allow(*STAFF, scope="cases of the user's outlet, department or jurisdiction")
async def list_cases(request: web.Request) -> web.Response:
    """The case search: filters, sorting and pages as URL parameters (docs/api.md)."""
    query = CaseQuery.parse(request.query)
    found = await request.app[CASES].find(request[USER], query)
    lookup = await Lookup.load(request.app)
    return json_response(lookup.page(found))


@routes.post("/api/v1/cases")
@allow("clerk", scope="the clerk's outlet")
async def create_case(request: web.Request) -> web.Response:
    case = await request.app[CASES].create(request[USER], await read_json(request))
    lookup = await Lookup.load(request.app)
    return json_response({"case": lookup.case(case)}, status=201)


@routes.get("/api/v1/cases/{case_no}")
@allow(*STAFF, scope="a case of the user's outlet, department or jurisdiction")
async def get_case(request: web.Request) -> web.Response:
    case = await request.app[CASES].get(request[USER], request.match_info["case_no"])
    lookup = await Lookup.load(request.app)
    return json_response({"case": lookup.case(case)})
