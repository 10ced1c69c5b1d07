"""The approver closes the tab in real headless Chromium (1366×768, a common hall
screen): after the grace period the clerk's page says so in its header and a banner
with 重新排队; the clerk puts the session back in the queue, an approver accepts it
from the queue page and sees the clerk's document again; then the clerk hangs up and
the approver's page says so. Banners are checked in screenshots, by their pixels."""

from __future__ import annotations

import io

import pytest
from PIL import Image
from playwright.async_api import Browser, Locator, expect

from tests.live import LOOPBACK_MEDIA, LiveServer, Tab
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

HALL_SCREEN = {"width": 1366, "height": 768}


@pytest.fixture
def live_server_env() -> dict[str, str]:
    return {**LOOPBACK_MEDIA, "COREVIEW_RECONNECT_GRACE_SECONDS": "3"}


async def hall_tab(browser: Browser, url: str) -> Tab:
    tab = await Tab.open(browser, url)
    await tab.page.set_viewport_size(HALL_SCREEN)
    return tab


async def assert_banner_shown(banner: Locator) -> None:
    """The banner is inside the first screen (no scrolling) and its pixels show text on
    the warning colour: not blank, several colours, mostly not white."""
    box = await banner.bounding_box()
    assert box is not None and box["y"] >= 0
    assert box["y"] + box["height"] <= HALL_SCREEN["height"], box
    picture = Image.open(io.BytesIO(await banner.screenshot())).convert("RGB")
    colours = picture.getcolors(maxcolors=1 << 16) or []
    assert len(colours) > 8, "a flat box, no text"
    white = sum(n for n, rgb in colours if min(rgb) > 245)
    assert white < picture.width * picture.height / 2, "the banner has no background"


async def test_clerk_requeues_after_the_approver_closed_the_tab(
    live_server: LiveServer, browser: Browser
) -> None:
    """Approver's tab closed → the clerk's header says the approver is reconnecting,
    then gone, with a 重新排队 banner; requeue → waiting room; an approver accepts from
    the queue and sees the document; the clerk hangs up → the approver is told."""
    clerk = await hall_tab(browser, live_server.url)
    approver = await hall_tab(browser, live_server.url)
    tabs = [clerk, approver]
    try:
        await clerk.log_in(CLERK, live_server.password(CLERK))
        await approver.log_in(APPROVER, live_server.password(APPROVER))
        await open_queue(approver)
        case_no = await create_case(clerk)
        await clerk.goto(f"/cases/{case_no}/review")
        await clerk.page.get_by_label("高拍仪（文档摄像头）").select_option(label=DOCUMENT_CAMERA)
        await clerk.page.get_by_label("申请人已知悉并同意录音录像").check()
        await clerk.page.get_by_role("button", name="开始远程审办").click()
        await clerk.page.wait_for_url(SESSION_URL)
        session_path = clerk.page.url.removeprefix(live_server.url)
        row = approver.page.locator(f'#queue tr[data-case-no="{case_no}"]')
        await row.get_by_role("button", name="接入").click()
        await approver.page.wait_for_url(f"{live_server.url}{session_path}")
        document = feed(CLERK, "document", "#stage")
        await assert_moving_picture(approver.page, document)
        header = clerk.page.locator("#state-message")
        await expect(header).to_have_text("审批人员已接入，审办进行中。")

        await approver.close()  # the approver closes the tab
        tabs.remove(approver)
        await expect(header).to_have_text("审批人员网络中断，正在重连…")
        banner = clerk.page.locator("#presence-banner")
        await expect(banner).to_be_visible(timeout=20_000)
        await expect(banner).to_contain_text("审批人员已离开本次审办")
        await expect(header).to_have_text("审批人员已离开本次审办。")
        await assert_banner_shown(banner)
        await clerk.screenshot("requeue-01-approver-gone")

        await banner.get_by_role("button", name="重新排队").click()
        await expect(clerk.page.locator("#waiting")).to_be_visible()
        await expect(clerk.page.locator("#state-name")).to_have_text("排队等待中")
        await expect(banner).to_be_hidden()

        again = await hall_tab(browser, live_server.url)
        tabs.append(again)
        await again.log_in(APPROVER, live_server.password(APPROVER))
        await open_queue_with(again, case_no)
        await again.page.wait_for_url(f"{live_server.url}{session_path}")
        await assert_moving_picture(again.page, document)
        await expect(header).to_have_text("审批人员已接入，审办进行中。")
        await expect(clerk.page.locator("#waiting")).to_be_hidden()

        await clerk.page.get_by_role("button", name="挂断").click()
        told = again.page.locator("#presence-banner")
        await expect(told).to_contain_text("窗口人员已离开本次审办（已挂断）。")
        await expect(again.page.locator("#state-message")).to_have_text("窗口人员已离开本次审办。")
        await assert_banner_shown(told)
        await again.screenshot("requeue-02-clerk-hung-up")
        assert_clean(*tabs)
    finally:
        for tab in tabs:
            await tab.close()


async def open_queue_with(approver: Tab, case_no: str) -> None:
    """The approver opens the queue, finds the requeued case and accepts it."""
    link = approver.page.locator("header nav").get_by_role("link", name="审办队列")
    await approver.follow(link.click)
    row = approver.page.locator(f'#queue tr[data-case-no="{case_no}"]')
    await row.get_by_role("button", name="接入").click()
