"""Playback (回放) in a real headless Chromium at 1366×768: an auditor replays a session
made by ``coreview simulate`` against a running ``coreview serve``; every track plays on
one clock, the picture is painted, the timeline seeks, a still opens full size, the
views are logged; an auditor of another jurisdiction is refused."""

from __future__ import annotations

import asyncio
import subprocess
import time
from typing import Any

import numpy as np
import pytest
from playwright.async_api import Browser

from coreview.simulate import CHAT_TEXT, ApiClient, ApiError
from tests.live import LOOPBACK_MEDIA, LiveServer, Tab, coreview_command, server_env
from tests.pixels import painted_box, viewport
from tests.test_simulate import complete_evidence, simulated

pytest_plugins = ("tests.live",)

SIZE = (1366, 768)
TOGETHER = 0.35
"""Seconds the tracks' positions may differ while playing (the page corrects > 0.25)."""
OUTSIDER = ("shen_yh", "yinhai-audit-pw1")
"""An auditor of 北海市银海区: neither the case's outlet nor its department is there."""


@pytest.fixture
def live_server_env() -> dict[str, str]:
    """Media on loopback, and 2-second chunks so that each track is several chunks."""
    return {**LOOPBACK_MEDIA, "COREVIEW_CHUNK_SECONDS": "2"}


def simulated_case(server: LiveServer) -> tuple[str, str, str]:
    """One simulated session of 6 s: its case number, session id and still."""
    [report] = simulated(server, 6)["reports"]
    return report["case_no"], report["session_id"], report["stills"][0]


def add_outsider(server: LiveServer) -> None:
    subprocess.run(
        [
            *coreview_command(),
            "user",
            "add",
            OUTSIDER[0],
            "--role",
            "auditor",
            "--jurisdiction",
            "450503",
            "--password-stdin",
            "--data-dir",
            str(server.data_dir),
        ],
        input=OUTSIDER[1].encode(),
        env=server_env(),
        check=True,
        capture_output=True,
        timeout=60,
    )


POSITIONS = """() => [...document.querySelectorAll('#playback video, #playback audio')]
  .map((el) => ({lane: el.dataset.lane, t: el.currentTime, paused: el.paused,
                 ready: el.readyState}))"""


async def positions(tab: Tab) -> tuple[float, list[dict[str, Any]]]:
    clock = float(await tab.page.get_attribute("#pb-bar", "data-t") or "nan")
    return clock, await tab.page.evaluate(POSITIONS)


async def wait_positions(tab: Tab, accept: Any, what: str, limit: float = 30.0) -> None:
    """Poll the page's clock and elements until ``accept(clock, elements)`` holds."""
    deadline = time.monotonic() + limit
    while True:  # deadline-bound poll of the page
        clock, elements = await positions(tab)
        if accept(clock, elements):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: clock {clock}, elements {elements}")
        await tab.page.wait_for_timeout(100)


def share_near(region: np.ndarray, rgb: tuple[int, int, int], tol: int = 30) -> float:
    near = np.all(np.abs(region - np.array(rgb, dtype=np.int16)) <= tol, axis=2)
    return float(near.mean())


async def test_an_auditor_replays_a_simulated_session(
    live_server: LiveServer, browser: Browser
) -> None:
    """The auditor opens 回放 from the case page; face, document and both voices play
    together (each element within 0.35 s of the page clock), the document and the face
    are painted, clicking the chat event seeks every track to it, the still opens at
    4000×3000, and the chain holds one ``recording_viewed`` for the open and an
    ``evidence_viewed`` for the still but none for the chunks the player read."""
    case_no, session_id, still = simulated_case(live_server)
    await complete_evidence(live_server, case_no)
    tab = await Tab.open(browser, live_server.url, size=SIZE)
    try:
        await tab.log_in("jiancha", live_server.password("jiancha"))
        await tab.goto(f"/cases/{case_no}")
        shown = await tab.follow(tab.page.locator(".playback-link").first.click)
        assert shown.status == 200 and shown.url.endswith(f"/sessions/{session_id}/playback")
        lanes = await tab.page.locator("#playback [data-lane]").count()
        assert lanes == 5  # two faces, the document, two voices
        await wait_positions(
            tab, lambda _c, els: all(e["ready"] >= 2 for e in els), "every lane loaded"
        )
        await tab.page.click("#pb-play")
        samples = 0

        def together(clock: float, elements: list[dict[str, Any]]) -> bool:
            nonlocal samples
            if all(not e["paused"] for e in elements):
                spread = [abs(e["t"] - clock) for e in elements]
                assert max(spread) <= TOGETHER, (clock, elements)
                samples += 1
            return clock >= 3.5 and samples >= 5

        await wait_positions(tab, together, "playing together")

        shot = await viewport(tab.page, "playback-playing")
        document = tab.page.locator('video[data-lane="chuangkou/document"]')
        x, y, w, h = await painted_box(tab.page, document, shot)
        region = shot[y : y + h, x : x + w]
        assert share_near(region, (235, 235, 235)) > 0.3  # the page
        assert share_near(region, (40, 40, 40)) > 0.03  # its lines of text
        face = tab.page.locator('video[data-lane="shenpi/face"]')
        x, y, w, h = await painted_box(tab.page, face, shot)
        region = shot[y : y + h, x : x + w]
        assert share_near(region, (170, 170, 170)) > 0.15  # the face ellipse
        assert share_near(region, (60, 60, 60)) > 0.15  # around it

        await tab.page.click("#pb-play")  # pause
        chat = tab.page.locator('#pb-events li[data-kind="chat"]')
        assert CHAT_TEXT in await chat.inner_text()
        # an event may come just before the first recorded media (the origin): the
        # player seeks to the origin then
        target = max(0.0, float(await chat.get_attribute("data-t") or "nan"))
        assert target < 3
        await chat.locator(".pb-seek").click()
        await wait_positions(
            tab,
            lambda c, els: (
                abs(c - target) < 0.01 and all(abs(e["t"] - target) <= TOGETHER for e in els)
            ),
            "every track at the chat event",
        )

        await tab.page.locator(f'.pb-still[data-sha256="{still}"]').click()
        image = tab.page.locator("#pb-still-img")
        await tab.page.wait_for_function(
            "() => document.getElementById('pb-still-img').naturalWidth > 0"
        )
        size = await image.evaluate("(img) => [img.naturalWidth, img.naturalHeight, img.width]")
        assert size == [4000, 3000, 4000]  # shown at full size, scrollable
        assert tab.console_errors == []
    finally:
        await tab.close()

    events = await chain(live_server, case_no)
    await assert_ranges(live_server, case_no, session_id)
    viewed = [e for e in events if e["kind"] == "recording_viewed"]
    assert [(e["actor"], e["detail"]) for e in viewed] == [("jiancha", {"session": session_id})]
    files = [e["detail"]["sha256"] for e in events if e["kind"] == "evidence_viewed"]
    assert files == [still]


async def assert_ranges(server: LiveServer, case_no: str, session_id: str) -> None:
    """Playable files answer Range requests (206, the part asked for) with their media
    type, so a player can seek in them."""
    auditor = ApiClient(server.url)
    try:
        await auditor.login("jiancha", server.password("jiancha"))
        data = await auditor.get(f"/api/v1/cases/{case_no}/sessions/{session_id}/playback")
        for track in data["tracks"]:
            chunk = track["chunks"][0]
            assert chunk["status"] == "ok"
            url = f"{server.url}/api/v1/evidence/{chunk['sha256']}?view={data['view']}"
            async with auditor.http.get(url, headers={"Range": "bytes=4-99"}) as part:
                assert part.status == 206
                assert part.headers["Content-Range"] == f"bytes 4-99/{chunk['bytes']}"
                assert part.content_type == f"{track['kind']}/webm"
                assert len(await part.read()) == 96
    finally:
        await auditor.close()


async def chain(server: LiveServer, case_no: str) -> list[dict[str, Any]]:
    admin = ApiClient(server.url)
    try:
        await admin.login("jiancha", server.password("jiancha"))
        evidence = await admin.get(f"/api/v1/cases/{case_no}/evidence")
        return list(evidence["log"]["events"])
    finally:
        await admin.close()


async def test_playback_is_refused_out_of_scope_and_to_other_roles(
    live_server: LiveServer, browser: Browser
) -> None:
    """An auditor of another jurisdiction gets 403 out_of_scope on the playback API and
    page (and nothing is logged as viewed); clerks and approvers get 403 wrong_role; an
    unknown session is 404; an admin may replay (and the view is logged)."""
    case_no, session_id, _still = simulated_case(live_server)
    await asyncio.to_thread(add_outsider, live_server)
    path = f"/cases/{case_no}/sessions/{session_id}/playback"
    for username, password, code in [
        (*OUTSIDER, "out_of_scope"),
        ("chuangkou", live_server.password("chuangkou"), "wrong_role"),
        ("shenpi", live_server.password("shenpi"), "wrong_role"),
    ]:
        client = ApiClient(live_server.url)
        try:
            await client.login(username, password)
            with pytest.raises(ApiError) as refused:
                await client.get(f"/api/v1{path}")
            assert (refused.value.status, refused.value.code) == (403, code)
        finally:
            await client.close()
    auditor = ApiClient(live_server.url)
    try:
        await auditor.login("jiancha", live_server.password("jiancha"))
        with pytest.raises(ApiError) as missing:
            await auditor.get(f"/api/v1/cases/{case_no}/sessions/no-such-session/playback")
        assert (missing.value.status, missing.value.code) == (404, "session_not_found")
    finally:
        await auditor.close()
    tab = await Tab.open(browser, live_server.url, size=SIZE)
    try:
        await tab.log_in(*OUTSIDER)
        shown = await tab.goto(path)
        assert shown.status == 403
        assert "该对象不在您的管辖范围内。" in await tab.page.inner_text("main")
        shot = await viewport(tab.page, "playback-refused")
        x, y, w, h = await painted_box(tab.page, tab.page.locator(".error-message"), shot)
        message = shot[y : y + h, x : x + w]
        assert share_near(message, (255, 255, 255), 10) > 0.5  # on the white card
        assert share_near(message, (31, 41, 51), 60) > 0.02  # the text itself is painted
    finally:
        await tab.close()
    admin = ApiClient(live_server.url)
    try:
        await admin.login("admin", live_server.password("admin"))
        seen = await admin.get(f"/api/v1{path}")
        assert {t["participant"] for t in seen["tracks"]} == {"chuangkou", "shenpi"}
    finally:
        await admin.close()
    events = await chain(live_server, case_no)
    viewed = [e["actor"] for e in events if e["kind"] == "recording_viewed"]
    assert viewed == ["admin"]  # the refusals logged no view
