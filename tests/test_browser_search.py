"""The auditor's case search and live supervision in real headless Chromium at 1366×768
against a real ``coreview serve``: a case made by ``coreview simulate`` is found with
filters, the results are paged, the case opens; the supervision page lists a live
session (real aiortc peers on loopback) and opens it hidden, showing its video. Pages
are checked by their pixels, not only by the DOM."""

from __future__ import annotations

import asyncio

import pytest
from playwright.async_api import Browser, expect

from coreview.simulate import ApiClient, SignalChannel, connect_media
from tests.helpers import valid_id
from tests.live import LiveServer, Tab
from tests.pixels import ACCENT, assert_painted, painted_box, share, viewport
from tests.test_browser_review import PICTURE, assert_clean, feed
from tests.test_simulate import simulated

pytest_plugins = ("tests.live",)
pytestmark = pytest.mark.browser

SIZE = (1366, 768)
SIMULATE_SECONDS = 90.0
TODAY_ONWARDS = "2000-01-01"


def simulated_case(server: LiveServer) -> str:
    """One reviewed session by ``coreview simulate``: its case number."""
    return str(simulated(server, 2)["cases"][0])


async def test_auditor_finds_pages_and_opens_a_simulated_case(
    live_server: LiveServer, browser: Browser
) -> None:
    """The auditor filters by matter and decision (通过) and finds exactly the simulated
    case, with its approver and rating; the filters stay in the URL; results page by
    one (下一页 leads to page 2 of 3); the case opens from its row. No page logs an
    error."""
    case_no = await asyncio.to_thread(simulated_case, live_server)
    auditor = await Tab.open(browser, live_server.url, size=SIZE)
    try:
        await auditor.log_in("jiancha", live_server.password("jiancha"))
        nav = auditor.page.locator("header nav")
        await auditor.follow(nav.get_by_role("link", name="案件").click)
        page = auditor.page
        await expect(page.get_by_role("heading", name="案件查询")).to_be_visible()
        await page.get_by_label("事项").select_option("LZ-SCJG-0101")
        await page.get_by_label("审批结果").select_option("approve")
        await auditor.follow(page.get_by_role("button", name="查询").click)
        assert "matter=LZ-SCJG-0101" in page.url and "decision=approve" in page.url
        await expect(page.locator(".result-count")).to_have_text("共 1 件")
        row = page.locator("table.results tbody tr")
        await expect(row).to_have_count(1)
        await expect(row).to_contain_text(case_no)
        await expect(row).to_contain_text("市场监管审批员")
        await expect(row).to_contain_text("满意")
        shot = await viewport(page, "search-01-filtered")
        await assert_painted(page, page.get_by_role("button", name="查询"), shot, ACCENT)
        link_box = await painted_box(page, row.get_by_role("link", name=case_no), shot)
        assert share(shot, link_box, ACCENT, tol=60) > 0.05, "the case link is not painted"

        # three cases in all (two of the demo data): one per page, by case number
        await auditor.goto(f"/cases?from={TODAY_ONWARDS}&sort=case_no&order=asc&per_page=1")
        await expect(page.locator(".result-count")).to_have_text("共 3 件，第 1 / 3 页")
        await auditor.follow(page.get_by_role("link", name="下一页").click)
        assert "page=2" in page.url and "per_page=1" in page.url
        await expect(page.locator(".result-count")).to_have_text("共 3 件，第 2 / 3 页")
        current = page.locator(".pager .current")
        await expect(current).to_have_text("2")
        shot = await viewport(page, "search-02-page-2")
        await assert_painted(page, current, shot, ACCENT)

        await auditor.goto(f"/cases?q={case_no}")
        await auditor.follow(page.get_by_role("link", name=case_no).click)
        assert page.url.endswith(f"/cases/{case_no}")
        await expect(page.locator("h1")).to_contain_text(case_no)
        assert_clean(auditor)
    finally:
        await auditor.context.close()


async def test_live_supervision_lists_a_live_session_and_opens_it_hidden(
    live_server: LiveServer, browser: Browser
) -> None:
    """With a live session (real aiortc peers), the auditor's 实时监察 page lists it
    with its participants and recording; 隐藏旁听 opens the session, whose document video
    shows a moving picture (the auditor's hidden side: no chat)."""
    clerk, approver = ApiClient(live_server.url), ApiClient(live_server.url)
    channels: list[SignalChannel] = []
    peers = []
    auditor = await Tab.open(browser, live_server.url, size=SIZE)
    try:
        await clerk.login("chuangkou", live_server.password("chuangkou"))
        await approver.login("shenpi", live_server.password("shenpi"))
        body = {
            "matter": "LZ-SCJG-0101",
            "applicant_name": "孙监察",
            "id_number": valid_id(),
            "phone": "13800000000",
        }
        case_no = (await clerk.post("/api/v1/cases", body))["case"]["case_no"]
        started = await clerk.post(f"/api/v1/cases/{case_no}/sessions", {"consent": True})
        session_id = started["session"]["id"]
        channels.append(await SignalChannel.open(clerk, session_id, started["token"]))
        accepted = await approver.post(f"/api/v1/sessions/{session_id}/accept")
        channels.append(await SignalChannel.open(approver, session_id, accepted["token"]))
        peers.append(await connect_media(channels[0], ("face", "document", "audio")))
        peers.append(await connect_media(channels[1], ("face", "audio")))

        await auditor.log_in("jiancha", live_server.password("jiancha"))
        nav = auditor.page.locator("header nav")
        await auditor.follow(nav.get_by_role("link", name="实时监察").click)
        page = auditor.page
        row = page.locator(f'#live-sessions tr[data-case-no="{case_no}"]')
        await expect(row).to_be_visible()
        await expect(row).to_contain_text("审办进行中")
        await expect(row).to_contain_text("海城区窗口人员")
        await expect(row).to_contain_text("市场监管审批员")
        # the page refreshes itself until the tracks are being recorded
        await expect(row).to_contain_text("录制中", timeout=20_000)
        watch = row.get_by_role("link", name="隐藏旁听")
        shot = await viewport(page, "supervision-01-live")
        await assert_painted(page, watch, shot, ACCENT)

        await auditor.follow(watch.click)
        assert page.url.endswith(f"/sessions/{session_id}")
        document = feed("chuangkou", "document")
        first = await page.wait_for_function(PICTURE, arg=[document, None], polling=100)
        await page.wait_for_function(PICTURE, arg=[document, await first.json_value()], polling=100)
        shot = await viewport(page, "supervision-02-hidden")
        box = await painted_box(page, page.locator(document), shot)
        region = shot[box[1] : box[1] + box[3], box[0] : box[0] + box[2]]
        assert float(region.std()) > 8, "the hidden view's document video shows no picture"
        await expect(page.locator("#chat-form")).to_have_count(0)  # hidden: no chat
        assert_clean(auditor)
    finally:
        await auditor.context.close()
        for peer in peers:
            await peer.close()
        for channel in channels:
            await channel.close()
        await clerk.close()
        await approver.close()
