"""Foundation acceptance, in a real headless Chromium against a real ``coreview serve``:
an admin creates a clerk, the clerk sets a password and creates a case, approvers see it
or are refused according to their department."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import Browser, expect

from signaling import id_numbers
from signaling.web.middleware import CONTENT_SECURITY_POLICY
from tests.helpers import valid_id
from tests.live import LiveServer, Shown, Tab

pytest_plugins = ("tests.live",)
pytestmark = pytest.mark.browser

NEW_CLERK = "chuangkou_hc2"
NEW_PASSWORD = "Haicheng2026go"
CASE_NO = re.compile(r"GX-\d{4}-\d{6}")


async def log_in(tab: Tab, username: str, password: str) -> Shown:
    """Fill the login form the way a person does and submit it."""
    await tab.goto("/login")
    await tab.page.get_by_label("用户名").fill(username)
    await tab.page.get_by_label("密码").fill(password)
    return await tab.follow(tab.page.get_by_role("button", name="登录").click)


async def click_nav(tab: Tab, name: str) -> Shown:
    link = tab.page.locator("header nav").get_by_role("link", name=name, exact=True)
    return await tab.follow(link.click)


def assert_clean(*tabs: Tab) -> None:
    """Every page came with the CSP header and logged no error (CSP violations and
    uncaught exceptions included)."""
    for tab in tabs:
        assert tab.shown
        for shown in tab.shown:
            for status, headers in [*shown.redirects, (shown.status, shown.headers)]:
                assert headers.get("content-security-policy") == CONTENT_SECURITY_POLICY, (
                    shown.url,
                    status,
                )
        assert tab.console_errors == []


async def test_admin_creates_clerk_who_creates_case_seen_only_by_its_department(
    live_server: LiveServer, browser: Browser
) -> None:
    """An admin creates a clerk for outlet BH-HC-01 and reads the one-time password; the
    clerk must change it at first login, then creates a case for LZ-SCJG-0101 and finds
    it by case number and by full ID number, which no page ever shows whole; an approver
    of LZ-RSJ is refused the case with a Chinese 403 page, the LZ-SCJG approver sees it.
    Every page carries the CSP header and logs no console error."""
    id_number = valid_id("45020219850612341")
    masked = id_numbers.mask(id_number)
    admin = await Tab.open(browser, live_server.url)
    clerk = await Tab.open(browser, live_server.url)
    outsider = await Tab.open(browser, live_server.url)
    approver = await Tab.open(browser, live_server.url)

    # 1. The admin creates the clerk account and reads its temporary password.
    await admin.goto("/login")
    await expect(admin.page).to_have_title("登录 · 远程审办系统")
    await admin.screenshot("01-login")
    shown = await log_in(admin, "admin", live_server.password("admin"))
    assert shown.url == f"{live_server.url}/"
    await click_nav(admin, "用户管理")
    await expect(admin.page.get_by_role("heading", name="用户管理")).to_be_visible()
    await admin.page.get_by_text("新建账户", exact=True).click()
    form = admin.page.locator("#user-form")
    await form.get_by_label("用户名").fill(NEW_CLERK)
    await form.get_by_label("姓名").fill("海城区窗口人员二")
    role = form.get_by_label("角色")
    await role.select_option(label="审批人员")
    await expect(form.get_by_label("所属部门")).to_be_visible()
    await expect(form.get_by_label("所属网点")).to_be_hidden()
    await role.select_option(label="窗口人员")
    await expect(form.get_by_label("所属网点")).to_be_visible()
    await expect(form.get_by_label("所属部门")).to_be_hidden()
    await form.get_by_label("所属网点").select_option("BH-HC-01")
    shown = await admin.follow(form.get_by_role("button", name="创建账户").click)
    assert shown.status == 200
    notice = admin.page.get_by_role("status")
    await expect(notice).to_contain_text(f"已创建账户 {NEW_CLERK}")
    found = re.search(r"初始密码：([a-z0-9]+)", await notice.inner_text())
    assert found, await notice.inner_text()
    temporary = found.group(1)
    row = admin.page.locator("table.list tbody tr", has_text=NEW_CLERK)
    await expect(row).to_contain_text("窗口人员")
    await expect(row).to_contain_text("待改初始密码")
    await admin.screenshot("02-admin-users-created")

    # 2. The clerk must change the temporary password before anything else.
    shown = await log_in(clerk, NEW_CLERK, temporary)
    assert shown.url == f"{live_server.url}/password"
    await expect(clerk.page.get_by_text("您正在使用临时密码，请先设置新密码。")).to_be_visible()
    shown = await clerk.goto("/cases/new")
    assert shown.url == f"{live_server.url}/password"
    await clerk.page.get_by_label("原密码").fill(temporary)
    await clerk.page.get_by_label("新密码", exact=True).fill(NEW_PASSWORD)
    await clerk.page.get_by_label("确认新密码").fill(NEW_PASSWORD)
    await clerk.follow(clerk.page.get_by_role("button", name="保存").click)
    await expect(clerk.page.get_by_role("status")).to_have_text("密码已修改。")
    await clerk.follow(clerk.page.get_by_role("link", name="进入工作台").click)
    await expect(clerk.page.get_by_role("heading", name="工作台")).to_be_visible()

    # The clerk creates a case and lands on its page.
    await click_nav(clerk, "新建案件")
    matter = clerk.page.get_by_label("事项")
    await matter.select_option("LZ-SCJG-0101")
    await expect(matter.locator("option:checked")).to_contain_text("营业执照变更登记")
    await clerk.page.get_by_label("申请人姓名").fill("王小二")
    await clerk.page.get_by_label("居民身份证号").fill(id_number)
    await clerk.page.get_by_label("联系电话").fill("13907721234")
    await clerk.page.get_by_label("备注").fill("企业名称变更")
    shown = await clerk.follow(clerk.page.get_by_role("button", name="受理并创建案件").click)
    assert [status for status, _ in shown.redirects] == [302]
    assert re.fullmatch(rf"{live_server.url}/cases/{CASE_NO.pattern}", shown.url), shown.url
    case_no = await clerk.page.locator("h1 .mono").inner_text()
    assert CASE_NO.fullmatch(case_no), case_no
    assert shown.url.endswith(f"/cases/{case_no}")
    facts = clerk.page.locator("dl.facts")
    await expect(facts).to_contain_text("营业执照变更登记")
    await expect(facts).to_contain_text("王小二")
    await expect(facts).to_contain_text(masked)
    await expect(clerk.page.locator("h1 .status")).to_have_text("已受理")
    await clerk.screenshot("03-case")

    # The clerk finds the case by its number and by the full ID number.
    for query in (case_no, id_number):
        await click_nav(clerk, "案件")
        await clerk.page.get_by_label("搜索").fill(query)
        await clerk.follow(clerk.page.get_by_role("button", name="搜索").click)
        rows = clerk.page.locator("table.list tbody tr")
        await expect(rows).to_have_count(1)
        await expect(rows.first.get_by_role("link")).to_have_text(case_no)
        await expect(rows.first).to_contain_text(masked)

    # 3. An approver of another department is refused; the case's department sees it.
    await log_in(outsider, "shenpi_rs", live_server.password("shenpi_rs"))
    page_error = outsider.page.expect_console_message(lambda m: m.type == "error")
    async with page_error as refused:
        shown = await outsider.goto(f"/cases/{case_no}")
    assert shown.status == 403
    # Chromium itself notes any document answered with an error status; that note is
    # expected here, and the only one allowed.
    note = (await refused.value).text
    assert note == "Failed to load resource: the server responded with a status of 403 (Forbidden)"
    outsider.console_errors.remove(f"{shown.url}: {note}")
    await expect(outsider.page.get_by_role("heading", name="无权访问")).to_be_visible()
    await expect(outsider.page.get_by_text("该对象不在您的管辖范围内。")).to_be_visible()
    assert case_no not in shown.html
    await outsider.screenshot("04-forbidden")

    await log_in(approver, "shenpi", live_server.password("shenpi"))
    shown = await approver.goto(f"/cases/{case_no}")
    assert shown.status == 200
    await expect(approver.page.locator("h1")).to_contain_text(case_no)
    await expect(approver.page.locator("dl.facts")).to_contain_text(masked)

    tabs = (admin, clerk, outsider, approver)
    for tab in tabs:
        for page in tab.shown:
            assert id_number not in page.html, page.url
        assert id_number not in await tab.page.content()
    assert_clean(*tabs)
    for tab in tabs:
        await tab.close()


async def test_console_watch_reports_a_csp_violation(
    live_server: LiveServer, browser: Browser
) -> None:
    """The console watch the test above relies on does see a CSP violation: an inline
    script added to a page is refused by the policy and reported as a console error."""
    tab = await Tab.open(browser, live_server.url)
    await tab.goto("/login")
    async with tab.page.expect_console_message(lambda m: m.type == "error") as message:
        await tab.page.evaluate(
            """() => {
                const script = document.createElement("script");
                script.textContent = "document.body.dataset.inline = 'ran'";
                document.body.append(script);
            }"""
        )
    assert "Content Security Policy" in (await message.value).text
    assert await tab.page.locator("body").get_attribute("data-inline") is None
    assert any("Content Security Policy" in e for e in tab.console_errors), tab.console_errors
    await tab.close()
