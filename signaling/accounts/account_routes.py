"""Accounts over the JSON API (see docs/api.md): login, logout, the user's own account
and password, and the admin's users."""

from __future__ import annotations

from aiohttp import web

from signaling.web.access import (
    ALL_ROLES,
    CSRF_TOKEN,
    SESSION_COOKIE,
    SESSION_TOKEN,
    USER,
    allow,
    public,
    set_session_cookie,
)
from signaling.web.appkeys import ACCOUNTS, AUDIT
from signaling.web.errors import InvalidInput, NotFound
from signaling.web.json_api import client_address, json_response, read_json
from signaling.web.presenters import Lookup

routes = web.RouteTableDef()


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


@routes.post("/api/v1/admin/users/{user_id}/unlock")
@allow("admin", scope="all accounts")
async def unlock_user(request: web.Request) -> web.Response:
    user_id = request.match_info["user_id"]
    if not user_id.isdigit():
        raise NotFound("user_not_found")
    cleared = await request.app[ACCOUNTS].unlock(int(user_id), actor=request[USER].username)
    return json_response({"status": "ok", "cleared": cleared})
