"""The supervision dashboard (监察统计): figures on known sessions, time-limit cards under
a clock the test moves, the CSV download, bad input, and who may see what."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import update

from coreview.app import create_app
from recorder.auditlog import SYSTEM_CHAIN
from signaling.settings import Settings
from signaling.storage.tables import cases
from signaling.supervision.stats import nearest_rank
from signaling.supervision.time_limits import deadline
from signaling.web.appkeys import ACCOUNTS, AUDIT, ENGINE
from signaling.workdays import add_working_days
from tests.helpers import ManualClock, Session, login, stored_rows, valid_id
from tests.supervision_data import (
    NOW,
    add_case,
    add_session,
    close_demo_cases,
    cst,
    day,
    seed_known_sessions,
)

STATS = "/api/v1/supervision/stats"
LIMITS = "/api/v1/supervision/time-limits"
MONDAY = f"?from={day(9)}&to={day(11)}"
BH_OUTLET = "北海市海城区政务服务中心跨域通办窗口"
LZ_OUTLET = "柳州市城中区政务服务中心跨域通办窗口"


@pytest.fixture
def clock() -> ManualClock:
    clock = ManualClock()
    clock.at = NOW
    return clock


@pytest.fixture
def settings(data_dir: Any) -> Settings:
    return Settings(data_dir=data_dir, session_hours=24 * 60)  # logins outlive the clock's moves


@pytest.fixture
async def client(
    aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]],
    settings: Settings,
    clock: ManualClock,
) -> TestClient[Any, Any]:
    return await aiohttp_client(create_app(settings, clock))


async def auditor_of(
    client: TestClient[Any, Any], aiohttp_client: Any, name: str, jurisdiction: str
) -> Session:
    """A new auditor whose scope is the given jurisdiction (and those below it)."""
    password = "Jiancha-2026-pass"
    await client.app[ACCOUNTS].create_user(
        {
            "username": name,
            "display_name": name,
            "role": "auditor",
            "jurisdiction": jurisdiction,
            "password": password,
            "temporary": False,
        },
        actor="test",
    )
    return await login(await aiohttp_client(client.server), name, password)


async def body(session: Session, path: str) -> dict[str, Any]:
    response = await session.get(path)
    found: dict[str, Any] = await response.json()
    assert response.status == 200, found
    return found


def test_nearest_rank_percentiles():
    """p50 and p90 are observed values: the smallest with that share at or below it."""
    assert nearest_rank([], 0.5) is None
    assert nearest_rank([600, 120], 0.5) == 120 and nearest_rank([600, 120], 0.9) == 600
    assert nearest_rank([60, 300, 120, 600], 0.5) == 120
    assert nearest_rank(list(range(1, 11)), 0.9) == 9
    assert nearest_rank([7], 0.9) == 7


async def test_figures_per_day_and_outlet_on_known_sessions(client, as_user):
    """Counts, waits, durations, decisions, satisfaction and open follow-ups per day and
    outlet match the sessions worked out by hand; a session at 00:30 China time falls on
    its China day; days without sessions are there with zeros."""
    await seed_known_sessions(client.app[ENGINE])
    found = await body(await as_user("jiancha"), STATS + MONDAY + "&period=day&group=outlet")
    assert [b["bucket"] for b in found["by_bucket"]] == [
        day(9).isoformat(),
        day(10).isoformat(),
        day(11).isoformat(),
    ]
    rows = {(r["bucket"], r["group_name"]): r for r in found["rows"]}
    assert set(rows) == {(day(9).isoformat(), BH_OUTLET), (day(10).isoformat(), LZ_OUTLET)}
    monday = rows[day(9).isoformat(), BH_OUTLET]
    assert {k: monday[k] for k in ("sessions", "accepted", "timed_out", "cancelled")} == {
        "sessions": 3,
        "accepted": 2,
        "timed_out": 1,
        "cancelled": 0,
    }
    assert (monday["wait_p50"], monday["wait_p90"]) == (120, 600)
    assert (monday["duration_p50"], monday["duration_p90"]) == (600, 1800)
    assert (monday["approved"], monday["rejected"], monday["supplement"]) == (1, 1, 0)
    assert (monday["ratings"], monday["satisfied"], monday["satisfaction_rate"]) == (2, 1, 0.5)
    assert (monday["awaiting_verify"], monday["awaiting_rectify"]) == (1, 0)
    assert monday["followups_overdue"] == 0
    tuesday = rows[day(10).isoformat(), LZ_OUTLET]
    assert (tuesday["sessions"], tuesday["accepted"], tuesday["supplement"]) == (2, 2, 1)
    assert (tuesday["wait_p50"], tuesday["wait_p90"]) == (60, 300)  # C1 from its requeue
    assert (tuesday["duration_p50"], tuesday["duration_p90"]) == (1200, 1200)  # C2 is live
    assert (tuesday["ratings"], tuesday["satisfied"]) == (2, 1)  # 基本满意 is not satisfied
    total = found["total"]
    assert (total["sessions"], total["wait_p50"], total["wait_p90"]) == (5, 120, 600)
    assert (total["ratings"], total["satisfaction_rate"]) == (4, 0.5)
    empty = found["by_bucket"][2]
    assert empty["sessions"] == 0 and empty["wait_p50"] is None
    assert empty["satisfaction_rate"] is None


async def test_weeks_and_groupings_and_an_overdue_followup(client, as_user, clock):
    """By week all five sessions are in the week of Monday 9 March; by matter and by
    department they split as their cases do; once the follow-up's due day has passed
    it counts as overdue."""
    await seed_known_sessions(client.app[ENGINE])
    auditor = await as_user("jiancha")
    week = await body(auditor, STATS + MONDAY + "&period=week&group=matter")
    assert [b["bucket"] for b in week["by_bucket"]] == [day(9).isoformat()]
    by_matter = {g["group_name"]: g for g in week["by_group"]}
    assert {name: g["sessions"] for name, g in by_matter.items()} == {
        "营业执照变更登记": 3,
        "社会保障卡补办": 2,
    }
    assert by_matter["社会保障卡补办"]["timed_out"] == 1
    by_department = await body(auditor, STATS + MONDAY + "&period=week&group=department")
    assert {g["group_name"]: g["sessions"] for g in by_department["by_group"]} == {
        "柳州市市场监督管理局": 3,
        "柳州市人力资源和社会保障局": 2,
    }
    clock.advance(days=2)  # Friday: the follow-up was due on Thursday
    later = await body(auditor, STATS + MONDAY + "&period=day&group=outlet")
    assert later["total"]["followups_overdue"] == 1
    async with client.app[ENGINE].begin() as conn:  # Sunday 23:00 and Monday 00:30
        for at in (cst(15, 23), cst(16, 0, 30)):  # China time; both Sunday in UTC
            case_id = await add_case(conn, f"GX-2026-9100{at.hour}", "LZ-CZ-01", "LZ-SCJG-0101", at)
            await add_session(conn, case_id, at, "waiting")
    weeks = await body(auditor, STATS + f"?from={day(9)}&to={day(16)}&period=week")
    assert [(b["bucket"], b["sessions"]) for b in weeks["by_bucket"]] == [
        (day(9).isoformat(), 6),
        (day(16).isoformat(), 1),
    ]


async def test_csv_has_the_same_figures_for_excel(client, as_user):
    """The CSV starts with a BOM, has a Chinese header, one line per day and outlet,
    each outlet's total and the grand total, with the JSON's figures; the download is
    logged."""
    await seed_known_sessions(client.app[ENGINE])
    auditor = await as_user("jiancha")
    query = STATS + ".csv" + MONDAY + "&period=day&group=outlet"
    response = await auditor.get(query)
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/csv")
    assert "attachment" in response.headers["Content-Disposition"]
    raw = await response.read()
    assert raw.startswith(b"\xef\xbb\xbf")
    lines = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    header = lines[0]
    assert header[:4] == ["日期", "网点", "会话数", "已接入"]
    assert "满意率(%)" in header and "待回访核实" in header
    rows = {(line[0], line[1]): dict(zip(header, line, strict=True)) for line in lines[1:]}
    assert len(lines) == 1 + 2 + 2 + 1
    monday = rows[day(9).isoformat(), BH_OUTLET]
    assert monday["会话数"] == "3" and monday["等待超时"] == "1"
    assert monday["等待时长P90(秒)"] == "600.0" and monday["满意率(%)"] == "50.0"
    assert rows["合计", LZ_OUTLET]["会话数"] == "2"
    assert rows["合计", "合计"]["会话数"] == "5"
    assert rows["合计", "合计"]["审办时长P50(秒)"] == "1200.0"
    events = await client.app[AUDIT].events(SYSTEM_CHAIN, kind="supervision_exported")
    assert [(e.actor, e.detail["period"], e.detail["from"]) for e in events] == [
        ("jiancha", "day", day(9).isoformat())
    ]


async def test_bad_choices_are_refused_with_a_clear_error(client, as_user):
    """An unknown period or grouping, a malformed date, a reversed or overlong range
    answer 400 with a stable code and Chinese text; nothing is stored."""
    auditor = await as_user("jiancha")
    before = await stored_rows(client.app)
    for query, code in (
        ("?period=month", "field_invalid"),
        ("?group=approver", "field_invalid"),
        ("?from=2026-02-30", "field_invalid"),
        ("?from=2026-03-11&to=2026-03-01", "date_range_reversed"),
        ("?from=2020-01-01&to=2026-03-11", "date_range_too_long"),
    ):
        for path in (STATS, STATS + ".csv"):
            response = await auditor.get(path + query)
            error = (await response.json())["error"]
            assert (response.status, error["code"]) == (400, code), query
            assert error["message"] and error["message"].isascii() is False
    assert await stored_rows(client.app) == before


async def test_each_auditor_sees_only_the_figures_of_its_jurisdiction(
    client, as_user, aiohttp_client
):
    """An auditor of 柳州 sees the sessions of 柳州's outlets and departments; an auditor
    of 北海市银海区 sees none of them (no rows, zero totals, an empty CSV, no cards);
    an admin sees everything; clerks and approvers are refused (403, logged)."""
    await seed_known_sessions(client.app[ENGINE])
    liuzhou = await auditor_of(client, aiohttp_client, "jc_liuzhou", "450200")
    yinhai = await auditor_of(client, aiohttp_client, "jc_yinhai", "450503")
    assert (await body(liuzhou, STATS + MONDAY))["total"]["sessions"] == 5
    assert (await body(await as_user("admin"), STATS + MONDAY))["total"]["sessions"] == 5
    none = await body(yinhai, STATS + MONDAY)
    assert none["rows"] == [] and none["by_group"] == [] and none["total"]["sessions"] == 0
    assert all(b["sessions"] == 0 for b in none["by_bucket"])
    lines = (await (await yinhai.get(STATS + ".csv" + MONDAY)).read()).decode("utf-8-sig")
    assert len(lines.strip().splitlines()) == 2  # header and a zero total
    assert BH_OUTLET not in lines and LZ_OUTLET not in lines
    assert (await body(liuzhou, LIMITS))["open_cases"] >= 4
    assert (await body(yinhai, LIMITS)) | {"today": ""} == {
        "today": "",
        "warn_days": 1,
        "open_cases": 0,
        "red": 0,
        "yellow": 0,
        "cards": [],
    }
    for name in ("chuangkou", "shenpi"):
        user = await as_user(name)
        for path in (STATS, STATS + ".csv", LIMITS, "/supervision"):
            response = await user.get(path, allow_redirects=False)
            assert response.status == 403, (name, path)
    denied = await client.app[AUDIT].events(SYSTEM_CHAIN, kind="access_denied")
    assert {e.detail["path"] for e in denied} >= {STATS, LIMITS, "/supervision"}
    assert (await client.get(STATS)).status == 401


def test_deadline_cards_count_working_days():
    """Due after the time limit in working days from the day after acceptance; yellow
    with at most one working day left, red once past; weekends do not count."""
    monday, thursday = dt.date(2026, 3, 9), dt.date(2026, 3, 12)
    due = add_working_days(monday, 3)
    assert due == thursday
    assert deadline(due, monday, 1).card is None  # 3 left
    assert deadline(due, dt.date(2026, 3, 10), 1).card is None  # 2 left
    wednesday = deadline(due, dt.date(2026, 3, 11), 1)
    assert (wednesday.card, wednesday.days_left) == ("yellow", 1)
    assert deadline(due, thursday, 1).card == "yellow"  # due today: 0 left
    friday = deadline(due, dt.date(2026, 3, 13), 1)
    assert (friday.card, friday.days_over) == ("red", 1)
    assert deadline(due, dt.date(2026, 3, 16), 1).days_over == 2  # the weekend not
    friday_case = deadline(add_working_days(dt.date(2026, 3, 13), 1), dt.date(2026, 3, 14), 1)
    assert (friday_case.due, friday_case.card) == (dt.date(2026, 3, 16), "yellow")


async def test_time_limit_cards_move_with_the_clock(client, as_user, clock):
    """Cases made through the API get a yellow card when one working day is left and a
    red one once past, in the API and on the page; a decided case has none."""
    await close_demo_cases(client.app[ENGINE])
    clerk, auditor = await as_user("chuangkou"), await as_user("jiancha")
    clock.at = cst(9, 9)  # Monday 09:00 China time

    async def new_case(matter: str) -> str:
        data = {"matter": matter, "applicant_name": "王五", "id_number": valid_id()}
        response = await clerk.post("/api/v1/cases", json={**data, "phone": "13800000000"})
        assert response.status == 201, await response.text()
        return str((await response.json())["case"]["case_no"])

    three_days = await new_case("LZ-SCJG-0101")  # 3 working days: due Thursday
    one_day = await new_case("BH-SCJG-0101")  # 1 working day: due Tuesday
    decided = await new_case("BH-SCJG-0101")
    async with client.app[ENGINE].begin() as conn:
        await conn.execute(
            update(cases).where(cases.c.case_no == decided).values(status="approved")
        )

    def cards(found: dict[str, Any]) -> dict[str, tuple[str, int, int]]:
        return {c["case_no"]: (c["card"], c["days_left"], c["days_over"]) for c in found["cards"]}

    monday = await body(auditor, LIMITS)
    assert cards(monday) == {one_day: ("yellow", 1, 0)} and monday["open_cases"] == 2
    clock.advance(days=2)  # Wednesday
    wednesday = await body(auditor, LIMITS)
    assert cards(wednesday) == {one_day: ("red", 0, 1), three_days: ("yellow", 1, 0)}
    assert [c["case_no"] for c in wednesday["cards"]] == [one_day, three_days]  # red first
    assert wednesday["cards"][0]["due_date"] == day(10).isoformat()
    page = await (await auditor.get("/supervision")).text()
    assert "红牌" in page and "黄牌" in page and one_day in page and three_days in page
    assert decided not in page
