"""A bad rating's follow-up on the case page, in a real headless Chromium at 1366×768
against a real ``coreview serve``: the auditor records 回访核实 (the complaint holds) and
then 整改, and the page says where it stands after each step."""

from __future__ import annotations

from playwright.async_api import Browser, expect

from coreview.simulate import ApiClient
from tests.live import LiveServer, Tab
from tests.pixels import ACCENT, assert_painted, viewport
from tests.test_review_actions import bad_rating

pytest_plugins = ("tests.live",)


async def rated_badly(server: LiveServer) -> str:
    """A case whose ended session the clerk rated 非常不满意: its number."""
    clerk, approver = ApiClient(server.url), ApiClient(server.url)
    try:
        await clerk.login("chuangkou", server.password("chuangkou"))
        await approver.login("shenpi", server.password("shenpi"))
        return str((await bad_rating(clerk, approver))["session"]["case_no"])
    finally:
        await clerk.close()
        await approver.close()


async def test_auditor_records_the_call_back_and_the_rectification(
    live_server: LiveServer, browser: Browser
) -> None:
    """The form shows on screen for the auditor; a call back that finds the complaint
    true turns the follow-up into 整改 (待办); recording 整改 closes it (已办结), and both
    steps are in the case's event list in words."""
    case_no = await rated_badly(live_server)
    tab = await Tab.open(browser, live_server.url, size=(1366, 768))
    try:
        await tab.log_in("jiancha", live_server.password("jiancha"))
        await tab.goto(f"/cases/{case_no}")
        page = tab.page
        followup = page.locator("#followup")
        await expect(followup).to_contain_text("回访核实（待办")
        submit = page.get_by_role("button", name="记录回访结果")
        await submit.scroll_into_view_if_needed()
        await assert_painted(page, submit, await viewport(page, "followup-verify"), ACCENT, 0.3)
        await page.get_by_label("回访记录").fill("电话回访，申请人反映属实")
        await page.get_by_label("反映属实").check()
        async with page.expect_navigation():
            await submit.click()
        await expect(followup).to_contain_text("整改（待办")

        await page.get_by_label("整改情况").fill("已对窗口人员批评教育")
        async with page.expect_navigation():
            await page.get_by_role("button", name="记录整改完成").click()
        await expect(followup).to_contain_text("已办结")
        await expect(page.get_by_role("button", name="记录整改完成")).to_have_count(0)
        events = page.locator('tr[data-kind^="followup_"]')
        await expect(events).to_have_count(3)
        await expect(events.nth(1)).to_contain_text("反映属实，转入整改")
        await expect(events.nth(2)).to_contain_text("整改完成，办结：已对窗口人员批评教育")
        assert tab.console_errors == []
    finally:
        await tab.context.close()
