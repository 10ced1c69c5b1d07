"""Document stills over the real API on a loopback server: the approver's request reaches
the clerk, the clerk's upload is checked, stored write-once, listed, served and
announced; every bad upload gets its own clear error and stores nothing."""

from __future__ import annotations

import hashlib
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiohttp import web
from PIL import Image
from sqlalchemy import select

from coreview.app import create_app
from coreview.simulate import ApiClient
from signaling.review import protocol
from signaling.settings import Settings
from signaling.storage.tables import evidence_files, review_sessions
from signaling.web.appkeys import AUDIT, ENGINE, EVIDENCE
from tests.helpers import demo_password, live_call, start_session, stored_rows

MAX_BYTES = 300_000
MAX_PIXELS = 2_000_000


@pytest.fixture
async def app_server(aiohttp_server: Any, data_dir: Path) -> Any:
    """A loopback server with small still limits, so limits are cheap to cross."""
    settings = Settings(
        data_dir=data_dir,
        announced_addresses=("127.0.0.1",),
        max_still_bytes=MAX_BYTES,
        max_still_pixels=MAX_PIXELS,
    )
    return await aiohttp_server(create_app(settings))


@pytest.fixture
async def users(app_server: Any, data_dir: Path) -> AsyncIterator[Any]:
    clients: list[ApiClient] = []

    async def make(name: str) -> ApiClient:
        client = ApiClient(str(app_server.make_url("")))
        await client.login(name, demo_password(data_dir, name))
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


def image(kind: str = "PNG", size: tuple[int, int] = (640, 480)) -> bytes:
    picture = Image.new("RGB", size, (235, 235, 235))
    for x in range(0, size[0], 40):  # some structure, so it is not all one colour
        picture.paste((40, 40, 40), (x, 10, x + 20, 30))
    out = io.BytesIO()
    picture.save(out, kind)
    return out.getvalue()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def upload(
    api: ApiClient,
    session_id: str,
    data: bytes,
    content_type: str = "image/png",
    digest: str | None = None,
    **query: str,
) -> tuple[int, dict[str, Any]]:
    headers = {
        "X-CSRF-Token": api.csrf,
        "Content-Type": content_type,
        "X-Still-SHA256": sha(data) if digest is None else digest,
    }
    url = f"{api.base_url}/api/v1/sessions/{session_id}/stills"
    async with api.http.post(url, data=io.BytesIO(data), headers=headers, params=query) as response:
        return response.status, await response.json()


async def materials(api: ApiClient, case_no: str) -> list[dict[str, Any]]:
    case = (await api.get(f"/api/v1/cases/{case_no}"))["case"]
    found: list[dict[str, Any]] = case["matter"]["materials"]
    return found


def stored_files(app: web.Application) -> list[Path]:
    return sorted((app[EVIDENCE].root / "sha256").rglob("*"))


async def test_requested_still_is_stored_listed_served_and_announced(users, app_server):
    """The approver asks for a still of a named material; the clerk is told with a
    request id; the clerk's upload with that id is stored byte for byte, filed against
    the material, logged, announced to the approver at once, listed and served."""
    clerk, approver = await users("chuangkou"), await users("shenpi")
    started, clerk_channel, approver_channel = await live_call(clerk, approver)
    session_id = started["session"]["id"]
    try:
        licence = (await materials(clerk, started["session"]["case_no"]))[2]
        await approver_channel.send(protocol.StillRequest(licence["id"]))
        asked = await clerk_channel.wait("still_requested")
        assert asked["material"] == {"id": licence["id"], "name": "营业执照正、副本"}
        assert asked["requested_by"] == "shenpi"

        data = image("JPEG", (1600, 1200))
        status, body = await upload(clerk, session_id, data, "image/jpeg", request=asked["request"])
        assert status == 201, body
        still = body["still"]
        assert (still["sha256"], still["bytes"]) == (sha(data), len(data))
        assert (still["width"], still["height"]) == (1600, 1200)
        assert still["material"] == asked["material"] and still["request"] == asked["request"]
        added = await approver_channel.wait("still_added")
        assert added["still"] == still

        path = app_server.app[EVIDENCE].path(still["sha256"])
        assert path.read_bytes() == data and not path.stat().st_mode & 0o222
        for api in (clerk, approver):
            listed = await api.get(f"/api/v1/sessions/{session_id}/stills")
            assert listed["stills"] == [still]
        async with approver.http.get(approver.base_url + still["url"]) as response:
            assert response.status == 200
            assert response.content_type == "image/jpeg"
            assert await response.read() == data

        # the same bytes again (a retried upload) answer the stored still, nothing new
        status, body = await upload(clerk, session_id, data, "image/jpeg")
        assert (status, body["still"]) == (200, still)
    finally:
        await clerk_channel.close()
        await approver_channel.close()


async def test_the_same_still_in_a_second_session_is_filed_for_it(users, app_server):
    """The same bytes uploaded in a later session of the same case get that session's
    own row, still_captured event and place in its gallery."""
    clerk, approver = await users("chuangkou"), await users("shenpi")
    started, clerk_channel, approver_channel = await live_call(clerk, approver)
    first, case_no = started["session"]["id"], started["session"]["case_no"]
    data = image()
    try:
        status, body = await upload(clerk, first, data)
        assert status == 201, body
        await approver.post(f"/api/v1/sessions/{first}/end")
    finally:
        await clerk_channel.close()
        await approver_channel.close()
    again = await clerk.post(f"/api/v1/cases/{case_no}/sessions", {"consent": True})
    second = again["session"]["id"]
    await approver.post(f"/api/v1/sessions/{second}/accept")
    status, body = await upload(clerk, second, data)
    assert status == 201, body
    listed = await approver.get(f"/api/v1/sessions/{second}/stills")
    assert [s["sha256"] for s in listed["stills"]] == [sha(data)]
    first_listed = await approver.get(f"/api/v1/sessions/{first}/stills")
    assert [s["sha256"] for s in first_listed["stills"]] == [sha(data)]
    events = await app_server.app[AUDIT].events(f"case:{case_no}", "still_captured")
    assert [e.detail["session"] for e in events] == [first, second]
    evidence = await approver.get(f"/api/v1/cases/{case_no}/evidence")
    assert sorted(s["session"] for s in evidence["stills"]) == sorted([first, second])


async def test_a_retry_logs_a_still_whose_first_attempt_died_before_its_event(users, app_server):
    """A still whose row was filed but whose still_captured event was never written (the
    server died in between) is logged by the retried upload, once."""
    app = app_server.app
    clerk, approver = await users("chuangkou"), await users("shenpi")
    started, clerk_channel, approver_channel = await live_call(clerk, approver)
    session_id, case_no = started["session"]["id"], started["session"]["case_no"]
    data = image()
    try:
        async with app[ENGINE].begin() as conn:
            case_id = await conn.scalar(
                select(review_sessions.c.case_id).where(review_sessions.c.id == session_id)
            )
            app[EVIDENCE].put(data)
            await conn.execute(
                evidence_files.insert().values(
                    sha256=sha(data),
                    case_id=case_id,
                    session_id=session_id,
                    role="still",
                    participant="chuangkou",
                    source="document",
                    bytes=len(data),
                    meta={"width": 640, "height": 480, "content_type": "image/png"},
                    created_at=datetime.now(UTC),
                )
            )
        for _ in range(2):
            status, body = await upload(clerk, session_id, data)
            assert status == 200, body
        events = await app[AUDIT].events(f"case:{case_no}", "still_captured")
        assert [(e.detail["session"], e.detail["sha256"]) for e in events] == [
            (session_id, sha(data))
        ]
    finally:
        await clerk_channel.close()
        await approver_channel.close()


async def test_only_approvers_may_request_and_only_for_the_matter(users):
    """A clerk's still_request is not allowed; a material of another matter is refused;
    neither reaches anyone."""
    clerk, approver = await users("chuangkou"), await users("shenpi")
    _started, clerk_channel, approver_channel = await live_call(clerk, approver)
    try:
        await clerk_channel.send(protocol.StillRequest(None))
        assert (await clerk_channel.wait("error"))["code"] == "not_allowed"
        foreign = await foreign_material(clerk)
        await approver_channel.send(protocol.StillRequest(foreign))
        refused = await approver_channel.wait("error")
        assert refused["code"] == "unknown_material"
        assert refused["message"] == "该材料不属于本案件办理事项的申请材料。"
        assert clerk_channel.latest("still_requested") is None
    finally:
        await clerk_channel.close()
        await approver_channel.close()


async def foreign_material(clerk: ApiClient) -> int:
    """The id of a material of another matter (a case of LZ-SCJG-0102)."""
    started = await start_session(clerk, "LZ-SCJG-0102")
    await clerk.post(f"/api/v1/sessions/{started['session']['id']}/cancel")
    found = await materials(clerk, started["session"]["case_no"])
    return int(found[0]["id"])


async def test_bad_uploads_get_clear_errors_and_store_nothing(users, app_server):
    """Hash mismatch, too large (declared or streamed), not an image, a renamed
    executable, a wrong or missing Content-Type, a bad hash header, a truncated image,
    too many pixels, a material of another matter, a request of another session: each
    is refused with its code and Chinese message, and neither the store nor any table
    changes."""
    clerk, approver = await users("chuangkou"), await users("shenpi")
    started, clerk_channel, approver_channel = await live_call(clerk, approver)
    session_id = started["session"]["id"]
    _other, other_clerk, other_approver = await live_call(clerk, approver)
    try:
        await other_approver.send(protocol.StillRequest(None))
        other_request = (await other_clerk.wait("still_requested"))["request"]
        good = image()
        elf = b"\x7fELF\x02\x01\x01" + bytes(2000)
        truncated = image("JPEG", (800, 600))[:-400]
        cases: list[tuple[str, dict[str, Any], int, str]] = [
            ("hash mismatch", {"data": good, "digest": sha(good + b"x")}, 400, "hash_mismatch"),
            ("bad hash header", {"data": good, "digest": "abc"}, 400, "still_bad_hash"),
            ("too large", {"data": bytes(MAX_BYTES + 1)}, 413, "still_too_large"),
            ("text", {"data": "营业执照".encode() * 10}, 415, "still_not_image"),
            (
                "renamed executable",
                {"data": elf, "content_type": "image/jpeg"},
                415,
                "still_not_image",
            ),
            (
                "wrong content type",
                {"data": good, "content_type": "image/jpeg"},
                400,
                "still_type_mismatch",
            ),
            (
                "not an image type",
                {"data": good, "content_type": "application/octet-stream"},
                415,
                "still_bad_content_type",
            ),
            (
                "truncated",
                {"data": truncated, "content_type": "image/jpeg"},
                400,
                "still_undecodable",
            ),
            ("too many pixels", {"data": image("PNG", (2000, 1001))}, 400, "still_too_many_pixels"),
            (
                "foreign material",
                {"data": good, "material": str(await foreign_material(clerk))},
                400,
                "unknown_material",
            ),
            ("no such material", {"data": good, "material": "abc"}, 400, "unknown_material"),
            (
                "another session's request",
                {"data": good, "request": other_request},
                400,
                "unknown_still_request",
            ),
            ("made-up request", {"data": good, "request": "0" * 16}, 400, "unknown_still_request"),
        ]
        before_rows = await stored_rows(app_server.app)
        before_files = stored_files(app_server.app)
        for name, args, status, code in cases:
            data = args.pop("data")
            answered, body = await upload(clerk, session_id, data, **args)
            assert (answered, body["error"]["code"]) == (status, code), name
            assert body["error"]["message"] and not body["error"]["message"].isascii(), name
        assert await stored_rows(app_server.app) == before_rows
        assert stored_files(app_server.app) == before_files
        assert list((app_server.app[EVIDENCE].root / "incoming").iterdir()) == []
        assert approver_channel.latest("still_added") is None
    finally:
        for channel in (
            clerk_channel,
            approver_channel,
            other_clerk,
            other_approver,
        ):
            await channel.close()


async def test_a_streamed_body_over_the_limit_is_cut_off(users, app_server):
    """A chunked upload (no Content-Length) is read only up to the limit: 413, nothing
    stored."""
    clerk, approver = await users("chuangkou"), await users("shenpi")
    started, clerk_channel, approver_channel = await live_call(clerk, approver)
    session_id = started["session"]["id"]

    async def chunks() -> AsyncIterator[bytes]:
        yield b"\x89PNG\r\n\x1a\n"
        for _ in range(MAX_BYTES // 65536 + 2):
            yield bytes(65536)

    try:
        before_files = stored_files(app_server.app)
        headers = {
            "X-CSRF-Token": clerk.csrf,
            "Content-Type": "image/png",
            "X-Still-SHA256": "0" * 64,
        }
        url = f"{clerk.base_url}/api/v1/sessions/{session_id}/stills"
        async with clerk.http.post(url, data=chunks(), headers=headers) as response:
            assert response.status == 413
            assert (await response.json())["error"]["code"] == "still_too_large"
        assert stored_files(app_server.app) == before_files
    finally:
        await clerk_channel.close()
        await approver_channel.close()


async def test_who_may_upload_and_when(users, app_server):
    """Only the clerk who publishes the document camera in a live session may upload:
    the approver and the hidden auditor get no_document_grant, another outlet's clerk
    out_of_scope, a waiting or ended session still_not_live; nothing is stored."""
    clerk, approver = await users("chuangkou"), await users("shenpi")
    auditor, stranger = await users("jiancha"), await users("chuangkou_lz")
    waiting = await start_session(clerk)
    started, clerk_channel, approver_channel = await live_call(clerk, approver)
    session_id = started["session"]["id"]
    good = image()
    try:
        for api, target, status, code in (
            (approver, session_id, 403, "no_document_grant"),
            (auditor, session_id, 403, "no_document_grant"),
            (stranger, session_id, 403, "out_of_scope"),  # a clerk of another outlet
            (clerk, waiting["session"]["id"], 409, "still_not_live"),
        ):
            answered, body = await upload(api, target, good)
            assert (answered, body["error"]["code"]) == (status, code), api.user["username"]
        await approver.post(f"/api/v1/sessions/{session_id}/end")
        answered, body = await upload(clerk, session_id, good)
        assert (answered, body["error"]["code"]) == (409, "still_not_live")
        assert (await stored_rows(app_server.app))["evidence_files"] == []
        assert stored_files(app_server.app) == []
    finally:
        await clerk_channel.close()
        await approver_channel.close()


async def test_stills_are_served_only_within_their_session(users, app_server):
    """A still is served under its own session only: another session of the same clerk
    answers 404 for it, a clerk of another outlet 403."""
    clerk, approver = await users("chuangkou"), await users("shenpi")
    stranger = await users("chuangkou_lz")
    first, *channels = await live_call(clerk, approver)
    second, *more = await live_call(clerk, approver)
    try:
        data = image()
        status, body = await upload(clerk, first["session"]["id"], data)
        assert status == 201
        digest = body["still"]["sha256"]
        for api, session, expected in (
            (clerk, second, 404),
            (stranger, first, 403),
            (approver, first, 200),
        ):
            url = f"{api.base_url}/api/v1/sessions/{session['session']['id']}/stills/{digest}"
            async with api.http.get(url) as response:
                assert response.status == expected, api.user["username"]
                if expected != 200:
                    code = (await response.json())["error"]["code"]
                    assert code == ("still_not_found" if expected == 404 else "out_of_scope")
    finally:
        for channel in (*channels, *more):
            await channel.close()


async def test_a_still_over_the_json_body_limit_is_taken(server, data_dir):
    """With the default limit (30 MiB) a 12 MP still of several MiB — over the app's
    2 MiB limit for other bodies — is read as a stream and stored whole."""
    clients = []
    try:
        for name in ("chuangkou", "shenpi"):
            client = ApiClient(str(server.make_url("")))
            await client.login(name, demo_password(data_dir, name))
            clients.append(client)
        clerk, approver = clients
        started, *channels = await live_call(clerk, approver)
        noise = np.random.default_rng(1).integers(0, 256, (3000, 4000, 3), dtype=np.uint8)
        out = io.BytesIO()
        Image.fromarray(noise).save(out, "JPEG", quality=90)
        data = out.getvalue()
        assert len(data) > 3 * 1024 * 1024
        status, body = await upload(clerk, started["session"]["id"], data, "image/jpeg")
        assert status == 201, body
        assert (body["still"]["width"], body["still"]["height"]) == (4000, 3000)
        assert server.app[EVIDENCE].path(sha(data)).read_bytes() == data
        for channel in channels:
            await channel.close()
    finally:
        for client in clients:
            await client.close()
