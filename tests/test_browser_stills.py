"""Document stills in real headless Chromium against a real ``coreview serve``: the
approver asks for a still of a material, the clerk's page takes it at the document
camera's native size (a 2592x1944 file camera streamed at 1080p at most), hashes and
uploads it; the stored bytes hash to what the browser computed; the approver's gallery
shows it at once, filed against the material, and opens it to rotate; a reload shows
it again; the approver's server-side snapshot joins the gallery.

The document camera is Chromium's file-backed fake camera (one device); the face camera
is a canvas stream added by an init script, listed first, so the pages pick face =
canvas, document = file (as a clerk picks the 高拍仪 among a desk's cameras)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import pytest
from playwright.async_api import Browser, expect

from bench.still import CANVAS_FACE_CAMERA, make_camera_file
from tests.live import LiveServer, Tab
from tests.test_browser_review import (
    APPROVER,
    CLERK,
    SESSION_URL,
    assert_clean,
    create_case,
    feed,
    open_queue,
    video_size,
)

pytest_plugins = ("tests.live",)
pytestmark = pytest.mark.browser

NATIVE = (2592, 1944)
EPOCH_MS = re.compile(r"^\d{13}$")
MATERIAL = "营业执照正、副本"


@pytest.fixture
def chromium_extra_args(tmp_path_factory: pytest.TempPathFactory) -> Sequence[str]:
    camera = make_camera_file(tmp_path_factory.mktemp("camera") / "document.y4m", NATIVE)
    return (
        "--use-fake-device-for-media-stream",
        "--use-fake-ui-for-media-stream",
        f"--use-file-for-fake-video-capture={camera}",
        "--allow-loopback-in-peer-connection",
    )


async def test_requested_still_reaches_the_gallery_at_native_size(
    live_server: LiveServer, browser: Browser
) -> None:
    """Request → take → upload → gallery, at the camera's native size, hash intact,
    filed against the material on both pages, viewable and kept across a reload."""
    clerk = await Tab.open(browser, live_server.url)
    approver = await Tab.open(browser, live_server.url)
    tabs = (clerk, approver)
    await clerk.context.add_init_script(CANVAS_FACE_CAMERA)
    try:
        await clerk.log_in(CLERK, live_server.password(CLERK))
        await approver.log_in(APPROVER, live_server.password(APPROVER))
        await open_queue(approver)
        case_no = await create_case(clerk)
        await clerk.goto(f"/cases/{case_no}/review")
        await expect(clerk.page.get_by_label("人像摄像头")).to_have_value("canvas-face")
        await expect(clerk.page.locator("#document-info")).to_contain_text("×")
        await clerk.page.get_by_label("申请人已知悉并同意录音录像").check()
        await clerk.page.get_by_role("button", name="开始远程审办").click()
        await clerk.page.wait_for_url(SESSION_URL)
        session_path = clerk.page.url.removeprefix(live_server.url)
        row = approver.page.locator(f'#queue tr[data-case-no="{case_no}"]')
        await row.get_by_role("button", name="接入").click()
        await approver.page.wait_for_url(f"{live_server.url}{session_path}")
        await video_size(approver.page, feed(CLERK, "document", "#stage"), (640, 360))

        # The approver asks for the business licence; the clerk is asked.
        await approver.page.locator("#still-material").select_option(label=MATERIAL)
        await approver.page.get_by_role("button", name="请求拍照").click()
        await expect(approver.page.locator("#still-status")).to_contain_text(MATERIAL)
        asked = clerk.page.locator("#still-requests li")
        await expect(asked).to_contain_text(f"请求拍摄：{MATERIAL}")
        await asked.get_by_role("button", name="拍摄").click()

        # Both galleries show it, at the native size, filed under the material.
        size = f"{NATIVE[0]}×{NATIVE[1]}"
        for tab in tabs:
            item = tab.page.locator("#gallery li.still")
            await expect(item).to_have_count(1)
            await expect(item).to_contain_text(f"{MATERIAL} · {size}")
            await expect(item).to_have_attribute("data-loaded-at", EPOCH_MS)
            filed = tab.page.locator(".materials li", has_text=MATERIAL).locator(".filed button")
            await expect(filed).to_have_count(1)
        shown = approver.page.locator("#gallery li.still img")
        natural = await shown.evaluate("(img) => [img.naturalWidth, img.naturalHeight]")
        assert tuple(natural) == NATIVE

        # The bytes stored are those the clerk's browser hashed.
        digest = await approver.page.locator("#gallery li.still").get_attribute("data-sha256")
        assert digest is not None
        taken = clerk.page.locator(f'#gallery li[data-sha256="{digest}"]')
        await expect(taken).to_have_attribute("data-photo-taken", EPOCH_MS)
        stored = live_server.data_dir / "evidence" / "sha256" / digest[:2] / digest
        assert hashlib.sha256(stored.read_bytes()).hexdigest() == digest
        await expect(asked).to_have_count(0)  # the request is answered

        # The approver opens it: rotate, full size.
        await approver.page.locator("#gallery li.still button.thumb").click()
        dialog = approver.page.locator("#still-dialog")
        await expect(dialog).to_be_visible()
        await dialog.get_by_role("button", name="右转").click()
        await expect(dialog.locator("#still-image")).to_have_attribute("data-angle", "90")
        full = await dialog.get_by_role("link", name="原图").get_attribute("href")
        assert full == f"/api/v1/sessions/{session_path.rsplit('/', 1)[1]}/stills/{digest}"
        await approver.screenshot("stills-01-approver-viewer")
        await dialog.get_by_role("button", name="关闭").click()

        # A server-side snapshot of the document camera joins the approver's gallery.
        await approver.page.get_by_role("button", name="截图存证").click()
        await expect(approver.page.locator("#gallery li.snapshot")).to_have_count(1)

        # After a reload the gallery is there again.
        await approver.page.reload()
        await expect(approver.page.locator("#gallery li.still")).to_have_count(1)
        await expect(approver.page.locator("#gallery li.snapshot")).to_have_count(1)
        await clerk.screenshot("stills-02-clerk")
        assert_clean(*tabs)
    finally:
        for tab in tabs:
            await tab.close()
