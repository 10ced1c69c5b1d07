"""The auditor's custody card on the case page, in a real headless Chromium at 1366×768
against a real ``coreview serve``: the integrity check of a simulated case paints
所有证据完整, and a legal hold placed with a reason shows as 保全中 with its history."""

from __future__ import annotations

from playwright.async_api import Browser, expect

from tests.custody import evidence, record_cases
from tests.live import LiveServer, Tab
from tests.pixels import assert_painted, viewport

pytest_plugins = ("tests.live",)

OK_GREEN = (15, 123, 63)  # --ok, .integrity-verdict.ok
HOLD_BG = (255, 250, 235)  # .hold-on


async def test_auditor_checks_integrity_and_places_a_hold(
    live_server: LiveServer, browser: Browser
) -> None:
    """The auditor opens a recorded case, presses 完整性校验 and sees 所有证据完整 painted in
    green on screen; places a legal hold with a reason in the dialog; the page then
    shows 保全中, the reason in the hold history and the button to lift it."""
    [case_no] = record_cases(live_server)
    await evidence(live_server, case_no)
    tab = await Tab.open(browser, live_server.url, size=(1366, 768))
    try:
        await tab.log_in("jiancha", live_server.password("jiancha"))
        shown = await tab.goto(f"/cases/{case_no}")
        assert shown.status == 200
        page = tab.page
        await page.get_by_role("button", name="完整性校验").click()
        verdict = page.locator(".integrity-verdict")
        await expect(verdict).to_have_text("所有证据完整", timeout=30_000)
        await expect(page.locator("#integrity-result .hint")).to_contain_text("已校验")
        await verdict.scroll_into_view_if_needed()
        await assert_painted(page, verdict, await viewport(page, "custody-integrity"), OK_GREEN)

        await page.get_by_role("button", name="设置法律保全").click()
        await page.get_by_label("理由").fill("信访调查期间保全")
        async with page.expect_navigation():
            await page.get_by_role("button", name="确定").click()
        badge = page.locator("#hold-state .hold-on")
        await expect(badge).to_have_text("保全中")
        await expect(page.locator("#hold-history tbody tr")).to_contain_text("信访调查期间保全")
        await expect(page.get_by_role("button", name="解除法律保全")).to_be_visible()
        await badge.scroll_into_view_if_needed()
        await assert_painted(page, badge, await viewport(page, "custody-hold"), HOLD_BG, 0.3)
        assert tab.console_errors == []
    finally:
        await tab.context.close()
