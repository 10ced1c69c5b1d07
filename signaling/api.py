"""JSON API under /api/v1 (see docs/api.md)."""

from __future__ import annotations

import json
from typing import Any

import orjson
from aiohttp import web

from signaling.access import (
    ALL_ROLES,
    CSRF_TOKEN,
    SESSION_COOKIE,
    SESSION_TOKEN,
    USER,
    allow,
    public,
    set_session_cookie,
)
from signaling.appkeys import ACCOUNTS, AUDIT, CASES, CATALOG, HEALTH
from signaling.case_search import CaseQuery
from signaling.errors import InvalidInput, NotFound
from signaling.models import Role
from signaling.presenters import Lookup

routes = web.RouteTableDef()
STAFF: tuple[Role, ...] = ("clerk", "approver", "auditor")


def json_response(data: dict[str, Any], status: int = 200) -> web.Response:
    """JSON as UTF-8 (Chinese left readable), by orjson."""
    body = orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS)  # int keys as json.dumps does
    return web.Response(body=body, status=status, content_type="application/json", charset="utf-8")


async def read_json(request: web.Request) -> dict[str, Any]:
    if request.content_type != "application/json":
        raise InvalidInput("bad_json")
    try:
        data = json.loads(await request.text())
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # RecursionError: nesting
        raise InvalidInput("bad_json") from exc
    if not isinstance(data, dict):
        raise InvalidInput("bad_json")
    return data


def client_address(request: web.Request) -> str:
    return request.remote or "unknown"


@routes.get("/healthz")
@public(page=False)
async def healthz(request: web.Request) -> web.Response:
    """200 once the schema is migrated and the database answers (checked at most once
    a second); 503 before that or while it does not."""
    health = request.app.get(HEALTH)
    if health is None:
        return json_response({"status": "starting"}, status=503)
    if not await health.database_ok():
        return json_response({"status": "database_unavailable"}, status=503)
    return json_response({"status": "ok"})


@routes.post("/api/v1/auth/login")
@public(page=False)
async def login(request: web.Request) -> web.Response:
    data = await read_json(request)
    username, password = data.get("username"), data.get("password")
    if not isinstance(username, str) or not username:
        raise InvalidInput("field_required", field="username")
    if not isinstance(password, str) or not password:
        raise InvalidInput("field_required", field="password")
    accounts = request.app[ACCOUNTS]
    user = await accounts.authenticate(username, password, client_address(request))
    token, csrf = await accounts.open_session(user, client_address(request))
    lookup = await Lookup.load(request.app)
    response = json_response({"user": lookup.user(user), "csrf_token": csrf})
    set_session_cookie(request, response, token)
    return response


@routes.post("/api/v1/auth/logout")
@allow(*ALL_ROLES, scope="own login session", pending_ok=True)
async def logout(request: web.Request) -> web.Response:
    await request.app[ACCOUNTS].close_session(request[SESSION_TOKEN])
    await request.app[AUDIT].append("logout", actor=request[USER].username)
    response = json_response({"status": "ok"})
    response.del_cookie(SESSION_COOKIE, path="/")
    return response


@routes.get("/api/v1/me")
@allow(*ALL_ROLES, scope="own account", pending_ok=True)
async def me(request: web.Request) -> web.Response:
    lookup = await Lookup.load(request.app)
    return json_response({"user": lookup.user(request[USER]), "csrf_token": request[CSRF_TOKEN]})


@routes.post("/api/v1/me/password")
@allow(*ALL_ROLES, scope="own account", pending_ok=True)
async def change_password(request: web.Request) -> web.Response:
    data = await read_json(request)
    old, new = data.get("old_password"), data.get("new_password")
    if not isinstance(old, str) or not isinstance(new, str):
        raise InvalidInput("field_required", field="new_password")
    await request.app[ACCOUNTS].change_password(
        request[USER], old, new, request[SESSION_TOKEN], client_address(request)
    )
    return json_response({"status": "ok"})


@routes.get("/api/v1/matters")
@allow(*ALL_ROLES, scope="whole catalogue")
async def list_matters(request: web.Request) -> web.Response:
    lookup = await Lookup.load(request.app)
    catalog = lookup.catalog
    matters = catalog.matters if request[USER].role == "admin" else catalog.active_matters()
    return json_response({"matters": [lookup.matter(m) for m in matters]})


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


@routes.get("/api/v1/users")
@allow("admin", scope="all accounts")
async def list_users(request: web.Request) -> web.Response:
    lookup = await Lookup.load(request.app)
    return json_response({"users": [lookup.user(u) for u in await request.app[ACCOUNTS].list()]})


@routes.post("/api/v1/users")
@allow("admin", scope="all accounts")
async def create_user(request: web.Request) -> web.Response:
    user = await request.app[ACCOUNTS].create_user(
        await read_json(request), actor=request[USER].username
    )
    lookup = await Lookup.load(request.app)
    return json_response({"user": lookup.user(user)}, status=201)


@routes.post("/api/v1/catalog")
@allow("admin", scope="whole catalogue")
async def import_catalog(request: web.Request) -> web.Response:
    counts = await request.app[CATALOG].import_catalog(
        await read_json(request), actor=request[USER].username
    )
    return json_response({"imported": counts})


@routes.post("/api/v1/admin/users/{user_id}/unlock")
@allow("admin", scope="all accounts")
async def unlock_user(request: web.Request) -> web.Response:
    user_id = request.match_info["user_id"]
    if not user_id.isdigit():
        raise NotFound("user_not_found")
    cleared = await request.app[ACCOUNTS].unlock(int(user_id), actor=request[USER].username)
    return json_response({"status": "ok", "cleared": cleared})
