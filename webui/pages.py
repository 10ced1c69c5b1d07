"""Page routes (Simplified Chinese). Forms post back with a CSRF field; errors are
shown on the same page with what the user typed."""

from __future__ import annotations

import json
import secrets
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import aiohttp_jinja2
from aiohttp import web
from aiohttp.web_request import FileField

from signaling.accounts.accounts import temporary_password
from signaling.custody.custody_routes import CUSTODIANS
from signaling.web.access import (
    ALL_ROLES,
    CSRF_TOKEN,
    PRELOGIN_COOKIE,
    SESSION_COOKIE,
    SESSION_TOKEN,
    STAFF,
    USER,
    allow,
    public,
    set_prelogin_cookie,
    set_session_cookie,
)
from signaling.web.appkeys import ACCOUNTS, AUDIT, CASE_EVIDENCE, CASES, CATALOG, HOLDS, REVIEWS
from signaling.web.errors import Conflict, InvalidInput, NotFound, SignalingError
from signaling.web.json_api import client_address
from signaling.web.messages import CASE_STATUS_NAMES, FIELDS, MODE_NAMES, ROLE_NAMES, message
from signaling.web.presenters import Lookup, review
from webui.case_view import event_rows, track_rows

routes = web.RouteTableDef()
FormAction = Callable[[dict[str, str]], Awaitable[str]]
ContextBuilder = Callable[[web.Request], Awaitable[dict[str, Any]]]


def render(
    request: web.Request, template: str, values: dict[str, Any], status: int = 200
) -> web.Response:
    """Render a page; every template also sees the user, the CSRF token and the names."""
    common = {
        "user": request.get(USER),
        "csrf_token": request.get(CSRF_TOKEN, ""),
        "role_names": ROLE_NAMES,
        "mode_names": MODE_NAMES,
        "status_names": CASE_STATUS_NAMES,
    }
    return aiohttp_jinja2.render_template(template, request, {**common, **values}, status=status)


async def form_data(request: web.Request) -> dict[str, str]:
    posted = await request.post()
    return {k: v for k, v in posted.items() if isinstance(v, str) and k != "_csrf"}


def safe_next(target: str | None) -> str:
    """Only a path of this site. Browsers drop tabs and newlines from a URL and read a
    backslash as a slash, so a path with either could name another host: any control
    character, space or backslash is refused, as is anything naming a scheme or host."""
    if (
        not target
        or not target.startswith("/")
        or target.startswith("//")
        or any(ch <= " " or ch in "\\\x7f" for ch in target)
    ):
        return "/"
    parts = urlsplit(target)
    return target if not parts.scheme and not parts.netloc else "/"


async def form_page(
    request: web.Request, template: str, context: ContextBuilder, action: FormAction
) -> web.Response:
    """Run a form's action; show the page again with a notice, or with the error and
    what was typed."""
    data = await form_data(request)
    try:
        notice = await action(data)
    except (InvalidInput, Conflict, NotFound) as exc:
        values = await context(request)
        values.update(error=message(exc.code, exc.params), form=data)
        return render(request, template, values, status=exc.status)
    values = await context(request)
    values.update(notice=notice, form={})
    return render(request, template, values)


# -- login, logout, password --------------------------------------------------------------


def render_login(request: web.Request, values: dict[str, Any], status: int = 200) -> web.Response:
    token = request.cookies.get(PRELOGIN_COOKIE) or secrets.token_urlsafe(24)
    # With a live session the middleware checks the form against the session's token.
    field = request.get(CSRF_TOKEN) or token
    response = render(request, "login.html", {**values, "prelogin": field}, status=status)
    set_prelogin_cookie(request, response, token)
    return response


@routes.get("/login")
@public(page=True)
async def login_page(request: web.Request) -> web.Response:
    return render_login(request, {"next": safe_next(request.query.get("next")), "form": {}})


@routes.post("/login")
@public(page=True)
async def login_submit(request: web.Request) -> web.Response:
    data = await form_data(request)
    target = safe_next(data.get("next"))
    accounts = request.app[ACCOUNTS]
    try:
        user = await accounts.authenticate(
            data.get("username", ""), data.get("password", ""), client_address(request)
        )
    except SignalingError as exc:
        values = {"next": target, "error": message(exc.code, exc.params), "form": data}
        return render_login(request, values, exc.status)
    token, _csrf = await accounts.open_session(user, client_address(request))
    response = web.HTTPFound("/password" if user.must_change_password else target)
    set_session_cookie(request, response, token)
    raise response


@routes.post("/logout")
@allow(*ALL_ROLES, scope="own login session", page=True, pending_ok=True)
async def logout_submit(request: web.Request) -> web.Response:
    await request.app[ACCOUNTS].close_session(request[SESSION_TOKEN])
    await request.app[AUDIT].append("logout", actor=request[USER].username)
    response = web.HTTPFound("/login")
    response.del_cookie(SESSION_COOKIE, path="/")
    raise response


async def _no_context(_request: web.Request) -> dict[str, Any]:
    return {}


@routes.get("/password")
@allow(*ALL_ROLES, scope="own account", page=True, pending_ok=True)
async def password_page(request: web.Request) -> web.Response:
    return render(request, "password.html", {"form": {}})


@routes.post("/password")
@allow(*ALL_ROLES, scope="own account", page=True, pending_ok=True)
async def password_submit(request: web.Request) -> web.Response:
    user = request[USER]

    async def change(data: dict[str, str]) -> str:
        if data.get("new_password") != data.get("confirm_password"):
            raise InvalidInput("password_mismatch", field="new_password")
        await request.app[ACCOUNTS].change_password(
            user,
            data.get("old_password", ""),
            data.get("new_password", ""),
            request[SESSION_TOKEN],
            client_address(request),
        )
        return "密码已修改。"

    return await form_page(request, "password.html", _no_context, change)


# -- dashboard and cases ----------------------------------------------------------------


@routes.get("/")
@allow(*ALL_ROLES, scope="own dashboard", page=True)
async def dashboard(request: web.Request) -> web.Response:
    user = request[USER]
    lookup = await Lookup.load(request.app)
    recent = []
    if user.role in STAFF:
        recent = [lookup.case(c) for c in (await request.app[CASES].search(user))[:10]]
    values = {"me": lookup.user(user), "recent": recent, **await open_sessions(request)}
    return render(request, "dashboard.html", values)


async def open_sessions(request: web.Request) -> dict[str, Any]:
    """The open review sessions the user takes part in, to go back to (返回审办)."""
    user = request[USER]
    taking_part = await request.app[REVIEWS].taking_part(user)
    return {"open_sessions": [review(s, user) for s in taking_part]}


async def _new_case_context(request: web.Request) -> dict[str, Any]:
    lookup = await Lookup.load(request.app)
    return {"matters": [lookup.matter(m) for m in lookup.catalog.active_matters()]}


@routes.get("/cases/new")
@allow("clerk", scope="the clerk's outlet", page=True)
async def new_case_page(request: web.Request) -> web.Response:
    values = await _new_case_context(request)
    values["form"] = {"matter": request.query.get("matter", "")}
    return render(request, "case_new.html", values)


@routes.post("/cases/new")
@allow("clerk", scope="the clerk's outlet", page=True)
async def new_case_submit(request: web.Request) -> web.Response:
    data = await form_data(request)
    try:
        case = await request.app[CASES].create(request[USER], data)
    except InvalidInput as exc:
        values = await _new_case_context(request)
        values.update(error=message(exc.code, exc.params), form=data)
        return render(request, "case_new.html", values, status=400)
    raise web.HTTPFound(f"/cases/{case.case_no}")


@routes.get("/cases/{case_no}")
@allow(
    *STAFF,
    "admin",
    scope="a case of the user's outlet, department or jurisdiction (all for an admin)",
    page=True,
)
async def case_page(request: web.Request) -> web.Response:
    user = request[USER]
    case = await request.app[CASES].get(user, request.match_info["case_no"])
    lookup = await Lookup.load(request.app)
    sessions = [review(s, user) for s in await request.app[REVIEWS].for_case(case.id)]
    current = next((s for s in sessions if s["open"]), None)
    evidence = await request.app[CASE_EVIDENCE].build(case, user)
    times = {s["id"]: s for s in evidence["sessions"]}
    for listed in sessions:
        found = times[listed["id"]]
        listed.update(
            accepted_at=found["accepted_at"],
            ended_at=found["ended_at"],
            interrupted=found["interrupted"],
            rating=found["rating"],
            consent=found["consent"],
        )
    values = {
        "case": lookup.case(case),
        "sessions": sessions,
        "current": current,
        "evidence": evidence,
        "tracks": track_rows(evidence["recordings"]),
        "events": event_rows(evidence["log"]["events"]),
        "current_marks": [m for m in evidence["marks"] if not m["superseded"]],
        "custody": await request.app[HOLDS].status(case) if user.role in CUSTODIANS else None,
    }
    return render(request, "case.html", values)


# -- administration ---------------------------------------------------------------------


def _user_id(request: web.Request) -> int:
    raw = request.match_info["user_id"]
    if not raw.isdigit():
        raise NotFound("user_not_found")
    return int(raw)


async def _users_context(request: web.Request) -> dict[str, Any]:
    lookup = await Lookup.load(request.app)
    return {
        "users": [lookup.user(u) for u in await request.app[ACCOUNTS].list()],
        "outlets": lookup.catalog.outlets,
        "departments": lookup.catalog.departments,
        "jurisdictions": lookup.catalog.jurisdictions,
        "roles": ROLE_NAMES,
    }


@routes.get("/admin/users")
@allow("admin", scope="all accounts", page=True)
async def users_page(request: web.Request) -> web.Response:
    values = await _users_context(request)
    values["form"] = {}
    return render(request, "admin_users.html", values)


@routes.post("/admin/users")
@allow("admin", scope="all accounts", page=True)
async def users_create(request: web.Request) -> web.Response:
    async def create(data: dict[str, str]) -> str:
        password = temporary_password()
        user = await request.app[ACCOUNTS].create_user(
            {**data, "password": password, "temporary": True}, actor=request[USER].username
        )
        return f"已创建账户 {user.username}，初始密码：{password}（仅显示一次，首次登录须修改）"

    return await form_page(request, "admin_users.html", _users_context, create)


@routes.post("/admin/users/{user_id}/reset-password")
@allow("admin", scope="all accounts", page=True)
async def users_reset(request: web.Request) -> web.Response:
    async def reset(_data: dict[str, str]) -> str:
        target = await request.app[ACCOUNTS].get(_user_id(request))
        password = await request.app[ACCOUNTS].reset_password(
            target.id, actor=request[USER].username
        )
        return f"已重置 {target.username} 的密码，临时密码：{password}（仅显示一次）"

    return await form_page(request, "admin_users.html", _users_context, reset)


@routes.post("/admin/users/{user_id}/unlock")
@allow("admin", scope="all accounts", page=True)
async def users_unlock(request: web.Request) -> web.Response:
    async def unlock(_data: dict[str, str]) -> str:
        target = await request.app[ACCOUNTS].get(_user_id(request))
        await request.app[ACCOUNTS].unlock(target.id, actor=request[USER].username)
        return f"已解除 {target.username} 的登录限制。"

    return await form_page(request, "admin_users.html", _users_context, unlock)


@routes.post("/admin/users/{user_id}/{action:disable|enable}")
@allow("admin", scope="all accounts", page=True)
async def users_toggle(request: web.Request) -> web.Response:
    disable = request.match_info["action"] == "disable"

    async def toggle(_data: dict[str, str]) -> str:
        target = await request.app[ACCOUNTS].get(_user_id(request))
        await request.app[ACCOUNTS].set_disabled(target.id, disable, actor=request[USER].username)
        return f"已{'停用' if disable else '启用'}账户 {target.username}。"

    return await form_page(request, "admin_users.html", _users_context, toggle)


async def _catalog_context(request: web.Request) -> dict[str, Any]:
    catalog = await request.app[CATALOG].snapshot()
    return {
        "jurisdictions": catalog.jurisdictions,
        "outlets": catalog.outlets,
        "departments": catalog.departments,
    }


@routes.get("/admin/catalog")
@allow("admin", scope="whole catalogue", page=True)
async def catalog_page(request: web.Request) -> web.Response:
    values = await _catalog_context(request)
    values["form"] = {}
    return render(request, "admin_catalog.html", values)


@routes.post("/admin/catalog/{kind:jurisdiction|outlet|department}")
@allow("admin", scope="whole catalogue", page=True)
async def catalog_add(request: web.Request) -> web.Response:
    kind = request.match_info["kind"]

    async def add(data: dict[str, str]) -> str:
        await request.app[CATALOG].import_catalog(
            {f"{kind}s": [data]}, actor=request[USER].username
        )
        return f"已保存：{data.get('name', '')}"

    return await form_page(request, "admin_catalog.html", _catalog_context, add)


@routes.post("/admin/catalog/import")
@allow("admin", scope="whole catalogue", page=True)
async def catalog_import(request: web.Request) -> web.Response:
    posted = await request.post()
    upload = posted.get("file")

    async def load(_data: dict[str, str]) -> str:
        if not isinstance(upload, FileField):
            raise InvalidInput("field_required", field="catalog")
        try:
            parsed = json.loads(upload.file.read())
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise InvalidInput("bad_json") from exc
        counts = await request.app[CATALOG].import_catalog(parsed, actor=request[USER].username)
        return "已导入：" + "，".join(f"{FIELDS[k]} {n} 条" for k, n in counts.items())

    return await form_page(request, "admin_catalog.html", _catalog_context, load)


async def _matters_context(request: web.Request) -> dict[str, Any]:
    lookup = await Lookup.load(request.app)
    return {
        "matters": [lookup.matter(m) for m in lookup.catalog.matters],
        "departments": lookup.catalog.departments,
    }


@routes.get("/admin/matters")
@allow("admin", scope="whole catalogue", page=True)
async def matters_page(request: web.Request) -> web.Response:
    values = await _matters_context(request)
    values["form"] = {}
    return render(request, "admin_matters.html", values)


@routes.post("/admin/matters")
@allow("admin", scope="whole catalogue", page=True)
async def matters_add(request: web.Request) -> web.Response:
    async def add(data: Mapping[str, str]) -> str:
        await request.app[CATALOG].add_matter(data, actor=request[USER].username)
        return f"已保存事项：{data.get('name', '')}"

    return await form_page(request, "admin_matters.html", _matters_context, add)


@routes.post("/admin/matters/{code}/{action:disable|enable}")
@allow("admin", scope="whole catalogue", page=True)
async def matters_toggle(request: web.Request) -> web.Response:
    active = request.match_info["action"] == "enable"

    async def toggle(_data: dict[str, str]) -> str:
        code = request.match_info["code"]
        await request.app[CATALOG].set_matter_active(code, active, actor=request[USER].username)
        return f"已{'启用' if active else '停用'}事项 {code}。"

    return await form_page(request, "admin_matters.html", _matters_context, toggle)
