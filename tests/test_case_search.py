"""The case search (GET /api/v1/cases) on a real server and database, with a clock the
test moves: every filter, the total and pages, each sort, the scope of each role, and
bad parameters as clear 400s."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import pytest

from coreview.app import create_app
from coreview.simulate import ApiClient
from recorder.auditlog import chain_of
from signaling.settings import Settings
from signaling.web.appkeys import AUDIT, REVIEWS
from tests.helpers import ManualClock, demo_password, refused, valid_id

MONDAY = dt.datetime(2030, 3, 4, 1, 0, tzinfo=dt.UTC)  # 09:00 China time
MINE = {"from": "2030-03-04"}
"""Leaves out the demo data's cases (accepted when the test data was seeded)."""


@dataclass
class World:
    server: Any
    clock: ManualClock
    data_dir: Any
    cases: dict[str, str] = field(default_factory=dict)
    """Name in this test → case number."""
    sessions: dict[str, str] = field(default_factory=dict)
    clients: list[ApiClient] = field(default_factory=list)

    async def login(self, username: str, password: str | None = None) -> ApiClient:
        client = ApiClient(str(self.server.make_url("")))
        await client.login(username, password or demo_password(self.data_dir, username))
        self.clients.append(client)
        return client

    async def search(self, api: ApiClient, **params: str) -> dict[str, Any]:
        found: dict[str, Any] = await api.get("/api/v1/cases?" + urlencode({**MINE, **params}))
        return found

    async def names(self, api: ApiClient, **params: str) -> list[str]:
        """The cases found, by their names in this test, in the order listed."""
        by_number = {number: name for name, number in self.cases.items()}
        return [by_number[c["case_no"]] for c in (await self.search(api, **params))["cases"]]


async def new_case(world: World, clerk: ApiClient, name: str, matter: str) -> str:
    body = {
        "matter": matter,
        "applicant_name": f"申请人{name[-1]}",
        "id_number": valid_id(),
        "phone": "13800000000",
    }
    world.cases[name] = (await clerk.post("/api/v1/cases", body))["case"]["case_no"]
    return world.cases[name]


async def start(world: World, clerk: ApiClient, name: str) -> str:
    started = await clerk.post(f"/api/v1/cases/{world.cases[name]}/sessions", {"consent": True})
    world.sessions[name] = started["session"]["id"]
    return str(started["session"]["id"])


@pytest.fixture
async def world(aiohttp_server, data_dir) -> AsyncIterator[World]:
    """Six cases of known history (times by the test's clock), searched a week later:
    case1 waited 60 s, lived 120 s, 通过, 满意, a recording gap;
    case2 (人社) waited 300 s, lived 30 s, 不予受理, 不满意, interrupted;
    case3 accepted at 城中区 (10-day limit), nothing else;
    case4 no session (3-day limit: overdue a week later);
    case5 waited 10 s, still live, 补正 a week later (after its limit);
    case6 accepted a week later, its session waiting."""
    clock = ManualClock()
    clock.at = MONDAY
    settings = Settings(
        data_dir=data_dir, announced_addresses=("127.0.0.1",), reconnect_grace_seconds=600
    )
    server = await aiohttp_server(create_app(settings, clock))
    world = World(server, clock, data_dir)
    try:
        clerk, clerk_lz = await world.login("chuangkou"), await world.login("chuangkou_lz")
        shenpi, shenpi_rs = await world.login("shenpi"), await world.login("shenpi_rs")

        await new_case(world, clerk, "case1", "LZ-SCJG-0101")
        session = await start(world, clerk, "case1")
        clock.advance(seconds=60)
        await shenpi.post(f"/api/v1/sessions/{session}/accept")
        clock.advance(seconds=120)
        await shenpi.post(f"/api/v1/sessions/{session}/decision", {"outcome": "approve"})
        await shenpi.post(f"/api/v1/sessions/{session}/end")
        await clerk.post(f"/api/v1/sessions/{session}/rating", {"score": "satisfied"})
        await server.app[AUDIT].append(
            "recording_gap",
            actor=None,
            case_no=world.cases["case1"],
            session=session,
            reason="outage",
            seconds=3.0,
        )

        await new_case(world, clerk, "case2", "LZ-RSJ-0201")
        session = await start(world, clerk, "case2")
        clock.advance(seconds=300)
        await shenpi_rs.post(f"/api/v1/sessions/{session}/accept")
        clock.advance(seconds=30)
        await shenpi_rs.post(
            f"/api/v1/sessions/{session}/decision", {"outcome": "reject", "reason": "不符合条件"}
        )
        await shenpi_rs.post(f"/api/v1/sessions/{session}/end")
        await clerk.post(
            f"/api/v1/sessions/{session}/rating",
            {"score": "dissatisfied", "reason": "等待太久"},
        )
        await server.app[REVIEWS].mark_interrupted(session, gap_seconds=1.5)

        await new_case(world, clerk_lz, "case3", "LZ-SCJG-0102")
        await new_case(world, clerk, "case4", "LZ-SCJG-0101")
        await new_case(world, clerk, "case5", "LZ-SCJG-0101")
        session = await start(world, clerk, "case5")
        clock.advance(seconds=10)
        await shenpi.post(f"/api/v1/sessions/{session}/accept")

        clock.advance(days=7)  # logins ran out: log in again
        clerk, shenpi = await world.login("chuangkou"), await world.login("shenpi")
        await shenpi.post(
            f"/api/v1/sessions/{session}/decision", {"outcome": "supplement", "reason": "补材料"}
        )
        await new_case(world, clerk, "case6", "LZ-SCJG-0101")
        await start(world, clerk, "case6")
        clock.advance(seconds=45)
        yield world
    finally:
        for client in world.clients:
            await client.close()


async def test_each_filter_finds_exactly_its_cases(world):
    """Matter, outlet, department, approver, dates, status, decision, rating, gaps and
    overdue each select exactly the cases they name; filters combine."""
    auditor = await world.login("jiancha")
    expected = {
        (("matter", "LZ-SCJG-0101"),): ["case6", "case5", "case4", "case1"],
        (("outlet", "LZ-CZ-01"),): ["case3"],
        (("department", "LZ-RSJ"),): ["case2"],
        (("approver", "shenpi"),): ["case5", "case1"],
        (("approver", "shenpi_rs"),): ["case2"],
        (("from", "2030-03-11"),): ["case6"],
        (("to", "2030-03-04"),): ["case5", "case4", "case3", "case2", "case1"],
        (("from", "2030-03-05"), ("to", "2030-03-10")): [],
        (("status", "approved"),): ["case1"],
        (("decision", "approve"),): ["case1"],
        (("decision", "reject"),): ["case2"],
        (("decision", "supplement"),): ["case5"],
        (("decision", "none"),): ["case6", "case4", "case3"],
        (("rating", "satisfied"),): ["case1"],
        (("rating", "bad"),): ["case2"],
        (("rating", "dissatisfied"),): ["case2"],
        (("rating", "none"),): ["case6", "case5", "case4", "case3"],
        (("gaps", "1"),): ["case2", "case1"],
        (("overdue", "1"),): ["case5", "case4"],
        (("overdue", "1"), ("decision", "none")): ["case4"],
        (("matter", "LZ-SCJG-0101"), ("gaps", "1")): ["case1"],
        (("q", "申请人3"),): ["case3"],
        (("q", world.cases["case4"]),): ["case4"],
        (("q", world.cases["case4"][-6:]),): ["case4"],
    }
    for params, names in expected.items():
        assert await world.names(auditor, **dict(params)) == names, params
    everything = await world.search(auditor)
    assert everything["total"] == 6
    shown = {c["case_no"]: c for c in everything["cases"]}
    case1, case5 = shown[world.cases["case1"]], shown[world.cases["case5"]]
    assert (case1["decision_name"], case1["rating_name"], case1["approver"]) == (
        "通过",
        "满意",
        "市场监管审批员",
    )
    assert (case1["gaps"], case1["overdue"], case1["due_date"]) == (True, False, "2030-03-07")
    assert (case1["waiting_seconds"], case1["duration_seconds"]) == (60, 120)
    assert (case1["waiting_text"], case1["duration_text"]) == ("1 分 0 秒", "2 分 0 秒")
    assert (case5["overdue"], case5["decision"], case5["sessions"]) == (True, "supplement", 1)


async def test_sorting_and_pages(world):
    """Sorting by waiting, duration, case number, due date and acceptance time, both
    ways; pages of a given size with the total and the page count."""
    auditor = await world.login("jiancha")
    assert await world.names(auditor, sort="waiting") == [
        "case2",  # 300 s
        "case1",  # 60 s
        "case6",  # 45 s, still waiting
        "case5",  # 10 s
        "case4",
        "case3",
    ]
    assert (await world.names(auditor, sort="duration"))[:3] == ["case5", "case1", "case2"]
    in_order = ["case1", "case2", "case3", "case4", "case5", "case6"]
    assert await world.names(auditor, sort="case_no", order="asc") == in_order
    assert await world.names(auditor, sort="created") == in_order[::-1]
    assert (await world.names(auditor, sort="due", order="asc"))[:3] == ["case1", "case4", "case5"]

    page = await world.search(auditor, sort="case_no", order="asc", per_page="4", page="2")
    assert (page["total"], page["pages"], page["page"], page["per_page"]) == (6, 2, 2, 4)
    assert [c["case_no"] for c in page["cases"]] == [world.cases["case5"], world.cases["case6"]]
    beyond = await world.search(auditor, per_page="4", page="3")
    assert (beyond["total"], beyond["cases"]) == (6, [])
    assert page["query"]["sort"] == "case_no" and page["query"]["from"] == "2030-03-04"


async def test_scope_of_each_role(world):
    """An auditor of another jurisdiction finds none of them, one of the city finds all;
    a clerk only its outlet's, an approver only its department's; admins are refused."""
    admin = await world.login("admin")
    for username, jurisdiction in (("jiancha_yh", "450503"), ("jiancha_lz", "450200")):
        await admin.post(
            "/api/v1/users",
            {
                "username": username,
                "display_name": "区监察员",
                "role": "auditor",
                "jurisdiction": jurisdiction,
                "password": "Jiancha-2030-pw",
                "temporary": False,
            },
        )
    elsewhere = await world.login("jiancha_yh", "Jiancha-2030-pw")
    assert (await world.search(elsewhere))["total"] == 0
    assert (await world.search(elsewhere, gaps="1"))["cases"] == []
    city = await world.login("jiancha_lz", "Jiancha-2030-pw")
    assert (await world.search(city))["total"] == 6
    async with city.http.get(city.base_url + "/cases") as page:  # the filter form
        choices = set(re.findall(r'<option value="([^"]+)"', await page.text()))
    assert {"LZ-CZ-01", "LZ-SCJG", "shenpi", "shenpi_rs", "LZ-SCJG-0101"} <= choices
    assert not {c for c in choices if c.startswith("BH-")}  # 北海 is not the auditor's
    # users of one kind share one statement (built once per shape): each gets its own
    assert await world.names(await world.login("chuangkou_lz")) == ["case3"]
    clerk = await world.login("chuangkou")
    assert "case3" not in await world.names(clerk)
    assert await world.names(await world.login("shenpi_rs")) == ["case2"]
    assert "case2" not in await world.names(await world.login("shenpi"))
    assert await world.names(clerk, decision="none") == ["case6", "case4"]
    await refused(admin.get("/api/v1/cases"), 403, "wrong_role")


async def test_bad_parameters_are_clear_errors(world):
    """Unknown sort, order, decision, rating or status, a page of 0, too large a page,
    a malformed date, a reversed range, an unknown approver: 400 naming the problem."""
    auditor = await world.login("jiancha")
    cases = [
        ({"sort": "name"}, "field_invalid"),
        ({"order": "up"}, "field_invalid"),
        ({"decision": "maybe"}, "field_invalid"),
        ({"rating": "good"}, "field_invalid"),
        ({"status": "lost"}, "field_invalid"),
        ({"gaps": "yes"}, "field_invalid"),
        ({"page": "0"}, "field_out_of_range"),
        ({"per_page": "1000"}, "field_out_of_range"),
        ({"from": "2030-02-30"}, "field_invalid"),
        ({"from": "2030-03-10", "to": "2030-03-01"}, "bad_date_range"),
        ({"approver": "nobody"}, "no_such_approver"),
        ({"approver": "chuangkou"}, "no_such_approver"),
        ({"q": "x" * 65}, "field_too_long"),
    ]
    for params, code in cases:
        query = urlencode(params)
        error = await refused(auditor.get(f"/api/v1/cases?{query}"), 400, code)
        assert "{" not in error.message, error.message


async def test_id_number_search_stays_limited_and_logged(world):
    """A search by full ID number with other filters still goes through the ID-search
    limit: an approver is refused (403), an auditor's is logged with its result count
    and never with the number."""
    number = valid_id()
    approver = await world.login("shenpi")
    await refused(
        approver.get("/api/v1/cases?" + urlencode({"q": number})), 403, "id_search_not_allowed"
    )
    auditor = await world.login("jiancha")
    found = await world.search(auditor, q=number, matter="LZ-SCJG-0101")
    assert found["total"] == 4
    chain = chain_of(None)
    logged = await world.server.app[AUDIT].events(chain, kind="id_number_searched")
    assert logged[-1].actor == "jiancha" and logged[-1].detail["results"] == 4
    assert number not in str(logged[-1].detail)


async def test_the_time_limit_is_fixed_when_the_case_is_accepted(world):
    """A case's 办理期限 counts working days (Monday to Friday) from the day after
    acceptance."""
    auditor = await world.login("jiancha")
    due = {c["case_no"]: c["due_date"] for c in (await world.search(auditor))["cases"]}
    assert due[world.cases["case1"]] == "2030-03-07"  # Mon + 3 working days: Thu
    assert due[world.cases["case3"]] == "2030-03-18"  # + 10 working days: Mon two weeks on
    assert due[world.cases["case6"]] == "2030-03-14"
