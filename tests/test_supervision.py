"""Live supervision (GET /api/v1/supervision/live) on a real server with real signalling
sockets: the waiting and live sessions in scope with their visible participants, never
a hidden auditor; other jurisdictions, clerks and approvers get nothing."""

from __future__ import annotations

from typing import Any

import pytest

from coreview.simulate import ApiClient, ApiError, SignalChannel
from recorder.auditlog import chain_of
from signaling.web.appkeys import AUDIT
from tests.helpers import live_call, start_session, wait_until


async def listed(api: Any) -> dict[str, dict[str, Any]]:
    found = await api.get("/api/v1/supervision/live")
    return {s["id"]: s for s in found["sessions"]}


async def test_live_and_waiting_sessions_with_visible_participants(users, server):
    """A live session lists the clerk and the approver (on line, by role), not the
    auditor who joined hidden (which is logged as auditor_joined); a waiting session
    lists its waiting time; an auditor of another jurisdiction sees neither."""
    clerk, approver, auditor = (
        await users("chuangkou"),
        await users("shenpi"),
        await users("jiancha"),
    )
    started, clerk_channel, approver_channel = await live_call(clerk, approver)
    session_id, case_no = started["session"]["id"], started["session"]["case_no"]
    waiting = await start_session(clerk, "LZ-RSJ-0201")
    channels = [clerk_channel, approver_channel]
    try:
        token = (await auditor.post(f"/api/v1/sessions/{session_id}/token"))["token"]
        channels.append(await SignalChannel.open(auditor, session_id, token))

        async def both_in() -> bool:
            found = (await listed(auditor)).get(session_id)
            return found is not None and len(found["participants"]) == 2

        await wait_until(both_in, what="both visible participants listed")
        sessions = await listed(auditor)
        live = sessions[session_id]
        assert (live["state"], live["state_name"], live["case_no"]) == (
            "live",
            "审办进行中",
            case_no,
        )
        assert {(p["participant"], p["role_name"], p["state"]) for p in live["participants"]} == {
            ("chuangkou", "窗口人员", "connected"),
            ("shenpi", "审批人员", "connected"),
        }
        assert live["approver"] == "市场监管审批员" and live["can_watch"] is True
        assert live["recording"]["state"] in ("idle", "recording")
        assert live["matter"] == "营业执照变更登记"
        queued = sessions[waiting["session"]["id"]]
        assert (queued["state"], queued["can_watch"], queued["duration_text"]) == (
            "waiting",
            False,
            "—",
        )
        assert queued["waiting_seconds"] >= 0 and queued["waiting_text"].endswith("秒")
        joined = await server.app[AUDIT].events(chain_of(case_no), kind="auditor_joined")
        assert [e.actor for e in joined] == ["jiancha"]

        admin = await users("admin")
        await admin.post(
            "/api/v1/users",
            {
                "username": "jiancha_yh",
                "display_name": "银海区监察员",
                "role": "auditor",
                "jurisdiction": "450503",
                "password": "Jiancha-2030-pw",
                "temporary": False,
            },
        )
        elsewhere = ApiClient(str(server.make_url("")))
        try:
            await elsewhere.login("jiancha_yh", "Jiancha-2030-pw")
            assert await listed(elsewhere) == {}
        finally:
            await elsewhere.close()
        for other in (clerk, approver, admin):
            with pytest.raises(ApiError) as caught:
                await listed(other)
            assert (caught.value.status, caught.value.code) == (403, "wrong_role")
    finally:
        for channel in channels:
            await channel.close()
