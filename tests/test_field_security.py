"""Field readiness, security: defects a penetration test found (issue 8), each pinned."""

from __future__ import annotations

import json
import os
import stat
from urllib.parse import quote

import pytest

from recorder.clock import SystemClock
from signaling.node.services import open_services
from signaling.review import protocol
from signaling.settings import Settings
from tests.helpers import demo_password, valid_id

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


async def test_data_dir_is_private_whatever_the_umask(tmp_path):
    """With a permissive umask (022) the data directory is 0700 and the database, its WAL
    and SHM files, the secrets and stored evidence are readable by the owner only; a data
    directory left 0755 is tightened at start."""
    data_dir = tmp_path / "var"
    data_dir.mkdir(mode=0o755)
    data_dir.chmod(0o755)
    previous = os.umask(0o022)
    try:
        async with open_services(Settings(data_dir=data_dir), SystemClock()) as services:
            await services.audit.append("probe", actor=None)
            stored = services.evidence.put(b"evidence")
            modes = {
                path.relative_to(data_dir).as_posix(): stat.S_IMODE(path.stat().st_mode)
                for path in data_dir.rglob("*")
            }
    finally:
        os.umask(previous)
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    assert {"coreview.sqlite3", "coreview.sqlite3-wal", "coreview.sqlite3-shm"} <= set(modes)
    assert f"evidence/sha256/{stored.sha256[:2]}/{stored.sha256}" in modes
    for name, mode in modes.items():
        assert mode & 0o077 == 0, f"{name} is {oct(mode)}"


HOSTILE_TEXT = {
    "lone surrogate": '"王\\ud800二"',
    "right-to-left override": '"\\u202e二小王"',
    "zero-width only": '"\\u200b\\u200d\\ufeff"',
    "NUL": '"王\\u0000二"',
    "spaces only (ideographic)": '"\\u3000\\u3000"',
}


@pytest.mark.parametrize("name", HOSTILE_TEXT)
async def test_case_fields_refuse_text_that_cannot_be_shown_honestly(as_user, name):
    """A case whose applicant name is a lone surrogate, reordered by a bidi override,
    invisible or holds NUL gets 400 field_invalid (not a 500), and nothing is stored."""
    clerk = await as_user("chuangkou")
    before = (await (await clerk.get("/api/v1/cases")).json())["cases"]
    fields = {
        "matter": "LZ-SCJG-0101",
        "applicant_name": "@",
        "id_number": valid_id(),
        "phone": "13800000000",
        "notes": "",
    }
    body = json.dumps(fields).replace('"@"', HOSTILE_TEXT[name])  # raw JSON escapes
    response = await clerk.post(
        "/api/v1/cases", data=body, headers={"Content-Type": "application/json"}
    )
    assert response.status == 400, await response.text()
    assert (await response.json())["error"]["code"] in ("field_invalid", "field_required")
    assert (await (await clerk.get("/api/v1/cases")).json())["cases"] == before


async def test_case_text_is_stored_in_nfc(as_user):
    """A name typed in decomposed form (e + combining acute) is stored composed (NFC),
    so the same name always compares and searches the same."""
    clerk = await as_user("chuangkou")
    body = {
        "matter": "LZ-SCJG-0101",
        "applicant_name": "Rene\u0301 王",
        "id_number": valid_id(),
        "phone": "13800000000",
        "notes": "",
    }
    response = await clerk.post("/api/v1/cases", json=body)
    assert response.status == 201
    assert (await response.json())["case"]["applicant_name"] == "Ren\u00e9 王"


@pytest.mark.parametrize("text", ["a\u0000b", "\u202eabc", "\u200b\u200b", "x\ud800", "\u0007bell"])
def test_chat_refuses_text_that_cannot_be_shown_honestly(text):
    """A chat message with NUL, a bidi override, only invisible characters, a lone
    surrogate or another control character is a protocol error naming the field."""
    raw = json.dumps({"v": 1, "type": "chat", "text": text})
    with pytest.raises(protocol.ProtocolError) as refused:
        protocol.parse(raw)
    assert (refused.value.code, refused.value.detail) == ("bad_field", "text")


def test_chat_keeps_line_breaks_and_normalises():
    """Multi-line chat keeps its line breaks and is stored in NFC."""
    parsed = protocol.parse(json.dumps({"v": 1, "type": "chat", "text": "第一行\n Rene\u0301"}))
    assert isinstance(parsed, protocol.Chat)
    assert parsed.text == "第一行\n Ren\u00e9"


async def test_responses_do_not_name_server_versions(anonymous):
    """The Server header names no library or version (pages, API, static files, errors)."""
    for path in ("/login", "/healthz", "/static/css/app.css", "/api/v1/me", "/no-such-page"):
        response = await anonymous.get(path)
        assert response.headers["Server"] == "coreview", path
