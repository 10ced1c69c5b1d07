"""Review actions through the public API and protocol on a real server: the consent a
session starts with, material marks (pushed live, later ones superseding), one decision
per case (the case's status follows), the 好差评 rating and its follow-up, the chat
history a rejoining participant gets, and the bad input of each."""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

from sqlalchemy import text

from coreview.simulate import ApiClient, SignalChannel
from signaling.review import protocol
from signaling.review.consent import CONSENT_TEXT, CONSENT_VERSION
from signaling.web.appkeys import ENGINE
from signaling.workdays import add_working_days
from tests.helpers import live_call, refused, valid_id


async def raw_post(api: ApiClient, path: str, data: str, content_type: str) -> tuple[int, Any]:
    headers = {"X-CSRF-Token": api.csrf, "Content-Type": content_type}
    async with api.http.post(api.base_url + path, data=data, headers=headers) as response:
        return response.status, await response.json()


async def new_case(clerk: ApiClient) -> str:
    body = {
        "matter": "LZ-SCJG-0101",
        "applicant_name": "郑十",
        "id_number": valid_id(),
        "phone": "13800000000",
    }
    return str((await clerk.post("/api/v1/cases", body))["case"]["case_no"])


async def events_of(api: ApiClient, case_no: str, kind: str) -> list[dict[str, Any]]:
    log = (await api.get(f"/api/v1/cases/{case_no}/evidence"))["log"]["events"]
    return [e for e in log if e["kind"] == kind]


async def test_a_session_starts_only_with_the_applicants_consent(users):
    """Without {"consent": true}, with false, with an outdated text version or with a
    malformed body the start is refused (400) and no session exists; with consent it
    starts, and the consent (version, hash of the text shown) is stored and logged."""
    clerk = await users("chuangkou")
    shown = (await clerk.get("/api/v1/consent"))["consent"]
    assert shown == {
        "version": CONSENT_VERSION,
        "text": CONSENT_TEXT,
        "sha256": hashlib.sha256(CONSENT_TEXT.encode()).hexdigest(),
    }
    assert "录音录像" in shown["text"]
    case_no = await new_case(clerk)
    path = f"/api/v1/cases/{case_no}/sessions"
    await refused(clerk.post(path), 400, "consent_required")
    await refused(clerk.post(path, {"consent": False}), 400, "consent_required")
    await refused(clerk.post(path, {"consent": "yes"}), 400, "consent_required")
    await refused(
        clerk.post(path, {"consent": True, "consent_version": "1999.1"}), 400, "consent_outdated"
    )
    status, body = await raw_post(clerk, path, "{consent", "application/json")
    assert (status, body["error"]["code"]) == (400, "bad_json")
    assert (await clerk.get(f"/api/v1/cases/{case_no}/evidence"))["sessions"] == []

    started = await clerk.post(path, {"consent": True, "consent_version": CONSENT_VERSION})
    session_id = started["session"]["id"]
    actions = await clerk.get(f"/api/v1/sessions/{session_id}/actions")
    assert actions["consent"]["version"] == CONSENT_VERSION
    assert actions["consent"]["text_sha256"] == shown["sha256"]
    assert actions["consent"]["recorded_by"] == "chuangkou"
    logged = await events_of(clerk, case_no, "consent_recorded")
    assert [e["detail"] for e in logged] == [
        {
            "session": session_id,
            "version": CONSENT_VERSION,
            "text": shown["text"],
            "text_sha256": shown["sha256"],
        }
    ]
    kinds = [
        e["kind"] for e in (await clerk.get(f"/api/v1/cases/{case_no}/evidence"))["log"]["events"]
    ]
    assert kinds.index("consent_recorded") == kinds.index("session_started") + 1


async def test_a_consent_that_cannot_be_recorded_starts_no_session(users, server):
    """If the consent cannot be stored (the database refuses it), the start fails and
    the session never reaches the queue: it is cancelled (not_started), no approver saw
    it, and the clerk can start again once the fault is gone."""
    clerk, approver = await users("chuangkou"), await users("shenpi")
    case_no = await new_case(clerk)
    refuse = text(
        "CREATE TRIGGER refuse_consent BEFORE INSERT ON review_consents "
        "BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END"
    )
    async with server.app[ENGINE].begin() as conn:
        await conn.execute(refuse)
    path = f"/api/v1/cases/{case_no}/sessions"
    await refused(clerk.post(path, {"consent": True}), 500, "internal_error")
    assert (await approver.get("/api/v1/queue"))["items"] == []
    [session] = (await clerk.get(f"/api/v1/cases/{case_no}/evidence"))["sessions"]
    assert (session["state"], session["end_reason"]) == ("cancelled", "not_started")

    async with server.app[ENGINE].begin() as conn:
        await conn.execute(text("DROP TRIGGER refuse_consent"))
    started = await clerk.post(path, {"consent": True})
    queued = (await approver.get("/api/v1/queue"))["items"]
    assert [s["session_id"] for s in queued] == [started["session"]["id"]]


async def test_marks_are_pushed_live_and_later_ones_supersede(users):
    """The accepting approver marks each required material; every participant gets
    material_marked at once; a second mark of a material supersedes the first, and
    both are kept and logged. Bad input is refused and changes nothing."""
    clerk, approver = await users("chuangkou"), await users("shenpi")
    started, clerk_channel, approver_channel = await live_call(clerk, approver)
    session_id = started["session"]["id"]
    marks_path = f"/api/v1/sessions/{session_id}/marks"
    try:
        materials = (await approver.get(f"/api/v1/sessions/{session_id}/actions"))["materials"]
        required = [m for m in materials if m["required"]]
        assert len(required) >= 2
        for material in required:
            body = {"material": material["id"], "mark": "complete"}
            mark = (await approver.post(marks_path, body))["mark"]
            assert (mark["material_name"], mark["mark_name"]) == (material["name"], "齐全")
            pushed = await clerk_channel.wait(
                "material_marked", lambda m, i=material["id"]: m["mark"]["material"] == i
            )
            assert pushed["mark"] == mark
        first = required[0]["id"]
        again = {"material": first, "mark": "unclear", "comment": "第二页反光，看不清"}
        await approver.post(marks_path, again)
        pushed = await approver_channel.wait(
            "material_marked", lambda m: m["mark"]["mark"] == "unclear"
        )
        assert pushed["mark"]["comment"] == "第二页反光，看不清"

        marks = (await clerk.get(f"/api/v1/sessions/{session_id}/actions"))["marks"]
        assert len(marks) == len(required) + 1
        current = {m["material"]: m["mark"] for m in marks if not m["superseded"]}
        assert current[first] == "unclear"
        assert [m["superseded"] for m in marks if m["material"] == first] == [True, False]

        bad = [
            ({"material": 999999, "mark": "complete"}, 400, "unknown_material"),
            ({"material": str(first), "mark": "complete"}, 400, "field_invalid"),
            ({"material": first, "mark": "great"}, 400, "field_invalid"),
            ({"material": first}, 400, "field_invalid"),
            ({"material": first, "mark": "missing", "comment": "长" * 501}, 400, "field_too_long"),
        ]
        for body, status, code in bad:
            await refused(approver.post(marks_path, body), status, code)
        status, answer = await raw_post(approver, marks_path, "[1, 2", "application/json")
        assert (status, answer["error"]["code"]) == (400, "bad_json")
        status, answer = await raw_post(approver, marks_path, "material=1", "text/plain")
        assert (status, answer["error"]["code"]) == (400, "bad_json")
        # not in this session: a clerk (wrong role), an approver of another department
        await refused(
            clerk.post(marks_path, {"material": first, "mark": "complete"}), 403, "wrong_role"
        )
        outsider = await users("shenpi_rs")
        await refused(
            outsider.post(marks_path, {"material": first, "mark": "missing"}),
            403,
            "not_session_approver",
        )
        assert len((await clerk.get(f"/api/v1/sessions/{session_id}/actions"))["marks"]) == len(
            marks
        )
        await approver.post(f"/api/v1/sessions/{session_id}/end")
        await refused(
            approver.post(marks_path, {"material": first, "mark": "complete"}), 409, "session_ended"
        )
        logged = await events_of(clerk, started["session"]["case_no"], "material_marked")
        assert len(logged) == len(marks)
    finally:
        await clerk_channel.close()
        await approver_channel.close()


async def test_one_decision_per_case_and_the_case_status_follows(users):
    """不予受理 and 补正 need a reason; 通过 does not; the decision is pushed to the
    clerk and the case's status follows; a second decision is 409 and changes nothing."""
    clerk, approver = await users("chuangkou"), await users("shenpi")
    started, clerk_channel, approver_channel = await live_call(clerk, approver)
    session_id, case_no = started["session"]["id"], started["session"]["case_no"]
    path = f"/api/v1/sessions/{session_id}/decision"
    try:
        for outcome in ("reject", "supplement"):
            await refused(approver.post(path, {"outcome": outcome}), 400, "field_required")
            await refused(
                approver.post(path, {"outcome": outcome, "reason": "   "}), 400, "field_required"
            )
        await refused(approver.post(path, {"outcome": "maybe"}), 400, "field_invalid")
        await refused(
            approver.post(path, {"outcome": "approve", "reason": 5}), 400, "field_invalid"
        )
        await refused(clerk.post(path, {"outcome": "approve"}), 403, "wrong_role")
        assert (await clerk.get(f"/api/v1/cases/{case_no}"))["case"]["status"] == "accepted"

        decided = (
            await approver.post(path, {"outcome": "supplement", "reason": "缺少股东会决议"})
        )["decision"]
        assert (decided["outcome"], decided["outcome_name"]) == ("supplement", "补正")
        pushed = await clerk_channel.wait("decision_recorded")
        assert pushed["decision"] == decided
        case = (await clerk.get(f"/api/v1/cases/{case_no}"))["case"]
        assert (case["status"], case["status_name"]) == ("supplement", "待补正")

        await refused(approver.post(path, {"outcome": "approve"}), 409, "decision_exists")
        evidence = await clerk.get(f"/api/v1/cases/{case_no}/evidence")
        assert evidence["decision"]["outcome"] == "supplement"
        assert evidence["status"] == "supplement"
        assert [
            e["detail"]["outcome"] for e in await events_of(clerk, case_no, "decision_recorded")
        ] == ["supplement"]
    finally:
        await clerk_channel.close()
        await approver_channel.close()


async def test_rating_only_by_the_sessions_clerk_once_and_bad_ones_open_a_follow_up(users):
    """The approver's rating is 403; a rating of a waiting session is 409; 不满意
    without a reason is 400; with one it is stored, logged, and opens a 回访核实
    follow-up due in 3 working days; a second rating of the session is 409."""
    clerk, approver = await users("chuangkou"), await users("shenpi")
    started, clerk_channel, approver_channel = await live_call(clerk, approver)
    session_id, case_no = started["session"]["id"], started["session"]["case_no"]
    path = f"/api/v1/sessions/{session_id}/rating"
    try:
        await refused(approver.post(path, {"score": "satisfied"}), 403, "wrong_role")
        other_clerk = await users("chuangkou_lz")
        await refused(other_clerk.post(path, {"score": "satisfied"}), 403, "not_session_clerk")
        waiting = await clerk.post(
            f"/api/v1/cases/{await new_case(clerk)}/sessions", {"consent": True}
        )
        await refused(
            clerk.post(
                f"/api/v1/sessions/{waiting['session']['id']}/rating", {"score": "satisfied"}
            ),
            409,
            "session_state",
        )
        await approver.post(f"/api/v1/sessions/{session_id}/end")
        await clerk_channel.wait("state", lambda m: m["state"] == "ended")

        await refused(clerk.post(path, {"score": "dissatisfied"}), 400, "field_required")
        await refused(clerk.post(path, {"score": "很好"}), 400, "field_invalid")
        await refused(clerk.post(path, {}), 400, "field_invalid")
        body = {"score": "dissatisfied", "comment": "等待太久", "reason": "排队超过半小时"}
        rating = (await clerk.post(path, body))["rating"]
        assert (rating["score_name"], rating["reason"]) == ("不满意", "排队超过半小时")
        followup = rating["followup"]
        assert (followup["stage_name"], followup["next_stage_name"]) == ("回访核实", "整改")
        rated_on = dt.date.fromisoformat(rating["rated_at"][:10])
        assert followup["due_date"] == add_working_days(rated_on, 3).isoformat()
        await refused(clerk.post(path, {"score": "satisfied"}), 409, "rating_exists")

        evidence = await clerk.get(f"/api/v1/cases/{case_no}/evidence")
        assert evidence["rating"] == rating
        assert [
            e["detail"]["score"] for e in await events_of(clerk, case_no, "rating_recorded")
        ] == ["dissatisfied"]
        opened = await events_of(clerk, case_no, "followup_opened")
        assert [e["detail"]["due_date"] for e in opened] == [followup["due_date"]]
    finally:
        await clerk_channel.close()
        await approver_channel.close()


async def bad_rating(clerk: ApiClient, approver: ApiClient) -> dict[str, Any]:
    """An ended session the clerk rated 非常不满意: its start answer."""
    started, clerk_channel, approver_channel = await live_call(clerk, approver)
    session_id = started["session"]["id"]
    try:
        await approver.post(f"/api/v1/sessions/{session_id}/end")
        await clerk_channel.wait("state", lambda m: m["state"] == "ended")
        body = {"score": "very_dissatisfied", "reason": "态度生硬"}
        await clerk.post(f"/api/v1/sessions/{session_id}/rating", body)
        return started
    finally:
        await clerk_channel.close()
        await approver_channel.close()


async def outside_auditor(users: Any, server: Any) -> ApiClient:
    """An auditor of 柳州市城中区, which holds none of the demo clerk's cases."""
    password = "Chengzhong-Audit-2026"
    await (await users("admin")).post(
        "/api/v1/users",
        {
            "username": "shen_cz",
            "display_name": "城中区监察员",
            "role": "auditor",
            "jurisdiction": "450202",
            "password": password,
            "temporary": False,
        },
    )
    outsider = ApiClient(str(server.make_url("")))
    await outsider.login("shen_cz", password)
    return outsider


async def test_a_bad_ratings_follow_up_moves_to_rectify_and_closes(users, server):
    """An auditor of the jurisdiction records the 回访核实 (complaint holds) with a note:
    整改 opens, due in 10 working days; recording 整改 closes it. Each step is logged
    and shown in words on the case page. A step twice, the wrong stage, a missing note or
    verdict, another role or an auditor of another jurisdiction are refused; a complaint
    that does not hold closes the follow-up at once."""
    clerk, approver, auditor = (
        await users("chuangkou"),
        await users("shenpi"),
        await users("jiancha"),
    )
    started = await bad_rating(clerk, approver)
    session_id, case_no = started["session"]["id"], started["session"]["case_no"]
    path = f"/api/v1/sessions/{session_id}/followup"
    verify = {"stage": "verify", "upheld": True, "note": "电话回访，申请人反映属实"}
    await refused(clerk.post(path, verify), 403, "wrong_role")
    await refused(auditor.post(path, {**verify, "note": ""}), 400, "field_required")
    await refused(auditor.post(path, {**verify, "upheld": "yes"}), 400, "field_invalid")
    await refused(auditor.post(path, {**verify, "stage": "rectify"}), 409, "followup_not_open")
    done = (await auditor.post(path, verify))["followup"]
    rated_on = dt.date.fromisoformat(
        (await clerk.get(f"/api/v1/cases/{case_no}/evidence"))["rating"]["rated_at"][:10]
    )
    assert done == {
        "stage": "rectify",
        "state": "open",
        "due_date": add_working_days(rated_on, 10).isoformat(),
    }
    await refused(auditor.post(path, verify), 409, "followup_not_open")
    awaiting = (await auditor.get("/api/v1/supervision/stats"))["total"]
    assert (awaiting["awaiting_verify"], awaiting["awaiting_rectify"]) == (0, 1)  # 好差评 board
    followup = (await clerk.get(f"/api/v1/cases/{case_no}/evidence"))["rating"]["followup"]
    assert (followup["stage_name"], followup["state"]) == ("整改", "open")
    closed = await auditor.post(path, {"stage": "rectify", "note": "已对窗口人员批评教育"})
    assert closed["followup"]["state"] == "closed"
    steps = [
        (e["kind"], e["actor"], e["detail"].get("upheld"))
        for e in (await auditor.get(f"/api/v1/cases/{case_no}/evidence"))["log"]["events"]
        if e["kind"].startswith("followup_")
    ]
    assert steps == [
        ("followup_opened", None, None),
        ("followup_verified", "jiancha", True),
        ("followup_rectified", "jiancha", None),
    ]
    async with auditor.http.get(f"{auditor.base_url}/cases/{case_no}") as response:
        page = await response.text()
    assert "已办结" in page and "反映属实，转入整改" in page and "整改完成，办结" in page

    started = await bad_rating(clerk, approver)
    other = f"/api/v1/sessions/{started['session']['id']}/followup"
    outsider = await outside_auditor(users, server)
    try:
        await refused(outsider.post(other, verify), 403, "out_of_scope")
    finally:
        await outsider.close()
    not_upheld = {**verify, "upheld": False, "note": "经核实，等待时间在规定内"}
    assert (await auditor.post(other, not_upheld))["followup"]["state"] == "closed"


async def test_a_good_rating_opens_no_follow_up(users):
    """满意 needs no reason and opens nothing."""
    clerk, approver = await users("chuangkou"), await users("shenpi")
    started, clerk_channel, approver_channel = await live_call(clerk, approver)
    session_id = started["session"]["id"]
    try:
        rating = (
            await clerk.post(f"/api/v1/sessions/{session_id}/rating", {"score": "satisfied"})
        )["rating"]
        assert (rating["score_name"], rating["followup"]) == ("满意", None)
        assert await events_of(clerk, started["session"]["case_no"], "followup_opened") == []
    finally:
        await clerk_channel.close()
        await approver_channel.close()


def test_follow_up_due_dates_skip_weekends():
    """Three working days after a Thursday is the next Tuesday; after a Saturday,
    Wednesday."""
    assert add_working_days(dt.date(2026, 3, 5), 3) == dt.date(2026, 3, 10)
    assert add_working_days(dt.date(2026, 3, 7), 3) == dt.date(2026, 3, 11)
    assert add_working_days(dt.date(2026, 3, 2), 3) == dt.date(2026, 3, 5)


async def test_a_rejoining_participant_gets_the_chat_history(users):
    """Chat is kept: whoever joins or rejoins gets the session's chat so far, in
    order, with names and times, as chat_history."""
    clerk, approver = await users("chuangkou"), await users("shenpi")
    started, clerk_channel, approver_channel = await live_call(clerk, approver)
    session_id = started["session"]["id"]
    first = await clerk_channel.wait("chat_history")
    assert first["messages"] == []
    try:
        await clerk_channel.send(protocol.Chat("请看营业执照"))
        await approver_channel.wait("chat_posted", lambda m: m["text"] == "请看营业执照")
        await approver_channel.send(protocol.Chat("收到"))
        await clerk_channel.wait("chat_posted", lambda m: m["text"] == "收到")
        await clerk_channel.close()
        token = (await clerk.post(f"/api/v1/sessions/{session_id}/token"))["token"]
        clerk_channel = await SignalChannel.open(clerk, session_id, token)
        history = (await clerk_channel.wait("chat_history"))["messages"]
        assert [(m["sender"], m["text"]) for m in history] == [
            ("chuangkou", "请看营业执照"),
            ("shenpi", "收到"),
        ]
        assert history[0]["display_name"] == "海城区窗口人员"
        assert history[0]["at"].endswith("+08:00")
    finally:
        await clerk_channel.close()
        await approver_channel.close()
