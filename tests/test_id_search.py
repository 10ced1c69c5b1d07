"""Search by ID number (issue 8, item 1): only clerks and auditors, limited per user,
logged without the number; no other way to confirm a guessed number."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from markupsafe import escape

from coreview.app import create_app
from signaling import id_numbers
from signaling.settings import Settings
from signaling.web.appkeys import AUDIT, KEYS
from signaling.web.messages import MESSAGES, message
from tests.helpers import ManualClock, demo_password, login, valid_id

DEMO_ID = valid_id("45020219800115002")  # 张明华: 海城区 clerk's case, 市场监管 department
DEMO_NAME = "张明华"


def candidates(masked: str, real: str, count: int) -> list[str]:
    """Numbers with the masked form's visible parts and a right check digit, as a
    guesser makes them (the real one last)."""
    found: list[str] = []
    for month in range(1, 13):
        for day in range(1, 29):
            first17 = f"{masked[:4]}021980{month:02d}{day:02d}{masked[14:17]}"
            number = first17 + id_numbers.check_digit(first17)
            if number[-1] == masked[-1] and number != real:
                found.append(number)
    assert len(found) >= count - 1
    return [*found[: count - 1], real]


async def searched(session: Any, query: str) -> tuple[int, dict[str, Any]]:
    response = await session.get("/api/v1/cases", params={"q": query})
    return response.status, await response.json()


async def assert_code(response: Any, status: int, code: str) -> None:
    body = await response.json()
    assert response.status == status, body
    assert body == {"error": {"code": code, "message": message(code, {})}}


async def test_approvers_cannot_confirm_an_id_number(as_user):
    """An approver who may see a case finds it by name, but a search by ID number is
    refused (API and page: 403 id_search_not_allowed, logged as a denial, no case shown)."""
    approver = await as_user("shenpi")
    status, body = await searched(approver, DEMO_NAME)
    assert status == 200 and len(body["cases"]) == 1
    case_no = body["cases"][0]["case_no"]
    await assert_code(
        await approver.get("/api/v1/cases", params={"q": DEMO_ID}), 403, "id_search_not_allowed"
    )
    page = await approver.get("/cases", params={"q": DEMO_ID})
    html = await page.text()
    assert page.status == 403
    assert str(escape(MESSAGES["id_search_not_allowed"])) in html
    assert case_no not in html and DEMO_ID not in html
    denials = await approver.client.app[AUDIT].events("system", kind="access_denied")
    assert [e.detail["reason"] for e in denials] == ["id_search_not_allowed"] * 2


@pytest.mark.parametrize("username", ["chuangkou", "jiancha"])
async def test_clerks_and_auditors_search_by_id_number(as_user, username):
    """A clerk (the applicant's card at the counter) and an auditor find a case by its
    applicant's ID number, also typed with spaces, a lower-case x or full-width digits;
    the answer does not echo the number back."""
    user = await as_user(username)
    status, body = await searched(user, DEMO_ID)
    assert status == 200 and [c["applicant_name"] for c in body["cases"]] == [DEMO_NAME]
    assert body["query"]["q"] == "" and DEMO_ID[6:14] not in json.dumps(body)
    full_width = "".join(chr(ord(c) + 0xFEE0) for c in DEMO_ID)  # a Chinese input method's
    status, body = await searched(user, f" {full_width[:6]} {full_width[6:]} ")
    assert status == 200 and [c["applicant_name"] for c in body["cases"]] == [DEMO_NAME]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def limited(aiohttp_client, data_dir, clock):
    """The app on the demo data with 3 ID searches an hour, time under the test's control."""
    settings = Settings(data_dir=data_dir, id_searches_per_hour=3)
    client = await aiohttp_client(create_app(settings, clock))

    async def make(username: str) -> Any:
        own = await aiohttp_client(client.server)
        return await login(own, username, demo_password(data_dir, username))

    return make


async def test_guessing_an_id_number_from_its_masked_form_is_stopped(limited, clock):
    """The review's attack: a clerk who sees the masked number tries candidates with the
    right check digit; past id_searches_per_hour ID searches in an hour every further one
    (the right number too) is 429 too_many_searches on the API and the page, and logged.
    Searches by name or case number are not counted; another user is not affected; an
    hour later the clerk may search again."""
    clerk = await limited("chuangkou")
    _, body = await searched(clerk, DEMO_NAME)
    masked, case_no = body["cases"][0]["id_number_masked"], body["cases"][0]["case_no"]
    guesses = candidates(masked, DEMO_ID, 6)
    answers = [await clerk.get("/api/v1/cases", params={"q": g}) for g in guesses[:3]]
    assert [r.status for r in answers] == [200, 200, 200]
    assert [(await r.json())["cases"] for r in answers] == [[], [], []]
    for _ in range(3):  # by name and by case number: not ID searches
        assert (await searched(clerk, case_no))[0] == 200
    for guess in guesses[3:]:
        await assert_code(
            await clerk.get("/api/v1/cases", params={"q": guess}), 429, "too_many_searches"
        )
    assert MESSAGES["too_many_searches"] == "按身份证号查询过于频繁，请稍后再试。"
    page = await clerk.get("/cases", params={"q": DEMO_ID})
    html = await page.text()
    assert page.status == 429
    assert str(escape(MESSAGES["too_many_searches"])) in html
    assert case_no not in html and DEMO_ID not in html
    audit = clerk.client.app[AUDIT]
    throttled = await audit.events("system", kind="id_search_throttled")
    assert [e.actor for e in throttled] == ["chuangkou"] * 4

    auditor = await limited("jiancha")
    status, body = await searched(auditor, DEMO_ID)
    assert status == 200 and [c["case_no"] for c in body["cases"]] == [case_no]

    clock.advance(hours=1, seconds=1)
    status, body = await searched(clerk, DEMO_ID)
    assert status == 200 and [c["case_no"] for c in body["cases"]] == [case_no]


async def test_id_searches_are_logged_without_the_number(as_user):
    """Each search by ID number is logged: who, how many cases were found, and a prefix of
    the keyed digest (to tell which cases' applicant was looked up); the number itself, in
    any form, is in no event."""
    clerk = await as_user("chuangkou")
    other = valid_id("11010519491231002")
    for query in (DEMO_ID, other):
        assert (await searched(clerk, query))[0] == 200
    audit = clerk.client.app[AUDIT]
    logged = await audit.events("system", kind="id_number_searched")
    assert [(e.actor, e.detail["results"]) for e in logged] == [("chuangkou", 1), ("chuangkou", 0)]
    key = clerk.client.app[KEYS].id_key
    assert [e.detail["digest"] for e in logged] == [
        id_numbers.digest(number, key)[:12] for number in (DEMO_ID, other)
    ]
    text = json.dumps([e.to_dict() for e in await audit.all_events()], ensure_ascii=False)
    for number in (DEMO_ID, other):
        assert number not in text and number[:17] not in text and number[6:14] not in text


async def test_an_id_number_in_another_digit_script_is_refused(as_user):
    """A number written in digits a card never has (Arabic-Indic) is not an ID number:
    creating a case with it is 400 invalid_id_number, not a server error."""
    clerk = await as_user("chuangkou")
    for first17 in ("45020219900307123", "45020219900307109"):
        number = valid_id(first17)
        foreign = number[0] + "".join(chr(ord(c) + 0x0630) for c in number[1:17]) + number[17]
        response = await clerk.post(
            "/api/v1/cases",
            json={
                "matter": "LZ-SCJG-0101",
                "applicant_name": "王小二",
                "id_number": foreign,
                "phone": "13800000000",
            },
        )
        await assert_code_field(response)


async def assert_code_field(response: Any) -> None:
    body = await response.json()
    assert response.status == 400, body
    assert body["error"]["code"] == "invalid_id_number"


async def test_concurrent_id_searches_cannot_pass_the_limit_together(limited):
    """Searches sent at once are counted in turn: with 3 an hour, 8 concurrent searches by
    ID number give exactly 3 answers and 5 refusals."""
    clerk = await limited("chuangkou")
    guesses = candidates(DEMO_ID[:4] + "*" * 10 + DEMO_ID[-4:], DEMO_ID, 8)
    answers = await asyncio.gather(*(clerk.get("/api/v1/cases", params={"q": g}) for g in guesses))
    assert sorted(r.status for r in answers) == [200] * 3 + [429] * 5
