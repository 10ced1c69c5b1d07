"""Bad input: each gets a clear Chinese error with a stable code, and changes nothing.

Covers malformed bodies, invalid fields, hostile text (stored verbatim, shown escaped),
forged or stale session cookies, missing CSRF proof, oversized bodies, all-or-nothing
catalogue imports and login throttling.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import re
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

import pytest
from aiohttp import FormData
from aiohttp.test_utils import TestClient
from markupsafe import escape

from coreview.app import MAX_REQUEST_BYTES, create_app
from signaling.settings import Settings
from signaling.web.access import SESSION_COOKIE
from signaling.web.appkeys import ACCOUNTS, AUDIT, CATALOG
from signaling.web.errors import NotAuthenticated, Throttled
from signaling.web.messages import MESSAGES, message
from tests.helpers import ManualClock, Session, demo_password, login, stored_rows, valid_id

ClientFactory = Callable[..., Awaitable[TestClient[Any, Any]]]

SQL_TEXT = "'; DROP TABLE cases; --"
HTML_TEXTS = ("<script>alert(1)</script>", "<img src=x onerror=alert(1)>")
HOSTILE_TEXTS = (SQL_TEXT, *HTML_TEXTS)
GOOD_PASSWORD = "Gut-genug-2026"


def good_case(**changes: Any) -> dict[str, Any]:
    return {
        "matter": "LZ-SCJG-0101",
        "applicant_name": "王小二",
        "id_number": valid_id(),
        "phone": "13800000000",
        "notes": "",
        **changes,
    }


def good_user(**changes: Any) -> dict[str, Any]:
    return {
        "username": "xiaowang",
        "display_name": "小王",
        "role": "clerk",
        "outlet": "BH-HC-01",
        "password": GOOD_PASSWORD,
        "temporary": False,
        **changes,
    }


async def assert_error(response: Any, status: int, code: str, **params: Any) -> None:
    """A JSON error with the stable code and its Chinese message."""
    body = await response.json()
    assert response.status == status, body
    assert body == {"error": {"code": code, "message": message(code, params)}}


async def assert_error_page(response: Any, status: int, code: str, **params: Any) -> str:
    page = await response.text()
    assert response.status == status, page
    assert response.content_type == "text/html"
    assert str(escape(message(code, params))) in page
    return page


def prelogin_token(page: str) -> str:
    """The _csrf field of the login form (not of the header's logout form)."""
    found = re.search(
        r'action="/login"[^>]*>\s*<input type="hidden" name="_csrf" value="([^"]+)"', page
    )
    assert found, page
    return found.group(1)


def session_cookie(client: TestClient[Any, Any]) -> str:
    return client.session.cookie_jar.filter_cookies(client.make_url("/"))[SESSION_COOKIE].value


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def clocked(
    aiohttp_client: ClientFactory, settings: Settings, clock: ManualClock
) -> TestClient[Any, Any]:
    """The app on the demo data, with time under the test's control."""
    return await aiohttp_client(create_app(settings, clock))


@pytest.fixture
async def clerk(as_user) -> Session:
    return await as_user("chuangkou")


@pytest.fixture
async def admin(as_user) -> Session:
    return await as_user("admin")


# -- malformed bodies ---------------------------------------------------------------------


async def test_malformed_or_non_object_json_is_refused(client, clerk, admin, anonymous):
    """A body that is not a JSON object (broken JSON, a list, a string, a number, null,
    invalid UTF-8, absurd nesting, or JSON sent as text/plain) gets 400 bad_json on every
    JSON route (an anonymous text/plain login: 403 csrf_failed), and nothing is stored."""
    bodies = [
        (b'{"matter": ', "application/json"),
        (b"", "application/json"),
        (b"[1, 2]", "application/json"),
        (b'"text"', "application/json"),
        (b"42", "application/json"),
        (b"null", "application/json"),
        (b'{"matter": "\xff\xfe"}', "application/json"),
        (b"[" * 100_000 + b"]" * 100_000, "application/json"),
        (json.dumps(good_case()).encode(), "text/plain"),
    ]
    routes = [
        (clerk, "/api/v1/cases"),
        (clerk, "/api/v1/me/password"),
        (admin, "/api/v1/users"),
        (admin, "/api/v1/catalog"),
    ]
    before = await stored_rows(client.app)
    for body, content_type in bodies:
        headers = {"Content-Type": content_type}
        for session, path in routes:
            response = await session.post(path, data=body, headers=headers)
            await assert_error(response, 400, "bad_json")
        response = await anonymous.post("/api/v1/auth/login", data=body, headers=headers)
        if content_type == "application/json":
            await assert_error(response, 400, "bad_json")
        else:  # a cross-site form could send text/plain: the CSRF check refuses it first
            await assert_error(response, 403, "csrf_failed")
    assert await stored_rows(client.app) == before
    assert MESSAGES["bad_json"] == "请求内容不是有效的 JSON。"


async def test_missing_fields_are_named_in_chinese(client, clerk, admin):
    """A missing, empty or blank required field gets 400 field_required, and the message
    names the field in Chinese (e.g. "请填写申请人姓名。")."""
    before = await stored_rows(client.app)
    for field in ("matter", "applicant_name", "id_number", "phone"):
        for value in (None, "", "   "):
            data = good_case()
            if value is None:
                del data[field]
            else:
                data[field] = value
            await assert_error(
                await clerk.post("/api/v1/cases", json=data), 400, "field_required", field=field
            )
    for field in ("username", "display_name", "password", "outlet"):
        data = good_user()
        del data[field]
        await assert_error(
            await admin.post("/api/v1/users", json=data), 400, "field_required", field=field
        )
    response = await admin.post("/api/v1/users", json={**good_user(), "role": ""})
    await assert_error(response, 400, "field_invalid", field="role")
    assert (await (await clerk.post("/api/v1/cases", json={})).json())["error"][
        "message"
    ] == "请填写事项。"
    assert await stored_rows(client.app) == before


async def test_wrong_types_are_refused(client, clerk, admin, anonymous):
    """A number, list, object or boolean where text is expected gets 400 field_invalid
    naming the field (login: field_required), and nothing is stored."""
    before = await stored_rows(client.app)
    for field in ("matter", "applicant_name", "id_number", "phone", "notes"):
        for value in (12345, 1.5, True, ["王"], {"name": "王"}):
            response = await clerk.post("/api/v1/cases", json=good_case(**{field: value}))
            await assert_error(response, 400, "field_invalid", field=field)
    for field in ("username", "display_name", "role", "outlet"):
        response = await admin.post("/api/v1/users", json=good_user(**{field: 42}))
        await assert_error(response, 400, "field_invalid", field=field)
    response = await admin.post("/api/v1/users", json=good_user(password=1234567890))
    await assert_error(response, 400, "field_required", field="password")
    response = await admin.post("/api/v1/catalog", json={"matters": [{"code": 42}]})
    await assert_error(response, 400, "field_invalid", field="code")
    response = await anonymous.post("/api/v1/auth/login", json={"username": 7, "password": 8})
    await assert_error(response, 400, "field_required", field="username")
    assert await stored_rows(client.app) == before


async def test_invalid_id_numbers_are_refused(client, clerk):
    """An ID number with a wrong check digit, an impossible or future birth date, 17 or 19
    characters, letters, or an X out of place gets 400 invalid_id_number, on the API and on
    the form (which keeps what was typed); nothing is stored."""
    good = valid_id("45020219900307123")
    wrong_check = good[:17] + ("0" if good[17] != "0" else "1")
    next_year = dt.date.today().year + 1
    bad = [
        wrong_check,
        valid_id("45020219990230123"),  # 30 February
        valid_id("45020219901301123"),  # month 13
        valid_id(f"450202{next_year}0101123"),  # born next year
        valid_id("45020218890101123"),  # before 1900
        good[:17],
        good + "1",
        "4502021990030712X3",
        "ABCDEFGHIJKLMNOPQR",
        "0" + good[1:],
    ]
    before = await stored_rows(client.app)
    for id_number in bad:
        response = await clerk.post("/api/v1/cases", json=good_case(id_number=id_number))
        await assert_error(response, 400, "invalid_id_number", field="id_number")
    form = {**good_case(id_number=wrong_check, applicant_name="赵六"), "_csrf": clerk.csrf}
    page = await assert_error_page(
        await clerk.client.post("/cases/new", data=form), 400, "invalid_id_number"
    )
    assert 'value="赵六"' in page
    assert MESSAGES["invalid_id_number"] == "居民身份证号无效，请核对（18 位，含校验位）。"
    assert await stored_rows(client.app) == before


async def test_overlong_and_malformed_fields_are_refused(client, clerk):
    """A 65-character applicant name (the limit is 64), 2001 characters of notes and a
    phone number of the wrong shape are refused with the limit or field named; exactly 64
    characters are accepted."""
    before = await stored_rows(client.app)
    response = await clerk.post("/api/v1/cases", json=good_case(applicant_name="张" * 65))
    await assert_error(response, 400, "field_too_long", field="applicant_name", max=64)
    assert (await response.json())["error"]["message"] == "申请人姓名过长，最多 64 个字符。"
    response = await clerk.post("/api/v1/cases", json=good_case(notes="注" * 2001))
    await assert_error(response, 400, "field_too_long", field="notes", max=2000)
    for phone in ("12345", "1380000000a", "+8613800000000", "138 0000 0000"):
        response = await clerk.post("/api/v1/cases", json=good_case(phone=phone))
        await assert_error(response, 400, "field_invalid", field="phone")
    assert await stored_rows(client.app) == before
    response = await clerk.post("/api/v1/cases", json=good_case(applicant_name="张" * 64))
    assert response.status == 201
    assert (await response.json())["case"]["applicant_name"] == "张" * 64


async def test_control_characters_are_refused(client, clerk, admin):
    """NUL, escape, DEL and other control characters in a text field get 400
    field_invalid, as does a line break in a one-line field; notes may hold line breaks
    and tabs."""
    before = await stored_rows(client.app)
    for bad in ("张\x00三", "张\x1b[31m三", "张\x7f三", "张\x08三", "张\n三", "张\r三"):
        response = await clerk.post("/api/v1/cases", json=good_case(applicant_name=bad))
        await assert_error(response, 400, "field_invalid", field="applicant_name")
        response = await admin.post("/api/v1/users", json=good_user(display_name=bad))
        await assert_error(response, 400, "field_invalid", field="display_name")
    for bad in ("备\x00注", "备\x07注", "备\x0c注", "备\x1f注"):
        response = await clerk.post("/api/v1/cases", json=good_case(notes=bad))
        await assert_error(response, 400, "field_invalid", field="notes")
    assert await stored_rows(client.app) == before
    notes = "第一行\n第二行\t缩进\r\n第三行"
    response = await clerk.post("/api/v1/cases", json=good_case(notes=notes))
    assert response.status == 201
    assert (await response.json())["case"]["notes"] == notes


async def test_unknown_references_are_refused(client, clerk, admin):
    """An unknown or disabled matter gets 400 unknown_matter; an unknown outlet,
    department or jurisdiction for a new account gets its own code; nothing is stored."""
    disabled = await admin.client.post(
        "/admin/matters/LZ-BDC-0301/disable", data={"_csrf": admin.csrf}
    )
    assert disabled.status == 200
    before = await stored_rows(client.app)
    for matter in ("NO-SUCH-MATTER", "LZ-BDC-0301", "lz-scjg-0101", SQL_TEXT):
        response = await clerk.post("/api/v1/cases", json=good_case(matter=matter))
        await assert_error(response, 400, "unknown_matter", field="matter")
    assert MESSAGES["unknown_matter"] == "事项不存在或已停用。"
    refs = [
        ({"role": "clerk", "outlet": "NO-SUCH"}, "unknown_outlet", "outlet"),
        ({"role": "approver", "department": "NO-SUCH"}, "unknown_department", "department"),
        ({"role": "auditor", "jurisdiction": "999999"}, "unknown_jurisdiction", "jurisdiction"),
    ]
    for changes, code, field in refs:
        response = await admin.post("/api/v1/users", json=good_user(**changes))
        await assert_error(response, 400, code, field=field)
    assert await stored_rows(client.app) == before


async def test_duplicate_username_and_weak_passwords_are_refused(client, clerk, admin, data_dir):
    """Creating an account with a username in use gets 409 username_taken (API and admin
    form); a weak password (short, no digit, no letter, too long) gets 400
    password_too_weak when creating an account and when changing one's own password; the
    existing account and every stored password hash stay as they were."""
    before = await stored_rows(client.app)
    response = await admin.post("/api/v1/users", json=good_user(username="chuangkou"))
    await assert_error(response, 409, "username_taken", field="username")
    assert (await response.json())["error"]["message"] == "用户名已被使用。"
    form = {**good_user(username="chuangkou"), "_csrf": admin.csrf}
    del form["password"], form["temporary"]
    await assert_error_page(
        await admin.client.post("/admin/users", data=form), 409, "username_taken"
    )
    old = demo_password(data_dir, "chuangkou")
    for weak in ("short1", "abcdefghijkl", "123456789012", "a1" * 65, " " * 12):
        response = await admin.post("/api/v1/users", json=good_user(password=weak))
        await assert_error(response, 400, "password_too_weak", min=10)
        response = await clerk.post(
            "/api/v1/me/password", json={"old_password": old, "new_password": weak}
        )
        await assert_error(response, 400, "password_too_weak", min=10)
    assert (
        MESSAGES["password_too_weak"].format(min=10) == "密码至少 10 位，且须同时包含字母和数字。"
    )
    assert await stored_rows(client.app) == before


# -- hostile text ---------------------------------------------------------------------------


async def test_hostile_text_is_stored_verbatim_and_shown_escaped(
    client, clerk, admin, aiohttp_client
):
    """SQL-ish and HTML-ish text in every free-text field of a case (applicant name,
    notes) and of an account (display name, password) is stored and returned verbatim in
    JSON, found by search, and shown escaped in every page that shows it: the raw markup
    never appears in page HTML. Username, phone and ID number have a fixed shape, so there
    such text is refused."""
    created: dict[str, str] = {}
    for text in HOSTILE_TEXTS:
        response = await clerk.post(
            "/api/v1/cases", json=good_case(applicant_name=text, notes=f"备注：{text}\n{text}")
        )
        assert response.status == 201, await response.text()
        case = (await response.json())["case"]
        assert case["applicant_name"] == text
        created[text] = case["case_no"]
    form = {**good_case(applicant_name=HTML_TEXTS[0], notes=HTML_TEXTS[1]), "_csrf": clerk.csrf}
    response = await clerk.client.post("/cases/new", data=form, allow_redirects=False)
    assert response.status == 302
    form_case_no = response.headers["Location"].rsplit("/", 1)[-1]

    for text, case_no in created.items():
        case = (await (await clerk.get(f"/api/v1/cases/{case_no}")).json())["case"]
        assert (case["applicant_name"], case["notes"]) == (text, f"备注：{text}\n{text}")
        found = await (await clerk.get("/api/v1/cases", params={"q": text})).json()
        assert case_no in [c["case_no"] for c in found["cases"]]
    case = (await (await clerk.get(f"/api/v1/cases/{form_case_no}")).json())["case"]
    assert (case["applicant_name"], case["notes"]) == HTML_TEXTS
    assert len((await (await clerk.get("/api/v1/cases")).json())["cases"]) == 6

    pages = [f"/cases/{case_no}" for case_no in created.values()]
    pages += [f"/cases/{form_case_no}", "/cases", "/"]
    for path in pages:
        html = await (await clerk.get(path)).text()
        assert_escaped(html, [t for t in HOSTILE_TEXTS if t in html or str(escape(t)) in html])
    case_page = await (await clerk.get(f"/cases/{created[HTML_TEXTS[0]]}")).text()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in case_page

    password = "'; DROP TABLE users; --1 <b>"
    for index, text in enumerate(HOSTILE_TEXTS):
        response = await admin.post(
            "/api/v1/users",
            json=good_user(username=f"bad{index}", display_name=text, password=password),
        )
        assert response.status == 201, await response.text()
        assert (await response.json())["user"]["display_name"] == text
        response = await admin.post("/api/v1/users", json=good_user(username=text))
        await assert_error(response, 400, "field_invalid", field="username")
        response = await clerk.post("/api/v1/cases", json=good_case(phone=text))
        assert response.status == 400
        code = (await response.json())["error"]["code"]
        assert code in {"field_invalid", "field_too_long"}  # by length: shape or limit
        response = await clerk.post("/api/v1/cases", json=good_case(id_number=text))
        await assert_error(response, 400, "invalid_id_number", field="id_number")
    users = (await (await admin.get("/api/v1/users")).json())["users"]
    assert [u["display_name"] for u in users if u["username"].startswith("bad")] == list(
        HOSTILE_TEXTS
    )
    assert_escaped(await (await admin.get("/admin/users")).text(), list(HOSTILE_TEXTS))
    hostile = await login(await aiohttp_client(client.server), "bad1", password)
    assert_escaped(await (await hostile.get("/password")).text(), [HTML_TEXTS[0]])

    reflected = '"><script>alert(1)</script>'
    html = await (await clerk.get("/cases", params={"q": reflected})).text()
    assert_escaped(html, [reflected])
    html = await (await client.get("/login", params={"next": "/" + reflected})).text()
    assert_escaped(html, [reflected])


def assert_escaped(html: str, texts: list[str]) -> None:
    assert texts
    for text in texts:
        assert str(escape(text)) in html
        for raw in ("<script>", "<img", "'; DROP"):
            if raw in text:
                assert raw not in html


# -- sessions and CSRF -------------------------------------------------------------------


def flip(value: str, index: int) -> str:
    """The value with one character changed to another of the same alphabet."""
    replacement = "B" if value[index] == "A" else "A"
    return value[:index] + replacement + value[index + 1 :]


async def test_forged_altered_or_stale_session_cookies_are_refused(
    clocked, clock, aiohttp_client, data_dir
):
    """A session cookie with one character of the token or of the signature changed, no
    signature, a logged-out session or an expired one is no session: the API answers 401
    session_expired (also to a state-changing call with the right CSRF token), pages
    redirect to the login page, and nothing is stored."""
    password = demo_password(data_dir, "chuangkou")
    live = await login(await aiohttp_client(clocked.server), "chuangkou", password)
    cookie = session_cookie(live.client)
    token, _, signature = cookie.rpartition(".")
    logged_out = await login(await aiohttp_client(clocked.server), "chuangkou", password)
    stale = session_cookie(logged_out.client)
    assert (await logged_out.post("/api/v1/auth/logout")).status == 200
    expiring = await login(await aiohttp_client(clocked.server), "chuangkou", password)
    expired = session_cookie(expiring.client)

    forged = {
        "token changed": flip(cookie, 0),
        "token changed at the end": flip(cookie, len(token) - 1),
        "signature changed": flip(cookie, len(cookie) - 1),
        "signature changed at the start": flip(cookie, len(token) + 1),
        "no signature": token,
        "signature only": "." + signature,
        "empty signature": token + ".",
        "logged out": stale,
    }
    before = await stored_rows(clocked.app)
    probe = await aiohttp_client(clocked.server)

    async def assert_refused(label: str, value: str) -> None:
        headers = {"Cookie": f"{SESSION_COOKIE}={value}"}
        response = await probe.get("/api/v1/me", headers=headers)
        assert (await response.json())["error"]["code"] == "session_expired", label
        await assert_error(response, 401, "session_expired")
        response = await probe.post(
            "/api/v1/cases", json=good_case(), headers={**headers, "X-CSRF-Token": live.csrf}
        )
        await assert_error(response, 401, "session_expired")
        response = await probe.get("/cases", headers=headers, allow_redirects=False)
        assert (response.status, response.headers["Location"]) == (302, "/login?next=/cases")

    for label, value in forged.items():
        await assert_refused(label, value)
    assert (await live.get("/api/v1/me")).status == 200  # the original cookie works
    clock.advance(hours=10, seconds=1)  # Settings.session_hours
    await assert_refused("expired", expired)
    assert await stored_rows(clocked.app) == before


async def test_state_change_without_csrf_token_is_refused(client, clerk, admin):
    """With a valid session, a state-changing API call without the CSRF header, or with a
    wrong one, gets 403 csrf_failed and changes nothing; with it, the call succeeds."""
    before = await stored_rows(client.app)
    attempts = [
        (clerk, "/api/v1/cases", good_case()),
        (admin, "/api/v1/users", good_user()),
        (clerk, "/api/v1/me/password", {"old_password": "x", "new_password": GOOD_PASSWORD}),
        (clerk, "/api/v1/auth/logout", {}),
    ]
    for session, path, data in attempts:
        for headers in ({}, {"X-CSRF-Token": "not-the-token"}, {"X-CSRF-Token": ""}):
            response = await session.client.post(path, json=data, headers=headers)
            await assert_error(response, 403, "csrf_failed")
    assert MESSAGES["csrf_failed"] == "页面已过期或请求来源不可信，请刷新页面后重试。"
    assert await stored_rows(client.app) == before
    assert (await clerk.get("/api/v1/me")).status == 200  # logout was refused too
    assert (await clerk.post("/api/v1/cases", json=good_case())).status == 201


async def test_foreign_origin_is_refused(client, clerk, anonymous, data_dir):
    """A state-changing request whose Origin header names another site gets 403
    csrf_failed even with the right CSRF token (and a login from another site too); the
    page's own origin is accepted."""
    before = await stored_rows(client.app)
    for origin in ("https://evil.example", "http://127.0.0.1", "http://localhost:1"):
        response = await clerk.post("/api/v1/cases", json=good_case(), headers={"Origin": origin})
        await assert_error(response, 403, "csrf_failed")
        response = await anonymous.post(
            "/api/v1/auth/login",
            json={"username": "chuangkou", "password": demo_password(data_dir, "chuangkou")},
            headers={"Origin": origin},
        )
        await assert_error(response, 403, "csrf_failed")
    assert await stored_rows(client.app) == before
    own = str(client.make_url("")).rstrip("/")
    response = await clerk.post("/api/v1/cases", json=good_case(), headers={"Origin": own})
    assert response.status == 201


async def test_page_form_without_csrf_field_is_refused(client, clerk, admin):
    """A page form posted with a valid session but without the _csrf field (or with a
    wrong one) gets a 403 page in Chinese and changes nothing; with the field it works."""
    target = await client.app[ACCOUNTS].find("chuangkou_lz")
    assert target is not None
    before = await stored_rows(client.app)
    forms = [
        (clerk, "/cases/new", good_case()),
        (admin, f"/admin/users/{target.id}/disable", {}),
        (admin, "/admin/matters/LZ-SCJG-0101/disable", {}),
        (admin, "/admin/catalog/outlet", {"code": "X-1", "name": "网点", "jurisdiction": "450202"}),
        (clerk, "/logout", {}),
    ]
    for session, path, data in forms:
        for extra in ({}, {"_csrf": "forged"}, {"_csrf": admin.csrf + clerk.csrf}):
            response = await session.client.post(path, data={**data, **extra})
            page = await assert_error_page(response, 403, "csrf_failed")
            assert "无权访问" in page
    assert await stored_rows(client.app) == before
    response = await clerk.client.post(
        "/cases/new", data={**good_case(), "_csrf": clerk.csrf}, allow_redirects=False
    )
    assert response.status == 302


async def test_login_form_needs_the_prelogin_cookie(client, aiohttp_client, data_dir):
    """The login form is refused (403, no session) without the pre-login cookie or with a
    field that does not match it; with both it logs in, also for a browser that is
    already logged in as someone else."""
    password = demo_password(data_dir, "chuangkou")
    form = {"username": "chuangkou", "password": password, "next": "/cases"}
    fresh = await aiohttp_client(client.server)
    for field in ({}, {"_csrf": "guessed-token"}):
        response = await fresh.post("/login", data={**form, **field}, allow_redirects=False)
        await assert_error_page(response, 403, "csrf_failed")
        assert SESSION_COOKIE not in response.cookies
    page = await (await fresh.get("/login")).text()
    response = await fresh.post("/login", data={**form, "_csrf": "x" + prelogin_token(page)})
    await assert_error_page(response, 403, "csrf_failed")
    assert (await fresh.get("/api/v1/me")).status == 401

    response = await fresh.post(
        "/login", data={**form, "_csrf": prelogin_token(page)}, allow_redirects=False
    )
    assert (response.status, response.headers["Location"]) == (302, "/cases")
    assert (await (await fresh.get("/api/v1/me")).json())["user"]["username"] == "chuangkou"

    page = await (await fresh.get("/login")).text()
    other = {**form, "username": "shenpi", "password": demo_password(data_dir, "shenpi")}
    response = await fresh.post(
        "/login", data={**other, "_csrf": prelogin_token(page)}, allow_redirects=False
    )
    assert response.status == 302
    assert (await (await fresh.get("/api/v1/me")).json())["user"]["username"] == "shenpi"


async def test_oversized_body_is_refused(client, clerk, anonymous):
    """A request body over 2 MiB gets 413 payload_too_large: JSON for the API, a page for
    forms; nothing is stored."""
    before = await stored_rows(client.app)
    notes = "x" * MAX_REQUEST_BYTES
    as_json = {"Content-Type": "application/json"}
    as_form = {"Content-Type": "application/x-www-form-urlencoded"}

    def body(data: bytes) -> io.BytesIO:
        assert len(data) > MAX_REQUEST_BYTES
        return io.BytesIO(data)  # a stream: aiohttp warns when sending large raw bytes

    case = json.dumps(good_case(notes=notes)).encode()
    response = await clerk.post("/api/v1/cases", data=body(case), headers=as_json)
    await assert_error(response, 413, "payload_too_large")
    assert (await response.json())["error"]["message"] == "请求内容过大。"
    form = urlencode(good_case(notes=notes)).encode()
    response = await clerk.post("/cases/new", data=body(form), headers=as_form)
    await assert_error_page(response, 413, "payload_too_large")
    login_body = json.dumps({"username": "chuangkou", "password": notes}).encode()
    response = await anonymous.post("/api/v1/auth/login", data=body(login_body), headers=as_json)
    await assert_error(response, 413, "payload_too_large")
    assert await stored_rows(client.app) == before


# -- catalogue -------------------------------------------------------------------------------


async def test_catalog_import_is_all_or_nothing(client, admin):
    """A catalogue import with one bad entry among good ones (in any section, also in an
    uploaded file) imports nothing: new entries are not added and existing ones are not
    changed; the error names the bad field."""
    good = {
        "jurisdictions": [{"code": "450204", "name": "柳州市柳南区", "parent": "450200"}],
        "outlets": [{"code": "LZ-LN-01", "name": "柳南区窗口", "jurisdiction": "450204"}],
        "departments": [{"code": "LZ-LN-GA", "name": "柳南分局", "jurisdiction": "450204"}],
        "matters": [
            {
                "code": "LZ-SCJG-0101",
                "name": "改名了的事项",
                "department": "LZ-SCJG",
                "time_limit_days": 3,
                "mode": "remote_approval",
                "retention_years": 30,
                "materials": ["申请书"],
            },
            {
                "code": "LZ-LN-GA-0001",
                "name": "新事项",
                "department": "LZ-LN-GA",
                "time_limit_days": 5,
                "mode": "local_approval",
                "retention_years": 10,
                "materials": ["申请书", {"name": "委托书", "required": False}],
            },
        ],
    }
    before = await stored_rows(client.app)

    def spoiled(section: str, index: int, **changes: Any) -> dict[str, Any]:
        data = json.loads(json.dumps(good))
        data[section][index].update(changes)
        return data

    out_of_range = {"field": "time_limit_days", "low": 1, "high": 365}
    bad: list[tuple[dict[str, Any], str, dict[str, Any]]] = [
        (spoiled("matters", 1, time_limit_days=0), "field_out_of_range", out_of_range),
        (spoiled("matters", 1, department="NO-SUCH"), "unknown_department", {}),
        (spoiled("matters", 1, materials=[]), "field_invalid", {"field": "materials"}),
        (spoiled("matters", 1, mode="teleport"), "field_invalid", {"field": "mode"}),
        (spoiled("outlets", 0, jurisdiction="999999"), "unknown_jurisdiction", {}),
        (
            spoiled("departments", 0, name=HTML_TEXTS[0] * 20),
            "field_too_long",
            {"field": "name", "max": 128},
        ),
        (spoiled("jurisdictions", 0, code="45-02"), "field_invalid", {"field": "code"}),
        (
            {**good, "outlets": [*good["outlets"], "LZ-XX-01"]},
            "field_invalid",
            {"field": "outlets"},
        ),
        ({**good, "matters": {"code": "x"}}, "field_invalid", {"field": "matters"}),
    ]
    for data, code, params in bad:
        response = await admin.post("/api/v1/catalog", json=data)
        await assert_error(response, 400, code, **params)
    upload = FormData()
    upload.add_field("_csrf", admin.csrf)
    upload.add_field(
        "file",
        json.dumps(bad[0][0]).encode(),
        filename="catalog.json",
        content_type="application/json",
    )
    response = await admin.client.post("/admin/catalog/import", data=upload)
    await assert_error_page(response, 400, "field_out_of_range", **out_of_range)
    upload = FormData()
    upload.add_field("_csrf", admin.csrf)
    upload.add_field("file", b"{not json", filename="catalog.json")
    response = await admin.client.post("/admin/catalog/import", data=upload)
    await assert_error_page(response, 400, "bad_json")
    assert await stored_rows(client.app) == before

    response = await admin.post("/api/v1/catalog", json=good)
    assert response.status == 200, await response.text()
    assert (await client.app[CATALOG].snapshot()).matter("LZ-SCJG-0101").name == "改名了的事项"


async def test_jurisdiction_cycle_is_refused(client, admin, aiohttp_client):
    """A jurisdiction cannot become its own parent or its descendant's child (400
    jurisdiction_cycle, nothing changed): such a cycle would make scope lookups of
    auditors loop."""
    before = await stored_rows(client.app)
    cycles = [
        [{"code": "450202", "name": "柳州市城中区", "parent": "450202"}],
        [{"code": "450200", "name": "柳州市", "parent": "450202"}],
        [
            {"code": "450205", "name": "甲", "parent": "450200"},
            {"code": "450200", "name": "柳州市", "parent": "450205"},
        ],
    ]
    for entries in cycles:
        response = await admin.post("/api/v1/catalog", json={"jurisdictions": entries})
        await assert_error(response, 400, "jurisdiction_cycle", field="parent")
    assert await stored_rows(client.app) == before
    response = await admin.post(
        "/api/v1/users",
        json=good_user(username="shen_lz", role="auditor", jurisdiction="450200"),
    )
    assert response.status == 201
    auditor = await login(await aiohttp_client(client.server), "shen_lz", GOOD_PASSWORD)
    listed = await (await auditor.get("/api/v1/cases")).json()
    assert len(listed["cases"]) == 2


# -- login throttling ------------------------------------------------------------------------


async def test_five_wrong_passwords_limit_that_address_not_the_account(
    clocked, clock, data_dir, aiohttp_client
):
    """Five wrong passwords for an account from one address make that address wait (429
    too_many_attempts even with the right password, API and form; logged "login_locked")
    while the same account logs in from another address; the address is free again once
    its failures leave the window."""
    password = demo_password(data_dir, "chuangkou")
    for _ in range(5):
        response = await clocked.post(
            "/api/v1/auth/login", json={"username": "chuangkou", "password": "wrong-pass-1"}
        )
        await assert_error(response, 401, "bad_credentials")
    response = await clocked.post(
        "/api/v1/auth/login", json={"username": "chuangkou", "password": password}
    )
    await assert_error(response, 429, "too_many_attempts")
    assert SESSION_COOKIE not in response.cookies
    page = await (await clocked.get("/login")).text()
    form = {"username": "chuangkou", "password": password, "_csrf": prelogin_token(page)}
    await assert_error_page(await clocked.post("/login", data=form), 429, "too_many_attempts")
    assert [e.actor for e in await clocked.app[AUDIT].events("system", kind="login_locked")] == [
        "chuangkou"
    ]
    other_address = await clocked.app[ACCOUNTS].authenticate("chuangkou", password, "10.9.9.9")
    assert other_address.username == "chuangkou"

    clock.advance(minutes=15, seconds=1)  # Settings.login_window_minutes
    await login(await aiohttp_client(clocked.server), "chuangkou", password)


async def test_unknown_and_known_accounts_answer_alike(clocked):
    """Wrong passwords for an existing account and for a name that does not exist get the
    same status and body, the first five and the ones after (no account oracle)."""
    answers: dict[str, list[tuple[int, Any]]] = {"chuangkou": [], "no_such_user": []}
    for username, seen in answers.items():
        for _ in range(7):
            response = await clocked.post(
                "/api/v1/auth/login", json={"username": username, "password": "wrong-pass-1"}
            )
            seen.append((response.status, await response.json()))
    assert answers["chuangkou"] == answers["no_such_user"]
    assert [status for status, _ in answers["chuangkou"]] == [401] * 5 + [429] * 2


async def test_an_attacked_account_is_slowed_for_everyone_never_locked(clocked, clock, data_dir):
    """Failures from many addresses past account_slow_after (10) space the account's
    attempts (1 s, then 2 s, ...): too soon → 429, after the wait the real password works."""
    accounts = clocked.app[ACCOUNTS]
    password = demo_password(data_dir, "chuangkou")
    for n in range(10):
        with pytest.raises(NotAuthenticated):
            await accounts.authenticate("chuangkou", "wrong-pass-1", f"10.1.0.{n}")
    with pytest.raises(Throttled):
        await accounts.authenticate("chuangkou", password, "10.2.0.1")
    clock.advance(seconds=1)
    assert (await accounts.authenticate("chuangkou", password, "10.2.0.1")).username == "chuangkou"


async def test_an_admin_lifts_login_limits(clocked, data_dir, aiohttp_client):
    """An admin's unlock clears an account's failures (every address) and is logged."""
    for _ in range(5):
        await clocked.post(
            "/api/v1/auth/login", json={"username": "chuangkou", "password": "wrong-pass-1"}
        )
    password = demo_password(data_dir, "chuangkou")
    blocked = await clocked.post(
        "/api/v1/auth/login", json={"username": "chuangkou", "password": password}
    )
    assert blocked.status == 429
    admin = await login(
        await aiohttp_client(clocked.server), "admin", demo_password(data_dir, "admin")
    )
    target = await clocked.app[ACCOUNTS].find("chuangkou")
    assert target is not None
    unlocked = await admin.post(f"/api/v1/admin/users/{target.id}/unlock")
    assert (unlocked.status, (await unlocked.json())["cleared"]) == (200, 5)
    assert await clocked.app[AUDIT].count("account_unlocked") == 1
    await login(await aiohttp_client(clocked.server), "chuangkou", password)


async def test_guessing_the_current_password_counts_as_failed_logins(
    clocked, data_dir, aiohttp_client
):
    """Wrong current passwords on the password-change endpoint count like failed logins:
    after five, even the right one gets 429, and each is logged."""
    password = demo_password(data_dir, "chuangkou")
    clerk = await login(await aiohttp_client(clocked.server), "chuangkou", password)
    change = {"new_password": "Brand-new-pass-2026"}
    for _ in range(5):
        response = await clerk.post(
            "/api/v1/me/password", json={"old_password": "guess-12345", **change}
        )
        await assert_error(response, 400, "wrong_password", field="old_password")
    response = await clerk.post("/api/v1/me/password", json={"old_password": password, **change})
    await assert_error(response, 429, "too_many_attempts")
    assert await clocked.app[AUDIT].count("password_change_failed") == 5


@pytest.fixture
async def strict(aiohttp_client: ClientFactory, data_dir, clock) -> TestClient[Any, Any]:
    """The app with an address throttled after three failed logins."""
    settings = Settings(data_dir=data_dir, address_max_failures=3)
    return await aiohttp_client(create_app(settings, clock))


async def test_many_failures_from_one_address_throttle_it(strict, clock, data_dir):
    """After address_max_failures failed logins from one address (here 3, for any
    usernames), further logins from it, even correct ones, get 429 too_many_attempts and a
    "login_throttled" event is logged; no account is locked, and the address is free again
    once the window has passed."""
    for username in ("nobody", "chuangkou", "ghost"):
        response = await strict.post(
            "/api/v1/auth/login", json={"username": username, "password": "wrong-pass-1"}
        )
        await assert_error(response, 401, "bad_credentials")
    password = demo_password(data_dir, "shenpi")
    response = await strict.post(
        "/api/v1/auth/login", json={"username": "shenpi", "password": password}
    )
    await assert_error(response, 429, "too_many_attempts")
    assert MESSAGES["too_many_attempts"] == "登录尝试过于频繁，请稍后再试。"
    assert await strict.app[AUDIT].count("login_throttled") == 1
    assert await strict.app[AUDIT].count("login_locked") == 0

    clock.advance(minutes=15, seconds=1)  # Settings.login_window_minutes
    await login(strict, "shenpi", password)


async def test_login_redirect_does_not_carry_an_id_number(anonymous):
    """A search by ID number that meets an expired session is sent to the login page
    without the number; other parameters are kept."""
    id_number = valid_id()
    response = await anonymous.get(
        f"/cases?{urlencode({'q': id_number, 'status': 'accepted'})}", allow_redirects=False
    )
    assert response.status == 302
    location = response.headers["Location"]
    assert id_number not in location
    assert "status%3Daccepted" in location


async def test_changing_the_password_ends_other_login_sessions(client, aiohttp_client, data_dir):
    """After a password change, the user's other login sessions are refused; the one
    that changed it goes on."""
    password = demo_password(data_dir, "chuangkou")
    first = await login(await aiohttp_client(client.server), "chuangkou", password)
    second = await login(await aiohttp_client(client.server), "chuangkou", password)
    new = "Brand-new-pass-2026"
    changed = await first.post(
        "/api/v1/me/password", json={"old_password": password, "new_password": new}
    )
    assert changed.status == 200
    assert (await first.get("/api/v1/me")).status == 200
    stale = await second.get("/api/v1/me")
    assert stale.status == 401
    assert (await stale.json())["error"]["code"] == "session_expired"
