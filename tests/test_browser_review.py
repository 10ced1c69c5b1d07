"""A live review session in real headless Chromium against a real ``coreview serve``:
the clerk picks cameras and starts, the approver sees the session arrive in the queue
and accepts, each sees the other's video (checked by its pixels), the document camera
arrives at 1280x720 or more, chat goes both ways, a participant who leaves or reloads
comes back into the call, and the approver's end reaches both.

Chromium's fake capture devices stand in for the cameras and the microphone. With
``device-count=3`` there are three cameras with distinct ids; the second one delivers
Y16 (depth) frames, which a page can show but WebRTC never encodes, so the clerk picks
the third (MJPEG, opened at 1920x1080) as the document camera — as a clerk picks the
高拍仪 among the cameras of a desk. Media go over loopback (the server announces
127.0.0.1)."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import Browser, Page, expect

from signaling.web.middleware import CONTENT_SECURITY_POLICY
from tests.helpers import valid_id
from tests.live import LiveServer, Tab

pytest_plugins = ("tests.live",)
pytestmark = pytest.mark.browser

CLERK, APPROVER = "chuangkou", "shenpi"
DOCUMENT_CAMERA = "fake_device_2"
SESSION_URL = re.compile(r"/sessions/[0-9a-f-]{36}$")

# A 64x36 grey thumbnail of a <video>: a picture (not black, not one flat colour) and,
# given an earlier thumbnail, only once the picture has moved (a few pixels changed by
# far more than coding noise) — so a frozen stream cannot pass. Returns the thumbnail,
# or false to keep waiting.
PICTURE = """([selector, before]) => {
  const video = document.querySelector(selector);
  if (!video || video.readyState < 2 || !video.videoWidth) return false;
  const canvas = document.createElement("canvas");
  canvas.width = 64;
  canvas.height = 36;
  const context = canvas.getContext("2d", { willReadFrequently: true });
  context.drawImage(video, 0, 0, 64, 36);
  const rgba = context.getImageData(0, 0, 64, 36).data;
  const grey = [];
  for (let i = 0; i < rgba.length; i += 4) {
    grey.push((rgba[i] * 299 + rgba[i + 1] * 587 + rgba[i + 2] * 114) / 1000);
  }
  const mean = grey.reduce((a, b) => a + b, 0) / grey.length;
  const spread = Math.sqrt(grey.reduce((a, b) => a + (b - mean) ** 2, 0) / grey.length);
  if (mean < 8 || spread < 6) return false;
  if (!before) return grey;
  const changed = grey.filter((v, i) => Math.abs(v - before[i]) > 24).length;
  return changed >= 4 ? grey : false;
}"""

SIZE = """(selector) => {
  const video = document.querySelector(selector);
  return video && video.videoWidth ? [video.videoWidth, video.videoHeight] : false;
}"""


def feed(participant: str, source: str, place: str = "") -> str:
    """The <video> of a remote feed, optionally only where it is shown (#stage/#tiles)."""
    scope = f"{place} " if place else ""
    return f'{scope}figure.feed[data-participant="{participant}"][data-source="{source}"] video'


HIDDEN_PICTURE_MS = 30_000
"""A hidden auditor's first picture: the recording's next chunk cut (10 s) plus joining."""


async def assert_moving_picture(page: Page, selector: str, within_ms: float | None = None) -> None:
    """The video shows a picture (within ``within_ms``, else the page's default), and
    the picture changes over time."""
    first = await page.wait_for_function(
        PICTURE, arg=[selector, None], polling=100, timeout=within_ms
    )
    await page.wait_for_function(PICTURE, arg=[selector, await first.json_value()], polling=100)


async def video_size(page: Page, selector: str, at_least: tuple[int, int]) -> list[int]:
    """Wait until the video is at least ``at_least`` (width, height); return its size."""
    check = f"""(selector) => {{
      const size = ({SIZE})(selector);
      return size && size[0] >= {at_least[0]} && size[1] >= {at_least[1]} ? size : false;
    }}"""
    handle = await page.wait_for_function(check, arg=selector, polling=100)
    size: list[int] = await handle.json_value()
    return size


async def create_case(clerk: Tab) -> str:
    await clerk.goto("/cases/new")
    await clerk.page.get_by_label("事项").select_option("LZ-SCJG-0101")
    await clerk.page.get_by_label("申请人姓名").fill("周远程")
    await clerk.page.get_by_label("居民身份证号").fill(valid_id("45050219880214321"))
    await clerk.page.get_by_label("联系电话").fill("13907795678")
    await clerk.follow(clerk.page.get_by_role("button", name="受理并创建案件").click)
    return await clerk.page.locator("h1 .mono").inner_text()


async def open_queue(approver: Tab) -> None:
    """The approver opens the queue from the navigation bar; it is empty."""
    link = approver.page.locator("header nav").get_by_role("link", name="审办队列")
    await approver.follow(link.click)
    await expect(approver.page.locator("#queue-status")).to_have_text("已连接，队列实时更新。")
    await expect(approver.page.get_by_text("当前没有等待接入的审办。")).to_be_visible()


def assert_clean(*tabs: Tab) -> None:
    """Every page came with the CSP header and logged no error (CSP violations and
    uncaught exceptions included)."""
    for tab in tabs:
        for shown in tab.shown:
            assert shown.headers.get("content-security-policy") == CONTENT_SECURITY_POLICY
        assert tab.console_errors == []


async def test_clerk_and_approver_review_live_in_chromium(
    live_server: LiveServer, browser: Browser
) -> None:
    """The whole live review as two people do it in two browsers: start with previews,
    queue (live, no reload), accept, video both ways by pixels, the document camera at
    1280x720 or more, chat both ways, mute seen by the other side, document zoom and
    rotation, the clerk leaving (the approver sees the reconnecting banner) and coming
    back, the approver reloading, then the approver ends it and both see it ended. No
    page logs an error and every page carries the CSP header."""
    clerk = await Tab.open(browser, live_server.url)
    approver = await Tab.open(browser, live_server.url)
    tabs = (clerk, approver)
    try:
        await clerk.log_in(CLERK, live_server.password(CLERK))
        await approver.log_in(APPROVER, live_server.password(APPROVER))

        # The approver watches the department's queue; it is empty.
        await open_queue(approver)
        queue_loads = len(approver.shown)

        # The clerk takes a case and opens 发起远程审办 from its page.
        case_no = await create_case(clerk)
        section = clerk.page.locator("#remote-review")
        await clerk.follow(section.get_by_role("link", name="发起远程审办").click)
        page = clerk.page
        await expect(page.get_by_role("heading", name=f"发起远程审办 {case_no}")).to_be_visible()
        for picker in ("人像摄像头", "高拍仪（文档摄像头）"):
            await expect(page.get_by_label(picker).locator("option")).to_have_count(3)
        await expect(page.get_by_label("人像摄像头").locator("option:checked")).to_have_text(
            "fake_device_0"
        )
        await page.get_by_label("高拍仪（文档摄像头）").select_option(label=DOCUMENT_CAMERA)
        await expect(page.locator("#document-info")).to_contain_text("1920×1080")
        await assert_moving_picture(page, "#face-preview")
        await assert_moving_picture(page, "#document-preview")
        start = page.get_by_role("button", name="开始远程审办")
        await expect(start).to_be_disabled()  # not before the applicant's consent
        await expect(page.locator("#consent-text")).to_contain_text("录音录像")
        await page.get_by_label("申请人已知悉并同意录音录像").check()
        await expect(start).to_be_enabled()
        await clerk.screenshot("review-01-clerk-devices")

        # Start: the clerk waits in the queue, seeing the waiting time tick.
        await start.click()
        await page.wait_for_url(SESSION_URL)
        session_path = page.url.removeprefix(live_server.url)
        waiting = page.locator("#waiting")
        await expect(waiting).to_be_visible()
        await expect(waiting.get_by_role("heading")).to_have_text("排队等待中")
        await expect(page.locator("#waited")).not_to_have_text("00:00")
        await clerk.screenshot("review-02-clerk-waiting")

        # The session appears in the approver's queue without a reload, time ticking.
        row = approver.page.locator(f'#queue tr[data-case-no="{case_no}"]')
        await expect(row).to_be_visible()
        await expect(row).to_contain_text("营业执照变更登记")
        await expect(row).to_contain_text("周远程")
        await expect(row.locator("td").first).to_have_text("1")
        waited = await row.locator("td.waited").inner_text()
        await expect(row.locator("td.waited")).not_to_have_text(waited)
        assert len(approver.shown) == queue_loads
        await approver.screenshot("review-03-approver-queue")

        # The approver accepts and lands on the live screen; the clerk is told.
        await row.get_by_role("button", name="接入").click()
        await approver.page.wait_for_url(f"{live_server.url}{session_path}")
        await expect(page.locator("#state-name")).to_have_text("审办进行中")
        await expect(waiting).to_be_hidden()
        await expect(approver.page.locator("#state-name")).to_have_text("审办进行中")

        # Video both ways, by pixels; the document large for the approver, >= 720p.
        document = feed(CLERK, "document", "#stage")
        await assert_moving_picture(approver.page, document)
        await assert_moving_picture(approver.page, feed(CLERK, "face", "#tiles"))
        await assert_moving_picture(page, feed(APPROVER, "face", "#stage"))
        width, height = await video_size(approver.page, document, (1280, 720))
        assert (width, height) >= (1280, 720)
        # the face camera is opened at 640x480: each stream is in its own element
        face_width, _ = await video_size(approver.page, feed(CLERK, "face", "#tiles"), (1, 1))
        assert face_width <= 640
        quality = approver.page.locator('#stage figure[data-source="document"] .quality')
        await expect(quality).to_contain_text(
            re.compile(r"\d+×\d+ · \d+ 帧/秒 · [\d.]+ [Mk]bps · 丢包 \d+\.\d%")
        )
        await expect(approver.page.locator(f'audio[data-participant="{CLERK}"]')).to_have_count(1)
        await expect(page.locator(f'audio[data-participant="{APPROVER}"]')).to_have_count(1)

        # Chat both ways.
        await page.get_by_label("消息").fill("请看营业执照副本第二页")
        await page.get_by_role("button", name="发送").click()
        log = approver.page.locator("#chat-log")
        await expect(log.locator(f'li[data-sender="{CLERK}"]')).to_contain_text(
            "请看营业执照副本第二页"
        )
        await approver.page.get_by_label("消息").fill("好的，材料清晰")
        await approver.page.get_by_label("消息").press("Enter")
        await expect(page.locator(f'#chat-log li[data-sender="{APPROVER}"]')).to_contain_text(
            "好的，材料清晰"
        )

        # The clerk mutes; the approver sees it in the participant list.
        await page.get_by_role("button", name="静音").click()
        person = approver.page.locator(f'#people li[data-participant="{CLERK}"]')
        await expect(person).to_contain_text("已静音")
        await page.get_by_role("button", name="取消静音").click()
        await expect(person).not_to_contain_text("已静音")

        # The approver zooms and rotates the document.
        video = approver.page.locator(document)
        await approver.page.get_by_role("button", name="放大").click()
        await expect(video).to_have_attribute("data-zoom", "1.25")
        await approver.page.get_by_role("button", name="右转").click()
        await expect(video).to_have_attribute("data-angle", "90")
        await approver.screenshot("review-04-approver-live")
        await clerk.screenshot("review-05-clerk-live")
        await approver.page.get_by_role("button", name="复位").click()
        await expect(video).to_have_attribute("data-angle", "0")

        # The clerk's page goes away: the approver is told the other side reconnects.
        await clerk.goto("/")
        banner = approver.page.locator("#peer-banner")
        await expect(banner).to_be_visible()
        await expect(banner).to_have_text("对方网络中断，正在重连…")
        await approver.screenshot("review-06-approver-peer-reconnecting")
        # The clerk comes back to the session: fresh token, fresh peer connection.
        await clerk.goto(session_path)
        await expect(banner).to_be_hidden()
        await assert_moving_picture(approver.page, document)
        await assert_moving_picture(page, feed(APPROVER, "face", "#stage"))

        # The approver reloads; the call resumes for both.
        await approver.page.reload()
        await assert_moving_picture(approver.page, document)
        await video_size(approver.page, document, (1280, 720))
        await assert_moving_picture(page, feed(APPROVER, "face", "#stage"))

        # The approver ends the session; both see it ended.
        await approver.page.get_by_role("button", name="结束审办").click()
        await approver.page.get_by_role("button", name="确认结束").click()
        for tab in tabs:
            ended = tab.page.locator("#ended")
            await expect(ended).to_be_visible()
            await expect(ended.get_by_role("heading")).to_have_text("审办会话已结束")
            await expect(tab.page.locator("#state-name")).to_have_text("已结束")
        await clerk.screenshot("review-07-clerk-ended")

        assert_clean(*tabs)
    finally:
        for tab in tabs:
            await tab.close()


async def start_from_case_page(clerk: Tab, case_no: str) -> str:
    """The clerk opens 发起远程审办 on the case page and starts with the remembered
    cameras; returns the path of the live screen, where the clerk now waits."""
    await clerk.goto(f"/cases/{case_no}")
    section = clerk.page.locator("#remote-review")
    await clerk.follow(section.get_by_role("link", name="发起远程审办").click)
    start = clerk.page.get_by_role("button", name="开始远程审办")
    await clerk.page.get_by_label("申请人已知悉并同意录音录像").check()
    await expect(start).to_be_enabled()
    await start.click()
    await clerk.page.wait_for_url(SESSION_URL)
    await expect(clerk.page.locator("#waiting")).to_be_visible()
    return clerk.page.url.removeprefix(clerk.base_url)


async def test_cancel_auditor_and_hang_up_in_chromium(
    live_server: LiveServer, browser: Browser
) -> None:
    """The clerk cancels while waiting: the clerk sees it cancelled and the session
    leaves the approver's queue at once. Started again (the document camera remembered
    from the first time), accepted, an auditor watches silently: the auditor sees the
    document camera, the others do not see the auditor. The clerk hangs up (and may
    rejoin), the approver sees the clerk gone; the approver hangs up too, so the
    session ends, which the auditor is told and the case page shows."""
    clerk = await Tab.open(browser, live_server.url)
    approver = await Tab.open(browser, live_server.url)
    auditor = await Tab.open(browser, live_server.url)
    tabs = (clerk, approver, auditor)
    try:
        await clerk.log_in(CLERK, live_server.password(CLERK))
        await approver.log_in(APPROVER, live_server.password(APPROVER))
        await auditor.log_in("jiancha", live_server.password("jiancha"))
        await open_queue(approver)
        case_no = await create_case(clerk)

        # First start: choose the document camera, start, then cancel while waiting.
        await clerk.goto(f"/cases/{case_no}/review")
        await clerk.page.get_by_label("高拍仪（文档摄像头）").select_option(label=DOCUMENT_CAMERA)
        await expect(clerk.page.locator("#document-info")).to_contain_text("1920×1080")
        await clerk.page.get_by_label("申请人已知悉并同意录音录像").check()
        await clerk.page.get_by_role("button", name="开始远程审办").click()
        await clerk.page.wait_for_url(SESSION_URL)
        row = approver.page.locator(f'#queue tr[data-case-no="{case_no}"]')
        await expect(row).to_be_visible()
        await clerk.page.locator("#waiting").get_by_role("button", name="取消").click()
        ended = clerk.page.locator("#ended")
        await expect(ended.get_by_role("heading")).to_have_text("会话已取消")
        await expect(ended).to_contain_text("窗口人员已取消本次审办。")
        await expect(row).to_have_count(0)
        await expect(approver.page.get_by_text("当前没有等待接入的审办。")).to_be_visible()

        # Second start: the document camera is remembered; the approver accepts.
        await clerk.goto(f"/cases/{case_no}")
        await expect(clerk.page.locator("#remote-review")).to_contain_text("已取消")
        session_path = await start_from_case_page(clerk, case_no)
        await clerk.goto(f"/cases/{case_no}/review")  # the open session is offered instead
        await expect(
            clerk.page.get_by_text("该案件已有审办会话排队等待中，请直接进入。")
        ).to_be_visible()
        await clerk.follow(clerk.page.get_by_role("link", name="进入会话").click)
        assert clerk.page.url.endswith(session_path)
        await row.get_by_role("button", name="接入").click()
        await approver.page.wait_for_url(f"{live_server.url}{session_path}")
        document = feed(CLERK, "document", "#stage")
        await assert_moving_picture(approver.page, document)
        await video_size(approver.page, document, (1280, 720))

        # The auditor watches: sees the document camera, is seen by nobody.
        await auditor.goto(session_path)
        # hidden: its picture starts on the recording's next cut (≤ chunk_seconds), not
        # on a keyframe it asks for
        await assert_moving_picture(auditor.page, document, HIDDEN_PICTURE_MS)
        await expect(auditor.page.locator("#people li")).to_have_count(3)
        await expect(auditor.page.locator("#chat-form")).to_have_count(0)
        for tab in (clerk, approver):
            await expect(tab.page.locator("#people li")).to_have_count(2)
            await expect(tab.page.locator('#people li[data-participant="jiancha"]')).to_have_count(
                0
            )
        await auditor.screenshot("review-08-auditor-live")

        # The clerk hangs up; the approver sees the clerk gone.
        await clerk.page.get_by_role("button", name="挂断").click()
        await expect(clerk.page.locator("#ended").get_by_role("heading")).to_have_text("您已挂断")
        await expect(clerk.page.get_by_role("link", name="重新加入")).to_be_visible()
        await expect(
            approver.page.locator(f'#people li[data-participant="{CLERK}"]')
        ).to_have_count(0)
        await expect(approver.page.locator("#stage-empty")).to_be_visible()
        await expect(approver.page.locator(document)).to_have_count(0)

        # The approver hangs up too: nobody is left, the session ends.
        await approver.page.get_by_role("button", name="挂断").click()
        await expect(approver.page.locator("#ended").get_by_role("heading")).to_have_text(
            "您已挂断"
        )
        watched = auditor.page.locator("#ended")
        await expect(watched.get_by_role("heading")).to_have_text("审办会话已结束")
        await expect(watched).to_contain_text("参会人员均已离开，审办会话已结束。")
        await clerk.goto(f"/cases/{case_no}")
        listed = clerk.page.locator("#remote-review tbody tr")
        await expect(listed).to_have_count(2)
        await expect(listed.first).to_contain_text("已结束")
        await expect(clerk.page.get_by_role("link", name="发起远程审办")).to_be_visible()
        assert_clean(*tabs)
    finally:
        for tab in tabs:
            await tab.close()
