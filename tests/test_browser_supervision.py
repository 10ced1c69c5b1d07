"""The supervision dashboard in real headless Chromium at 1366×768 (a hall screen),
against a real ``coreview serve``: the red and yellow time-limit cards show in their
colours, the charts are drawn (bars and lines on screen, checked by pixels), and
choosing another grouping redraws them and moves the CSV link."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser, expect
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from signaling.china_time import CHINA_TIME
from signaling.storage.tables import cases
from tests.live import LiveServer, Tab
from tests.pixels import ACCENT, assert_painted, painted_box, share, viewport
from tests.supervision_data import add_case, add_session, close_demo_cases

pytest_plugins = ("tests.live",)
pytestmark = pytest.mark.browser

HALL_SCREEN = (1366, 768)
RED = (217, 45, 32)  # .limit-tile.red, .limit-card.red
YELLOW = (253, 176, 34)  # .limit-tile.yellow, .limit-card.yellow
GREEN = (15, 123, 63)  # satisfaction bars (--ok)
ORANGE = (181, 71, 8)  # the wait chart's P90 line


@pytest.fixture
async def engine(live_server: LiveServer) -> AsyncIterator[AsyncEngine]:
    """The running server's database, to add known rows beside it (SQLite WAL)."""
    found = create_async_engine(f"sqlite+aiosqlite:///{live_server.data_dir / 'coreview.sqlite3'}")
    yield found
    await found.dispose()


async def seed_recent(engine: AsyncEngine) -> None:
    """One case past its time limit (red), one due on the next working day (yellow), and
    sessions over the last three days with waits, decisions and ratings."""
    now = dt.datetime.now(dt.UTC)
    await close_demo_cases(engine)
    async with engine.begin() as conn:
        await add_case(
            conn, "GX-2026-800001", "BH-HC-01", "BH-SCJG-0101", now - dt.timedelta(days=14)
        )
        await add_case(conn, "GX-2026-800002", "BH-HC-01", "BH-SCJG-0101", now)
        for day in range(3):
            at = now - dt.timedelta(days=day, minutes=30)
            for n, (outlet, score) in enumerate(
                (
                    ("BH-HC-01", "very_satisfied"),
                    ("LZ-CZ-01", "dissatisfied"),
                    ("BH-HC-01", "satisfied"),
                )
            ):
                case_id = await add_case(conn, f"GX-2026-7{day}{n:04d}", outlet, "LZ-SCJG-0101", at)
                accepted = at + dt.timedelta(minutes=2 + 3 * n + day)
                await add_session(
                    conn, case_id, at, "ended", accepted, accepted + dt.timedelta(minutes=12),
                    outcome="approve", score=score,
                )  # fmt: skip
            timed_out = await add_case(conn, f"GX-2026-79{day:04d}", "LZ-CZ-01", "LZ-SCJG-0101", at)
            await add_session(conn, timed_out, at, "timed_out", ended=at + dt.timedelta(minutes=10))
        decided = update(cases).where(cases.c.case_no.like("GX-2026-7%"))
        await conn.execute(decided.values(status="approved"))  # no cards but the two above


async def test_dashboard_draws_cards_and_charts(
    browser: Browser, live_server: LiveServer, engine: AsyncEngine
):
    """An auditor opens 监察统计 from the header: the red and yellow tiles and cards
    show in their colours, the session bars, wait lines and satisfaction bars are
    painted, and grouping by matter redraws the chart and the CSV link."""
    await seed_recent(engine)
    tab = await Tab.open(browser, live_server.url, size=HALL_SCREEN)
    page = tab.page
    try:
        await tab.log_in("jiancha", live_server.password("jiancha"))
        await tab.follow(page.get_by_role("link", name="监察统计").click)
        today = dt.datetime.now(CHINA_TIME).date()
        since = today - dt.timedelta(days=29)
        await expect(page.locator("#stats-form")).to_have_attribute(
            "data-loaded", f"day/outlet/{since}/{today}"
        )
        await expect(page.locator(".limit-tile.red .count")).to_have_text("1")
        await expect(page.locator(".limit-tile.yellow .count")).to_have_text("1")
        top = await viewport(page, "supervision-cards")
        await assert_painted(page, page.locator(".limit-tile.red"), top, RED, at_least=0.5)
        await assert_painted(page, page.locator(".limit-tile.yellow"), top, YELLOW, at_least=0.5)
        red_row = page.locator("tr.card-red", has_text="GX-2026-800001")
        await assert_painted(page, red_row.locator(".limit-card"), top, RED, at_least=0.4)
        yellow_row = page.locator("tr.card-yellow", has_text="GX-2026-800002")
        await assert_painted(page, yellow_row.locator(".limit-card"), top, YELLOW, at_least=0.4)

        charts = page.locator(".charts")
        await charts.scroll_into_view_if_needed()
        await expect(page.locator("#chart-sessions rect[data-series='会话数']")).to_have_count(3)
        shot = await viewport(page, "supervision-charts")
        sessions_box = await painted_box(page, page.locator("#chart-sessions"), shot)
        assert share(shot, sessions_box, ACCENT, tol=20) > 0.01, "no session bars painted"
        assert share(shot, sessions_box, (180, 35, 24), tol=20) > 0.002, "no timeout bars"
        wait_box = await painted_box(page, page.locator("#chart-wait"), shot)
        assert share(shot, wait_box, ORANGE, tol=30) > 0.002, "no P90 line painted"
        rate_box = await painted_box(page, page.locator("#chart-satisfaction"), shot)
        assert share(shot, rate_box, GREEN, tol=25) > 0.02, "no satisfaction bars painted"
        rates = page.locator("#chart-satisfaction text")
        await expect(rates.filter(has_text=re.compile(r"^100\.0%$"))).to_have_count(1)  # BH-HC
        await expect(rates.filter(has_text=re.compile(r"^0\.0%$"))).to_have_count(1)  # LZ-CZ

        await page.locator("select[name=group]").select_option("matter")
        await expect(page.locator("#chart-groups-title")).to_have_text("满意率（按事项）")
        csv_link = f"/api/v1/supervision/stats.csv?period=day&group=matter&from={since}&to={today}"
        await expect(page.locator("#stats-csv")).to_have_attribute("href", csv_link)
        await expect(rates.filter(has_text="66.7%")).to_have_count(1)
        total = page.locator("#stats-table tr.total")
        await expect(total.locator("td").nth(2)).to_have_text("12")
        assert tab.console_errors == []
    finally:
        await tab.close()
