"""What a newcomer hit on a hall PC, in real headless Chromium against a real
``coreview serve``, checked on the screen's pixels at 1366×768 (a common hall screen):
the call's 挂断 / 结束审办 in view, 联审 from a button, a way back (返回审办) into a live
session, device problems told and kept, and tables that do not wrap case numbers or
state pills at 1600 px.

The clerk's document camera in the device test is a canvas camera added by an init
script (listed after Chromium's fake camera, so it is picked as the 高拍仪), which the
test can freeze: it then sends no frames, as a hung USB camera does."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import Browser, Locator, Page, expect

from tests.live import LiveServer, Tab, launch_chromium
from tests.pixels import (
    ACCENT,
    DANGER,
    ERROR_BG,
    WARN_BG,
    assert_painted,
    ink_height,
    painted_box,
    viewport,
)
from tests.test_browser_review import (
    APPROVER,
    CLERK,
    DOCUMENT_CAMERA,
    SESSION_URL,
    assert_clean,
    assert_moving_picture,
    create_case,
    feed,
    open_queue,
)

pytest_plugins = ("tests.live",)
pytestmark = pytest.mark.browser

HALL_SCREEN = (1366, 768)
WIDE_SCREEN = (1600, 900)
CO_APPROVER = "shenpi_rs"
CO_DEPARTMENT = "柳州市人力资源和社会保障局"
ONE_LINE_PX = 28  # ink of one line of 15 px text (or a 12 px pill) is ~16-22 px high

# A document camera the test can freeze: a 1280x720 canvas with a moving bar, listed
# after Chromium's fake camera. window.freezeDocumentCamera(true) stops its frames.
FREEZABLE_DOCUMENT_CAMERA = """(() => {
  const devices = navigator.mediaDevices;
  if (!devices) return;
  const listDevices = devices.enumerateDevices.bind(devices);
  const open = devices.getUserMedia.bind(devices);
  const paper = { deviceId: "canvas-document", groupId: "canvas", kind: "videoinput",
                  label: "canvas document camera", toJSON() { return this; } };
  let frozen = false;
  window.freezeDocumentCamera = (value) => { frozen = value; };
  devices.enumerateDevices = async () => [...(await listDevices()), paper];
  devices.getUserMedia = async (constraints) => {
    if (constraints?.video?.deviceId?.exact !== "canvas-document") return open(constraints);
    const canvas = document.createElement("canvas");
    canvas.width = 1280;
    canvas.height = 720;
    const context = canvas.getContext("2d");
    let tick = 0;
    setInterval(() => {
      if (frozen) return;
      tick += 1;
      context.fillStyle = "#f4f1e8";
      context.fillRect(0, 0, 1280, 720);
      context.fillStyle = "#203040";
      context.fillRect((tick * 16) % 1200, 100, 80, 520);
    }, 66);
    return canvas.captureStream(15);
  };
})();"""


async def start_and_accept(clerk: Tab, approver: Tab, camera: str | None) -> tuple[str, str]:
    """The clerk starts a review of a new case (``camera`` as the 高拍仪, else the
    remembered one), the approver accepts it; returns (case number, session path)."""
    await open_queue(approver)
    case_no = await create_case(clerk)
    await clerk.goto(f"/cases/{case_no}/review")
    if camera:
        await clerk.page.get_by_label("高拍仪（文档摄像头）").select_option(label=camera)
    await expect(clerk.page.locator("#document-info")).to_contain_text("×")
    await clerk.page.get_by_label("申请人已知悉并同意录音录像").check()
    await clerk.page.get_by_role("button", name="开始远程审办").click()
    await clerk.page.wait_for_url(SESSION_URL)
    session_path = clerk.page.url.removeprefix(clerk.base_url)
    row = approver.page.locator(f'#queue tr[data-case-no="{case_no}"]')
    await row.get_by_role("button", name="接入").click()
    await approver.page.wait_for_url(f"{approver.base_url}{session_path}")
    await assert_moving_picture(approver.page, feed(CLERK, "document", "#stage"))
    return case_no, session_path


def button(page: Page, name: str) -> Locator:
    return page.locator(".controls").get_by_role("button", name=name, exact=True)


async def test_call_controls_co_review_and_way_back_at_1366x768(
    live_server: LiveServer, browser: Browser
) -> None:
    """At 1366×768 the live screen shows 挂断 (and, to the approver, 结束审办 and 联审)
    on screen, red where red; 联审 invites another department from a dialog (an unknown
    approver name is refused in Chinese), whose approver joins from the queue; the
    approver who left finds 返回审办 on the dashboard and the queue and is back in the
    live call."""
    clerk = await Tab.open(browser, live_server.url, size=HALL_SCREEN)
    approver = await Tab.open(browser, live_server.url, size=HALL_SCREEN)
    co_approver = await Tab.open(browser, live_server.url, size=HALL_SCREEN)
    tabs = (clerk, approver, co_approver)
    try:
        for tab, name in ((clerk, CLERK), (approver, APPROVER), (co_approver, CO_APPROVER)):
            await tab.log_in(name, live_server.password(name))
        case_no, session_path = await start_and_accept(clerk, approver, DOCUMENT_CAMERA)
        await assert_moving_picture(clerk.page, feed(APPROVER, "face", "#stage"))

        # The call's controls are on screen for both, without scrolling.
        shot = await viewport(approver.page, "field-01-approver-live-1366x768")
        await assert_painted(approver.page, button(approver.page, "挂断"), shot, DANGER)
        await assert_painted(approver.page, button(approver.page, "结束审办"), shot, DANGER)
        await painted_box(approver.page, button(approver.page, "联审"), shot)
        await painted_box(approver.page, approver.page.locator("#stage"), shot)
        shot = await viewport(clerk.page, "field-02-clerk-live-1366x768")
        await assert_painted(clerk.page, button(clerk.page, "挂断"), shot, DANGER)
        await painted_box(clerk.page, button(clerk.page, "暂停高拍仪"), shot)
        await expect(button(clerk.page, "联审")).to_have_count(0)

        # 联审: an unknown approver is refused; then the department is invited.
        await button(approver.page, "联审").click()
        dialog = approver.page.locator("#invite-dialog")
        await expect(dialog).to_be_visible()
        await dialog.get_by_label("联审部门").select_option(label=CO_DEPARTMENT)
        await dialog.get_by_label(re.compile("指定审批人员")).fill("nobody")
        await dialog.get_by_role("button", name="发出邀请").click()
        await expect(dialog.locator("#invite-alert")).to_have_text(
            "被邀请的审批人员不存在或不属于该部门。"
        )
        refused = [e for e in approver.console_errors if "/invite: " in e and "(Bad Request)" in e]
        assert len(refused) == 1  # the browser logs the expected 400; nothing else
        approver.console_errors.remove(refused[0])
        await dialog.get_by_label(re.compile("指定审批人员")).fill("")
        await dialog.get_by_role("button", name="发出邀请").click()
        await expect(dialog).to_be_hidden()
        await expect(approver.page.locator("#notice")).to_contain_text(f"已邀请{CO_DEPARTMENT}联审")

        # The invited department's approver joins from the queue.
        await open_queue_with_invitation(co_approver, case_no)
        await co_approver.page.wait_for_url(f"{live_server.url}{session_path}")
        await assert_moving_picture(co_approver.page, feed(CLERK, "document", "#stage"))
        await expect(clerk.page.locator("#people li")).to_have_count(3)
        shot = await viewport(co_approver.page, "field-03-co-approver-live-1366x768")
        await assert_painted(co_approver.page, button(co_approver.page, "挂断"), shot, DANGER)
        await co_approver.goto("/")  # a co-reviewer is offered the way back too
        await expect(co_approver.page.locator("#open-sessions tr[data-session-id]")).to_have_count(
            1
        )

        # The approver leaves for the dashboard: 返回审办 leads back into the call.
        await approver.goto("/")
        back = approver.page.locator("#open-sessions").get_by_role("link", name="返回审办")
        await expect(back).to_have_count(1)
        shot = await viewport(approver.page, "field-04-approver-dashboard-1366x768")
        await assert_painted(approver.page, back, shot, ACCENT)
        await approver.goto("/queue")
        back = approver.page.locator("#open-sessions").get_by_role("link", name="返回审办")
        shot = await viewport(approver.page, "field-05-approver-queue-1366x768")
        await assert_painted(approver.page, back, shot, ACCENT)
        await approver.follow(back.click)
        assert approver.page.url.endswith(session_path)
        await expect(approver.page.locator("#state-name")).to_have_text("审办进行中")
        await assert_moving_picture(approver.page, feed(CLERK, "document", "#stage"))
        # the clerk's dashboard offers the way back too; an ended session is not offered
        await clerk.goto("/")
        await expect(clerk.page.locator("#open-sessions tr[data-session-id]")).to_have_count(1)
        await approver.page.locator(".controls").get_by_role("button", name="结束审办").click()
        await approver.page.get_by_role("button", name="确认结束").click()
        await expect(approver.page.locator("#ended")).to_be_visible()
        await approver.goto("/")
        await expect(approver.page.locator("#open-sessions")).to_have_count(0)
        assert_clean(*tabs)
    finally:
        for tab in tabs:
            await tab.close()


async def open_queue_with_invitation(tab: Tab, case_no: str) -> None:
    link = tab.page.locator("header nav").get_by_role("link", name="审办队列")
    await tab.follow(link.click)
    row = tab.page.locator(f'#queue tr[data-case-no="{case_no}"]')
    await expect(row).to_contain_text("联审邀请")
    await row.get_by_role("button", name="加入联审").click()


async def test_device_problems_are_told_and_kept_at_1366x768(live_server: LiveServer) -> None:
    """An approver whose browser refuses camera and microphone is told so, and the
    notice stays after joining (the clerk sees the camera off); a document camera that
    stops sending frames warns the clerk (on the start page and in the call) and shows
    the approver a frozen-picture notice, both gone once frames come again."""
    args = ("--use-fake-device-for-media-stream", "--allow-loopback-in-peer-connection")
    async with launch_chromium(args) as browser:
        clerk = await Tab.open(
            browser, live_server.url, size=HALL_SCREEN, permissions=["camera", "microphone"]
        )
        approver = await Tab.open(browser, live_server.url, size=HALL_SCREEN, permissions=[])
        tabs = (clerk, approver)
        await clerk.context.add_init_script(FREEZABLE_DOCUMENT_CAMERA)
        try:
            await clerk.log_in(CLERK, live_server.password(CLERK))
            await approver.log_in(APPROVER, live_server.password(APPROVER))
            await open_queue(approver)
            case_no = await create_case(clerk)

            # The start page: the canvas is the 高拍仪; frozen, the preview says so.
            await clerk.goto(f"/cases/{case_no}/review")
            await expect(clerk.page.get_by_label("高拍仪（文档摄像头）")).to_have_value(
                "canvas-document"
            )
            info = clerk.page.locator("#document-info")
            await expect(info).to_contain_text("1280×720")
            await clerk.page.evaluate("window.freezeDocumentCamera(true)")
            await expect(info).to_contain_text(re.compile(r"高拍仪已 \d+ 秒没有画面"))
            await clerk.page.evaluate("window.freezeDocumentCamera(false)")
            await expect(info).to_contain_text("1280×720")
            await clerk.page.get_by_label("申请人已知悉并同意录音录像").check()
            await clerk.page.get_by_role("button", name="开始远程审办").click()
            await clerk.page.wait_for_url(SESSION_URL)
            row = approver.page.locator(f'#queue tr[data-case-no="{case_no}"]')
            await row.get_by_role("button", name="接入").click()
            await approver.page.wait_for_url(SESSION_URL)

            # The approver without camera and microphone is told, also once in the call.
            document = feed(CLERK, "document", "#stage")
            await assert_moving_picture(approver.page, document)
            status = approver.page.locator("#device-status")
            await expect(status.locator("li")).to_have_count(2)
            face = status.locator('li[data-key="face"]')
            audio = status.locator('li[data-key="audio"]')
            await expect(face).to_contain_text("摄像头未能打开：浏览器未获准使用摄像头或麦克风")
            await expect(face).to_contain_text("对方看不到您的画面")
            await expect(audio).to_contain_text("对方听不到您的声音")
            shot = await viewport(approver.page, "field-06-approver-no-devices-1366x768")
            await assert_painted(approver.page, status, shot, WARN_BG)
            await assert_painted(approver.page, button(approver.page, "挂断"), shot, DANGER)
            await expect(
                clerk.page.locator(f'#people li[data-participant="{APPROVER}"]')
            ).to_contain_text("摄像头关闭")

            # The document camera stops: the clerk is warned, the approver sees it frozen.
            await clerk.page.evaluate("window.freezeDocumentCamera(true)")
            warning = clerk.page.locator('#device-status li[data-key="document-stalled"]')
            await expect(warning).to_contain_text(re.compile(r"高拍仪已 \d+ 秒没有画面"))
            frozen = approver.page.locator('#stage figure[data-source="document"] .frozen')
            await expect(frozen).to_contain_text(re.compile(r"高拍仪画面已 \d+ 秒没有更新"))
            shot = await viewport(clerk.page, "field-07-clerk-document-frozen-1366x768")
            await assert_painted(clerk.page, clerk.page.locator("#device-status"), shot, WARN_BG)
            await assert_painted(clerk.page, button(clerk.page, "挂断"), shot, DANGER)
            shot = await viewport(approver.page, "field-08-approver-document-frozen-1366x768")
            await assert_painted(approver.page, frozen, shot, (163, 64, 8), at_least=0.3)

            # Frames again: both notices go; the approver's own stays.
            await clerk.page.evaluate("window.freezeDocumentCamera(false)")
            await expect(warning).to_have_count(0)
            await expect(frozen).to_be_hidden()
            await assert_moving_picture(approver.page, document)
            await expect(status.locator("li")).to_have_count(2)
            assert_clean(*tabs)
        finally:
            for tab in tabs:
                await tab.close()


async def test_tables_keep_case_numbers_and_pills_on_one_line_at_1600(
    live_server: LiveServer, browser: Browser
) -> None:
    """At 1600 px each row of the case list, case number and state pill included, is
    painted one line high; so is each row of the approver's dashboard."""
    clerk = await Tab.open(browser, live_server.url, size=WIDE_SCREEN)
    approver = await Tab.open(browser, live_server.url, size=WIDE_SCREEN)
    try:
        await clerk.log_in(CLERK, live_server.password(CLERK))
        await approver.log_in(APPROVER, live_server.password(APPROVER))
        await create_case(clerk)
        for tab, path, name in ((clerk, "/cases", "clerk-cases"), (approver, "/", "approver-home")):
            await tab.goto(path)
            rows = tab.page.locator("table.cases tbody tr")
            await expect(rows.first).to_be_visible()
            await viewport(tab.page, f"field-09-{name}-1600")
            for index in range(await rows.count()):
                row = rows.nth(index)
                height = ink_height(await row.screenshot())
                text = await row.inner_text()
                assert 0 < height <= ONE_LINE_PX, f"{path}: {text!r} is {height} px high"
        assert_clean(clerk, approver)
    finally:
        await clerk.close()
        await approver.close()


async def test_insecure_page_explains_in_chinese(live_server: LiveServer, browser: Browser) -> None:
    """Where the browser offers no cameras (navigator.mediaDevices missing, as on plain
    http:// at a LAN address), the start page says in Chinese what to do instead of a
    JavaScript error, in view and in the error colour."""
    clerk = await Tab.open(browser, live_server.url, size=HALL_SCREEN)
    await clerk.context.add_init_script("delete Navigator.prototype.mediaDevices;")
    try:
        await clerk.log_in(CLERK, live_server.password(CLERK))
        case_no = await create_case(clerk)
        await clerk.goto(f"/cases/{case_no}/review")
        status = clerk.page.locator("#device-status")
        await expect(status).to_contain_text("此浏览器不支持网页使用摄像头和麦克风")
        await expect(clerk.page.get_by_role("button", name="开始远程审办")).to_be_disabled()
        shot = await viewport(clerk.page, "field-10-clerk-no-media-devices-1366x768")
        await assert_painted(clerk.page, status, shot, ERROR_BG)
        assert_clean(clerk)
    finally:
        await clerk.close()
