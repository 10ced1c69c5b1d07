"""Field readiness, security: defects a penetration test found (issue 8), each pinned."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from tests.helpers import demo_password

HOSTILE_NEXT = [
    "/\t/evil.example",
    "/\n/evil.example",
    "/\r\n/evil.example",
    "//evil.example",
    "/\\evil.example",
    "/\\/evil.example",
    "\\\\evil.example",
    "/ /evil.example",
    "https://evil.example/",
    "javascript:alert(1)",
    "/\x7f/evil.example",
    "evil.example",
]


@pytest.mark.parametrize("target", HOSTILE_NEXT)
async def test_login_redirects_only_to_paths_of_this_site(anonymous, data_dir, target):
    """After login, ``next`` naming another host by any trick (tabs, newlines, backslashes,
    percent-encoded forms, schemes) sends the user to / instead."""
    page = await anonymous.get(f"/login?next={quote(target, safe='')}")
    assert page.status == 200
    html = await page.text()
    token = html.split('name="_csrf" value="')[-1].split('"')[0]
    response = await anonymous.post(
        "/login",
        data={
            "username": "shenpi",
            "password": demo_password(data_dir, "shenpi"),
            "next": target,
            "_csrf": token,
        },
        allow_redirects=False,
    )
    assert response.status == 302
    assert response.headers["Location"] == "/"


async def test_login_keeps_a_path_of_this_site(anonymous, data_dir):
    """A plain path of this site (with a query) survives the login."""
    page = await (await anonymous.get("/login")).text()
    token = page.split('name="_csrf" value="')[-1].split('"')[0]
    response = await anonymous.post(
        "/login",
        data={
            "username": "shenpi",
            "password": demo_password(data_dir, "shenpi"),
            "next": "/cases?page=2",
            "_csrf": token,
        },
        allow_redirects=False,
    )
    assert (response.status, response.headers["Location"]) == (302, "/cases?page=2")


async def test_opaque_origin_is_foreign(as_user):
    """``Origin: null`` (a sandboxed frame, a data: URL) is not this site: a state-changing
    request and a WebSocket handshake carrying it are refused; the own origin passes."""
    clerk = await as_user("chuangkou")
    response = await clerk.post("/api/v1/auth/logout", headers={"Origin": "null"})
    assert response.status == 403
    assert (await response.json())["error"]["code"] == "csrf_failed"
    approver = await as_user("shenpi")
    refused = await approver.get("/api/v1/queue/ws", headers={"Origin": "null"})
    assert refused.status == 403
    own = str(approver.client.make_url("")).rstrip("/")
    async with approver.client.ws_connect("/api/v1/queue/ws", headers={"Origin": own}) as ws:
        assert (await ws.receive_json())["type"] == "queue"
