"""Access control over the whole route table: every route declares a policy, anonymous
callers are refused, wrong roles are refused, objects out of scope are refused and
logged, and a temporary password must be changed before anything else.

The tests enumerate ``app.router.routes()`` so that a route added later is covered too.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from aiohttp import FormData, web
from aiohttp.test_utils import TestClient
from aiohttp.web_urldispatcher import StaticResource

from signaling.storage.models import Role
from signaling.web.access import ALL_ROLES, POLICY_ATTR, Policy
from signaling.web.appkeys import ACCOUNTS, ACTIONS, AUDIT, CASES, REVIEWS
from tests.helpers import Session, login, stored_rows, valid_id

ClientFactory = Callable[..., Awaitable[TestClient[Any, Any]]]

PUBLIC = {
    ("GET", "/login"),
    ("HEAD", "/login"),
    ("POST", "/login"),
    ("GET", "/healthz"),
    ("HEAD", "/healthz"),
    ("POST", "/api/v1/auth/login"),
    ("GET", "/metrics"),  # its own bearer token or address list (tests/test_metrics.py)
    ("HEAD", "/metrics"),
}
"""The only routes anyone may call without a session."""

PENDING_OK = {
    ("GET", "/api/v1/me"),
    ("HEAD", "/api/v1/me"),
    ("POST", "/api/v1/me/password"),
    ("POST", "/api/v1/auth/logout"),
    ("POST", "/logout"),
    ("GET", "/password"),
    ("HEAD", "/password"),
    ("POST", "/password"),
}
"""The only protected routes open to a user who must still change a temporary password."""

ROLE_ACCOUNTS: dict[Role, str] = {
    "admin": "admin",
    "auditor": "jiancha",
    "clerk": "chuangkou",
    "approver": "shenpi",
}
NEW_PASSWORD = "neues-Passwort-2026"


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    """The canonical path, with ``{name}`` placeholders."""
    policy: Policy

    @property
    def key(self) -> tuple[str, str]:
        return (self.method, self.path)

    @property
    def is_api(self) -> bool:
        return self.path.startswith("/api/")


def policy_routes(app: web.Application) -> Iterator[tuple[str, str, Policy | None]]:
    """Every route but static files, with the policy its handler declares (or None)."""
    for route in app.router.routes():
        if isinstance(route.resource, StaticResource):
            continue
        assert route.resource is not None
        policy = getattr(route.handler, POLICY_ATTR, None)
        yield route.method, route.resource.canonical, policy


def routes_of(app: web.Application) -> list[Route]:
    found = []
    for method, path, policy in policy_routes(app):
        assert isinstance(policy, Policy), f"{method} {path} declares no policy"
        found.append(Route(method, path, policy))
    return found


def protected(app: web.Application) -> list[Route]:
    return [r for r in routes_of(app) if r.policy.roles is not None]


async def path_values(app: web.Application) -> dict[str, str]:
    """Real values for every path parameter of the route table."""
    accounts, cases = app[ACCOUNTS], app[CASES]
    clerk = await accounts.find("chuangkou")
    target = await accounts.find("chuangkou_lz")
    assert clerk is not None and target is not None
    demo_case = (await cases.search(clerk))[-1]
    session = await app[REVIEWS].start(
        clerk,
        demo_case.id,
        demo_case.case_no,
        demo_case.department_id,
        functools.partial(app[ACTIONS].record_consent, clerk),
    )
    return {
        "session_id": session.id,
        "case_no": demo_case.case_no,
        "user_id": str(target.id),
        "action": "disable",
        "kind": "outlet",
        "code": "LZ-SCJG-0101",
        "sha256": "ab" * 32,
        "export_id": "0123456789abcdef",
    }


def request_body(route: Route) -> dict[str, Any]:
    """A body the route would accept from an allowed user, so a refusal that failed
    would show up as a change in the store."""
    if route.method != "POST":
        return {}
    case = {
        "matter": "LZ-SCJG-0101",
        "applicant_name": "越权测试",
        "id_number": valid_id(),
        "phone": "13800000000",
    }
    user = {
        "username": "sneaky",
        "display_name": "越权账户",
        "role": "admin",
        "password": "sneaky-pass-2026",
    }
    outlet = {"code": "SNEAKY-01", "name": "越权网点", "jurisdiction": "450202"}
    matter = {
        "code": "SNEAKY-0001",
        "name": "越权事项",
        "department": "LZ-SCJG",
        "time_limit_days": "3",
        "mode": "remote_approval",
        "retention_years": "30",
        "materials": "申请书",
    }
    password = {
        "old_password": "whatever-1",
        "new_password": NEW_PASSWORD,
        "confirm_password": NEW_PASSWORD,
    }
    api = {
        "/api/v1/cases": case,
        "/api/v1/users": {**user, "temporary": False},
        "/api/v1/catalog": {"outlets": [outlet]},
        "/api/v1/me/password": password,
        "/api/v1/cases/{case_no}/sessions": {"consent": True},
        "/api/v1/sessions/{session_id}/marks": {"material": 1, "mark": "complete"},
        "/api/v1/sessions/{session_id}/decision": {"outcome": "approve"},
        "/api/v1/sessions/{session_id}/rating": {"score": "satisfied"},
    }
    if route.is_api:
        return {"json": api.get(route.path, {})}
    if route.path == "/admin/catalog/import":
        form = FormData()
        form.add_field(
            "file",
            b'{"outlets": [{"code": "SNEAKY-02", "name": "x", "jurisdiction": "450202"}]}',
            filename="catalog.json",
            content_type="application/json",
        )
        return {"data": form}
    pages = {
        "/cases/new": case,
        "/admin/users": user,
        "/admin/catalog/{kind}": outlet,
        "/admin/matters": matter,
        "/password": password,
    }
    return {"data": pages.get(route.path, {})}


async def call(
    client: TestClient[Any, Any], route: Route, values: dict[str, str], csrf: str | None
) -> Any:
    headers = {"X-CSRF-Token": csrf} if csrf else {}
    return await client.request(
        route.method,
        route.path.format(**values),
        headers=headers,
        allow_redirects=False,
        **request_body(route),
    )


async def assert_api_error(response: Any, status: int, code: str) -> None:
    assert response.status == status, (response.method, response.url)
    if response.method == "HEAD":
        return
    body = await response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]


async def assert_error_page(response: Any, status: int, text: str) -> None:
    assert response.status == status, (response.method, response.url)
    assert response.content_type == "text/html"
    if response.method != "HEAD":
        page = await response.text()
        assert text in page


async def log_in(client: TestClient[Any, Any], factory: ClientFactory, name: str, pw: str) -> Any:
    return await login(await factory(client.server), name, pw)


async def test_every_route_declares_a_policy(client):
    """Every handler in the route table carries a declared access policy (static files
    excepted), and the public and temporary-password routes are exactly the known ones."""
    routes = list(policy_routes(client.app))
    assert len(routes) > 20
    missing = [f"{method} {path}" for method, path, policy in routes if policy is None]
    assert missing == []
    table = routes_of(client.app)
    assert {r.key for r in table if r.policy.roles is None} == PUBLIC
    assert {r.key for r in table if r.policy.roles and r.policy.pending_ok} == PENDING_OK
    for route in table:
        machine = route.is_api or route.path in ("/healthz", "/metrics")
        assert route.policy.page == (not machine), route
        assert route.policy.scope, route


async def test_anonymous_callers_are_refused_everywhere(client, anonymous):
    """Without a session, every protected route refuses: API routes with 401 and a JSON
    error, pages with a redirect to the login page that remembers the path; state-changing
    requests are refused the same way (before any CSRF check) and change nothing."""
    values = await path_values(client.app)
    before = await stored_rows(client.app)
    routes = protected(client.app)
    assert any(r.method == "POST" for r in routes)
    for route in routes:
        response = await call(anonymous, route, values, csrf=None)
        if route.is_api:
            await assert_api_error(response, 401, "not_authenticated")
            if route.method != "HEAD":
                assert (await response.json())["error"]["message"] == "请先登录。"
        else:
            assert response.status == 302, route
            location = urlsplit(response.headers["Location"])
            assert location.path == "/login"
            assert parse_qs(location.query) == {"next": [route.path.format(**values)]}
    assert await stored_rows(client.app) == before


async def test_public_routes_answer_without_a_session(anonymous):
    """The login page, the health check and the login API answer an anonymous caller."""
    assert (await anonymous.get("/login")).status == 200
    assert (await anonymous.get("/healthz")).status == 200
    response = await anonymous.post(
        "/api/v1/auth/login", json={"username": "nobody", "password": "wrong-pass-1"}
    )
    await assert_api_error(response, 401, "bad_credentials")


async def test_each_role_is_refused_routes_of_other_roles(client, as_user):
    """For every route that declares roles, a logged-in user of each other role gets 403:
    JSON code "wrong_role" from the API, a Chinese 403 page from page routes. A valid
    CSRF token is sent, so the role check is what refuses; nothing changes and each
    refusal is written to the audit log."""
    sessions: dict[Role, Session] = {
        role: await as_user(username) for role, username in ROLE_ACCOUNTS.items()
    }
    values = await path_values(client.app)
    audit = client.app[AUDIT]
    denied_before = await audit.count("access_denied")
    before = await stored_rows(client.app)
    refused = 0
    for route in protected(client.app):
        assert route.policy.roles is not None
        for role in sorted(ALL_ROLES - route.policy.roles):
            session = sessions[role]
            response = await call(session.client, route, values, csrf=session.csrf)
            if route.is_api:
                await assert_api_error(response, 403, "wrong_role")
            else:
                await assert_error_page(response, 403, "您的角色无权进行此操作。")
                if route.method != "HEAD":
                    assert "无权访问" in await response.text()
            refused += 1
    assert refused > 20
    assert await stored_rows(client.app) == before
    assert await audit.count("access_denied") == denied_before + refused


@pytest.fixture
async def scope_cases(as_user) -> dict[str, str]:
    """Case numbers by label: the two demo cases and one more, all taken at outlet
    BH-HC-01 (北海海城, 450502); their departments are LZ-SCJG (柳州, 450200), LZ-RSJ
    (柳州, 450200) and BH-SCJG (北海, 450500)."""
    clerk = await as_user("chuangkou")
    response = await clerk.post(
        "/api/v1/cases",
        json={
            "matter": "BH-SCJG-0101",
            "applicant_name": "陈海",
            "id_number": valid_id("45050219850601003"),
            "phone": "13907790000",
        },
    )
    assert response.status == 201, await response.text()
    listed = (await (await clerk.get("/api/v1/cases")).json())["cases"]
    by_matter = {c["matter"]["code"]: c["case_no"] for c in listed}
    assert {c["outlet"]["code"] for c in listed} == {"BH-HC-01"}
    return {
        "lz_scjg": by_matter["LZ-SCJG-0101"],
        "lz_rsj": by_matter["LZ-RSJ-0201"],
        "bh_scjg": by_matter["BH-SCJG-0101"],
    }


async def assert_case_scope(session: Session, cases: dict[str, str], visible: set[str]) -> None:
    """The user lists exactly the visible cases, opens them, and is refused the others
    (403 out_of_scope) on the API and on the case page."""
    listed = (await (await session.get("/api/v1/cases")).json())["cases"]
    assert {c["case_no"] for c in listed} == {cases[label] for label in visible}
    for label, case_no in cases.items():
        api = await session.get(f"/api/v1/cases/{case_no}")
        page = await session.get(f"/cases/{case_no}")
        if label in visible:
            assert api.status == 200, (session.user["username"], label)
            assert page.status == 200, (session.user["username"], label)
        else:
            await assert_api_error(api, 403, "out_of_scope")
            await assert_error_page(page, 403, "该对象不在您的管辖范围内。")


async def test_cases_outside_the_users_scope_are_refused_and_logged(
    client, as_user, aiohttp_client, scope_cases
):
    """Clerks see their outlet's cases, approvers their department's, auditors cases whose
    outlet or department lies in their jurisdiction's subtree (all cases without one).
    Everything else is refused with 403 out_of_scope on the API and on the page, and each
    refusal is written to the audit log as "access_denied"."""
    admin = await as_user("admin")
    auditors = {"shen_lz": "450200", "shen_bh": "450500", "shen_cz": "450202"}
    for username, jurisdiction in auditors.items():
        response = await admin.post(
            "/api/v1/users",
            json={
                "username": username,
                "display_name": f"监察员{jurisdiction}",
                "role": "auditor",
                "jurisdiction": jurisdiction,
                "password": NEW_PASSWORD,
                "temporary": False,
            },
        )
        assert response.status == 201, await response.text()
        assert (await response.json())["user"]["jurisdiction"] == jurisdiction

    everything = set(scope_cases)
    expected = {
        "chuangkou": everything,
        "chuangkou_lz": set(),  # outlet LZ-CZ-01
        "shenpi": {"lz_scjg"},
        "shenpi_rs": {"lz_rsj"},
        "jiancha": everything,  # no jurisdiction: all cases
        # 柳州市 covers the departments LZ-SCJG and LZ-RSJ, not the 北海 outlet:
        "shen_lz": {"lz_scjg", "lz_rsj"},
        # 北海市 covers the outlet BH-HC-01 (海城区), so all three cases:
        "shen_bh": everything,
        # 城中区 covers neither the 北海 outlet nor the city-level departments:
        "shen_cz": set(),
    }
    for username, visible in expected.items():
        if username in auditors:
            session = await log_in(client, aiohttp_client, username, NEW_PASSWORD)
        else:
            session = await as_user(username)
        await assert_case_scope(session, scope_cases, visible)

    denied = await client.app[AUDIT].events("system", kind="access_denied")
    logged = {(e.actor, e.detail["path"], e.detail["reason"]) for e in denied}
    case_no = scope_cases["lz_scjg"]
    for actor in ("chuangkou_lz", "shenpi_rs", "shen_cz"):
        for path in (f"/api/v1/cases/{case_no}", f"/cases/{case_no}"):
            assert (actor, path, "out_of_scope") in logged
    assert ("shen_lz", f"/cases/{scope_cases['bh_scjg']}", "out_of_scope") in logged


async def test_unknown_case_is_not_found(as_user):
    """A case number that does not exist gives 404 case_not_found, not a scope error."""
    clerk = await as_user("chuangkou")
    await assert_api_error(await clerk.get("/api/v1/cases/GX-2000-999999"), 404, "case_not_found")
    await assert_error_page(await clerk.get("/cases/GX-2000-999999"), 404, "案件不存在。")


async def test_temporary_password_must_be_changed_first(client, as_user, aiohttp_client):
    """A user created with a temporary password reaches only /api/v1/me, the password
    change (API and page) and logout. Every other page redirects to /password and every
    other API route answers 403 password_change_required, changing nothing; after the
    change the user's own routes open."""
    admin = await as_user("admin")
    temporary = "temp-pass-2026"
    response = await admin.post(
        "/api/v1/users",
        json={
            "username": "xinren",
            "display_name": "新来的窗口人员",
            "role": "clerk",
            "outlet": "BH-HC-01",
            "password": temporary,
            "temporary": True,
        },
    )
    assert response.status == 201, await response.text()
    pending = await log_in(client, aiohttp_client, "xinren", temporary)
    assert pending.user["must_change_password"] is True
    values = await path_values(client.app)
    before = await stored_rows(client.app)

    for route in protected(client.app):
        if route.key in PENDING_OK:
            continue
        response = await call(pending.client, route, values, csrf=pending.csrf)
        if route.is_api:
            await assert_api_error(response, 403, "password_change_required")
        else:
            assert response.status == 302, route
            assert response.headers["Location"] == "/password"
    assert await stored_rows(client.app) == before

    me = await pending.get("/api/v1/me")
    assert me.status == 200
    assert (await me.json())["user"]["username"] == "xinren"
    assert (await pending.get("/password")).status == 200

    other = await log_in(client, aiohttp_client, "xinren", temporary)
    logout = await other.client.post("/logout", data={"_csrf": other.csrf}, allow_redirects=False)
    assert (logout.status, logout.headers["Location"]) == (302, "/login")
    await assert_api_error(await other.get("/api/v1/me"), 401, "not_authenticated")

    changed = await pending.post(
        "/api/v1/me/password", json={"old_password": temporary, "new_password": NEW_PASSWORD}
    )
    assert changed.status == 200, await changed.text()
    assert (await pending.get("/api/v1/cases")).status == 200
    assert (await pending.get("/", allow_redirects=False)).status == 200
