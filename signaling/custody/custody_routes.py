"""The integrity check, retention and legal hold of a case over the JSON API (see
docs/api.md): auditors and admins, scoped like the case."""

from __future__ import annotations

from aiohttp import web

from signaling.storage.models import Role
from signaling.web.access import USER, allow
from signaling.web.appkeys import CASES, HOLDS, INTEGRITY
from signaling.web.json_api import json_response, read_json

routes = web.RouteTableDef()
CUSTODIANS: tuple[Role, ...] = ("auditor", "admin")
SCOPE = "a case of the auditor's jurisdiction (all for an admin)"


@routes.post("/api/v1/cases/{case_no}/integrity")
@allow(*CUSTODIANS, scope=SCOPE)
async def integrity(request: web.Request) -> web.Response:
    user = request[USER]
    case = await request.app[CASES].get(user, request.match_info["case_no"])
    return json_response({"integrity": await request.app[INTEGRITY].check(user, case)})


@routes.get("/api/v1/cases/{case_no}/retention")
@allow(*CUSTODIANS, scope=SCOPE)
async def retention(request: web.Request) -> web.Response:
    case = await request.app[CASES].get(request[USER], request.match_info["case_no"])
    return json_response({"retention": await request.app[HOLDS].status(case)})


@routes.post("/api/v1/cases/{case_no}/legal-hold")
@allow(*CUSTODIANS, scope=SCOPE)
async def place_hold(request: web.Request) -> web.Response:
    user = request[USER]
    case = await request.app[CASES].get(user, request.match_info["case_no"])
    data = await read_json(request)
    return json_response({"retention": await request.app[HOLDS].place(user, case, data)}, 201)


@routes.post("/api/v1/cases/{case_no}/legal-hold/lift")
@allow(*CUSTODIANS, scope=SCOPE)
async def lift_hold(request: web.Request) -> web.Response:
    user = request[USER]
    case = await request.app[CASES].get(user, request.match_info["case_no"])
    data = await read_json(request)
    return json_response({"retention": await request.app[HOLDS].lift(user, case, data)})
