"""Review sessions end to end through the public API and protocol, with real aiortc
peers on loopback: queue, atomic accept, media both ways, chat, reconnect, end."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select

from coreview.simulate import ApiClient, ApiError, SignalChannel, connect_media, slot_for
from signaling.review import protocol
from signaling.review.actions import ReviewActions
from signaling.review.live_session import LiveSession
from signaling.storage.tables import review_sessions
from signaling.web.appkeys import ENGINE
from tests.helpers import valid_id, wait_until


async def new_case(clerk: ApiClient, matter: str = "LZ-SCJG-0101") -> str:
    body = {
        "matter": matter,
        "applicant_name": "赵六",
        "id_number": valid_id(),
        "phone": "13800000000",
    }
    return (await clerk.post("/api/v1/cases", body))["case"]["case_no"]


async def test_queue_accept_media_chat_and_end(users):
    """The clerk's session appears in the department's queue; the approver accepts; the
    clerk is told it is live; stamped media flows both ways in order; chat reaches both;
    the approver ends it and both are told."""
    clerk, approver = await users("chuangkou"), await users("shenpi")
    case_no = await new_case(clerk)
    started = await clerk.post(f"/api/v1/cases/{case_no}/sessions", {"consent": True})
    session_id = started["session"]["id"]
    assert started["session"]["state"] == "waiting"
    clerk_channel = await SignalChannel.open(clerk, session_id, started["token"])
    await clerk_channel.wait("state", lambda m: m["state"] == "waiting")

    queue = (await approver.get("/api/v1/queue"))["items"]
    assert [item["case_no"] for item in queue] == [case_no]
    assert queue[0]["position"] == 1 and queue[0]["matter"] == "营业执照变更登记"

    accepted = await approver.post(f"/api/v1/sessions/{session_id}/accept")
    approver_channel = await SignalChannel.open(approver, session_id, accepted["token"])
    await clerk_channel.wait("state", lambda m: m["state"] == "live")
    assert (await approver.get("/api/v1/queue"))["items"] == []

    clerk_peer = await connect_media(clerk_channel, ("face", "document", "audio"))
    approver_peer = await connect_media(approver_channel, ("face", "audio"))
    try:
        await wait_until(
            lambda: (
                slot_for(approver_channel, "chuangkou", "document") is not None
                and slot_for(clerk_channel, "shenpi", "face") is not None
            ),
            what="slots announced",
        )
        document = approver_peer.received[slot_for(approver_channel, "chuangkou", "document")]
        face_back = clerk_peer.received[slot_for(clerk_channel, "shenpi", "face")]
        await wait_until(lambda: len(document.counters) >= 20 and len(face_back.counters) >= 20)
        assert document.counters == sorted(document.counters)
        assert face_back.counters == sorted(face_back.counters)

        await clerk_channel.send(protocol.Chat("请看第二页"))
        posted = await approver_channel.wait("chat_posted")
        assert (posted["sender"], posted["text"]) == ("chuangkou", "请看第二页")
        await approver_channel.send(protocol.Chat("好的"))
        assert (await clerk_channel.wait("chat_posted", lambda m: m["text"] == "好的"))[
            "sender"
        ] == "shenpi"

        await approver_channel.send(protocol.End())
        ended = await clerk_channel.wait("state", lambda m: m["state"] == "ended")
        assert ended["reason"] == "" or ended["reason"] == "ended_by_approver"
        assert (await clerk.get(f"/api/v1/sessions/{session_id}"))["session"]["state"] == "ended"
    finally:
        await clerk_peer.close()
        await approver_peer.close()
        await clerk_channel.close()
        await approver_channel.close()


async def test_exactly_one_of_many_approvers_wins(users, server):
    """Approvers accepting at once: exactly one gets the session, the others 409."""
    clerk = await users("chuangkou")
    approvers = [await users("shenpi")]
    # more approvers of the same department, created by the admin
    admin = await users("admin")
    for n in range(3):
        await admin.post(
            "/api/v1/users",
            {
                "username": f"shenpi{n}",
                "display_name": f"审批{n}",
                "role": "approver",
                "department": "LZ-SCJG",
                "password": "Approver-pass-1",
                "temporary": False,
            },
        )
        extra = ApiClient(str(server.make_url("")))
        await extra.login(f"shenpi{n}", "Approver-pass-1")
        approvers.append(extra)
    try:
        case_no = await new_case(clerk)
        session_id = (await clerk.post(f"/api/v1/cases/{case_no}/sessions", {"consent": True}))[
            "session"
        ]["id"]
        results = await asyncio.gather(
            *(a.post(f"/api/v1/sessions/{session_id}/accept") for a in approvers),
            return_exceptions=True,
        )
        winners = [r for r in results if isinstance(r, dict)]
        losers = [r for r in results if isinstance(r, ApiError)]
        assert len(winners) == 1 and len(losers) == len(approvers) - 1
        assert {(e.status, e.code) for e in losers} == {(409, "already_taken")}
    finally:
        for extra in approvers[1:]:
            await extra.close()


async def test_cancel_racing_accept_has_one_outcome(users):
    """A clerk cancelling while an approver accepts: one of them wins, the other is told
    clearly, and the session's state is the winner's."""
    clerk, approver = await users("chuangkou"), await users("shenpi")
    for _ in range(3):
        case_no = await new_case(clerk)
        session_id = (await clerk.post(f"/api/v1/cases/{case_no}/sessions", {"consent": True}))[
            "session"
        ]["id"]
        cancel, accept = await asyncio.gather(
            clerk.post(f"/api/v1/sessions/{session_id}/cancel"),
            approver.post(f"/api/v1/sessions/{session_id}/accept"),
            return_exceptions=True,
        )
        state = (await clerk.get(f"/api/v1/sessions/{session_id}"))["session"]["state"]
        if isinstance(cancel, dict):
            assert isinstance(accept, ApiError) and accept.code == "session_cancelled"
            assert state == "cancelled"
        else:
            assert isinstance(cancel, ApiError) and cancel.code == "already_taken"
            assert state == "live"
            await approver.post(f"/api/v1/sessions/{session_id}/end")


def told_later(live: LiveSession) -> bool:
    """A change waits to be told while the join holds ``telling``: the race under test
    happened (asyncio.Lock keeps its waiters in ``_waiters``)."""
    return bool(live.telling._waiters)  # type: ignore[attr-defined]


async def test_a_join_racing_the_accept_is_told_live_last(users, monkeypatch):
    """The accept lands while the clerk's join is attaching (after its state was read):
    the clerk is told waiting, then live, and nothing after (seen in Chromium under load
    as a clerk left at 排队等待中 beside a connected approver)."""
    clerk, approver = await users("chuangkou"), await users("shenpi")
    case_no = await new_case(clerk)
    started = await clerk.post(f"/api/v1/cases/{case_no}/sessions", {"consent": True})
    session_id = started["session"]["id"]
    attach = LiveSession.attach

    async def attach_then_accept(self, grant, *args):
        participant = await attach(self, grant, *args)
        if grant.role == "clerk":
            await approver.post(f"/api/v1/sessions/{session_id}/accept")
            await wait_until(lambda: told_later(self), what="the accept waiting to be told")
        return participant

    monkeypatch.setattr(LiveSession, "attach", attach_then_accept)
    channel = await SignalChannel.open(clerk, session_id, started["token"])
    try:
        await wait_until(
            lambda: any(m.get("state") == "live" for m in channel.received), what="told live"
        )
        states = [m["state"] for m in channel.received if m.get("type") == "state"]
        assert states == ["waiting", "live"], states
    finally:
        await channel.close()
        await approver.post(f"/api/v1/sessions/{session_id}/end")


async def test_a_chat_posted_while_someone_joins_reaches_the_joiner_once(users, monkeypatch):
    """The clerk chats while the approver's join is attaching: the approver gets the
    line once, in its chat history or as a new message, never both."""
    clerk, approver = await users("chuangkou"), await users("shenpi")
    case_no = await new_case(clerk)
    started = await clerk.post(f"/api/v1/cases/{case_no}/sessions", {"consent": True})
    session_id = started["session"]["id"]
    clerk_channel = await SignalChannel.open(clerk, session_id, started["token"])
    await clerk_channel.wait("state", lambda m: m["state"] == "waiting")
    accepted = await approver.post(f"/api/v1/sessions/{session_id}/accept")
    await clerk_channel.wait("state", lambda m: m["state"] == "live")
    attach = LiveSession.attach

    async def attach_then_chat(self, grant, *args):
        participant = await attach(self, grant, *args)
        if grant.role == "approver":
            await clerk_channel.send(protocol.Chat("请核对身份证"))
            await wait_until(lambda: told_later(self), what="the chat waiting to be told")
        return participant

    monkeypatch.setattr(LiveSession, "attach", attach_then_chat)
    channel = await SignalChannel.open(approver, session_id, accepted["token"])
    try:
        history = await channel.wait("chat_history")
        await clerk_channel.wait("chat_posted")
        # told after every earlier chat was told to everyone (one at a time, in order)
        await channel.send(protocol.Chat("收到"))
        await channel.wait("chat_posted", lambda m: m["text"] == "收到")  # taken: not below
        told = [m for m in channel.received if m.get("type") == "chat_posted"]
        lines = [m["text"] for m in history["messages"]] + [m["text"] for m in told]
        assert lines == ["请核对身份证"], lines
    finally:
        await channel.close()
        await clerk_channel.close()
        await approver.post(f"/api/v1/sessions/{session_id}/end")


async def test_no_approver_sees_or_takes_a_session_before_its_consent_is_recorded(
    users, server, monkeypatch
):
    """While the consent is being recorded the session is in no queue and an accept is
    refused (409 session_not_ready, in Chinese); once it is recorded, both work."""
    clerk, approver = await users("chuangkou"), await users("shenpi")
    case_no = await new_case(clerk)
    recording, release = asyncio.Event(), asyncio.Event()
    record_consent = ReviewActions.record_consent

    async def slow_consent(self, *args):
        recording.set()
        await release.wait()
        return await record_consent(self, *args)

    monkeypatch.setattr(ReviewActions, "record_consent", slow_consent)
    start = asyncio.create_task(clerk.post(f"/api/v1/cases/{case_no}/sessions", {"consent": True}))
    await asyncio.wait_for(recording.wait(), 10)
    async with server.app[ENGINE].connect() as conn:
        session_id = await conn.scalar(select(review_sessions.c.id))
    assert (await approver.get("/api/v1/queue"))["items"] == []
    with pytest.raises(ApiError) as refused:
        await approver.post(f"/api/v1/sessions/{session_id}/accept")
    assert (refused.value.status, refused.value.code) == (409, "session_not_ready")
    assert "尚未进入排队" in refused.value.message
    release.set()
    assert (await start)["session"]["id"] == session_id
    assert [i["case_no"] for i in (await approver.get("/api/v1/queue"))["items"]] == [case_no]
    await approver.post(f"/api/v1/sessions/{session_id}/accept")
    await approver.post(f"/api/v1/sessions/{session_id}/end")


async def test_wrong_department_and_foreign_token_are_refused(users):
    """An approver of another department cannot accept; a token for one session does
    not open another; an expired or altered token is refused with a clear code."""
    clerk, other = await users("chuangkou"), await users("shenpi_rs")
    first = await clerk.post(f"/api/v1/cases/{await new_case(clerk)}/sessions", {"consent": True})
    second = await clerk.post(f"/api/v1/cases/{await new_case(clerk)}/sessions", {"consent": True})
    with pytest.raises(ApiError) as refused:
        await other.post(f"/api/v1/sessions/{first['session']['id']}/accept")
    assert (refused.value.status, refused.value.code) == (403, "out_of_scope")
    for token in (first["token"], second["token"][:-3] + "abc"):
        socket = await clerk.http.ws_connect(
            f"{clerk.base_url}/api/v1/sessions/{second['session']['id']}/ws"
        )
        await socket.send_str(protocol.Join(token).to_json())
        reply = await socket.receive_json()
        assert (reply["type"], reply["code"]) == ("error", "token_invalid")
        await socket.close()


async def test_malformed_messages_get_errors_and_the_socket_stays_up(users):
    """Malformed, oversized, unknown and out-of-order messages each get an error with a
    stable code; the connection stays usable."""
    clerk = await users("chuangkou")
    started = await clerk.post(f"/api/v1/cases/{await new_case(clerk)}/sessions", {"consent": True})
    channel = await SignalChannel.open(clerk, started["session"]["id"], started["token"])
    cases = [
        ("{not json", "protocol_bad_json"),
        ('{"v": 2, "type": "ping"}', "protocol_bad_version"),
        ('{"v": 1, "type": "dance"}', "protocol_unknown_type"),
        ('{"v": 1, "type": "chat", "text": 5}', "protocol_bad_field"),
        ('{"v": 1, "type": "chat", "text": "' + "长" * 1001 + '"}', "protocol_too_long"),
        ('{"v": 1, "type": "join", "token": "x"}', "out_of_order"),
        ('{"v": 1, "type": "offer", "sdp": "v=0", "publish": {}}', "not_live"),
        ('{"v": 1, "type": "end"}', "not_allowed"),
    ]
    try:
        for raw, code in cases:
            await channel.socket.send_str(raw)
            reply = await channel.wait("error")
            assert reply["code"] == code, raw
            assert reply["message"]
        await channel.send(protocol.Ping())
        await channel.wait("pong")
    finally:
        await channel.close()


async def test_flood_is_rate_limited(users):
    """A flood of messages is cut down with a rate_limited error; the socket survives a
    burst and answers afterwards."""
    clerk = await users("chuangkou")
    started = await clerk.post(f"/api/v1/cases/{await new_case(clerk)}/sessions", {"consent": True})
    channel = await SignalChannel.open(clerk, started["session"]["id"], started["token"])
    try:
        for _ in range(120):
            await channel.send(protocol.Ping())
        await channel.wait("error", lambda m: m["code"] == "rate_limited")
        pongs = sum(1 for m in channel.received if m["type"] == "pong")
        assert pongs < 120
    finally:
        await channel.close()


async def test_reconnect_within_grace_resumes_and_grace_expiry_ends(users):
    """A participant whose socket drops is shown as reconnecting; rejoining with a
    fresh token and a fresh peer connection resumes media; when everyone is gone past
    the grace period the session ends."""
    clerk, approver = await users("chuangkou"), await users("shenpi")
    started = await clerk.post(f"/api/v1/cases/{await new_case(clerk)}/sessions", {"consent": True})
    session_id = started["session"]["id"]
    clerk_channel = await SignalChannel.open(clerk, session_id, started["token"])
    accepted = await approver.post(f"/api/v1/sessions/{session_id}/accept")
    approver_channel = await SignalChannel.open(approver, session_id, accepted["token"])
    clerk_peer = await connect_media(clerk_channel, ("face", "document", "audio"))
    approver_peer = await connect_media(approver_channel, ("face", "audio"))
    peers = [clerk_peer, approver_peer]
    try:
        await clerk_channel.close()  # the clerk's page drops
        await clerk_peer.close()
        await approver_channel.wait(
            "participants",
            lambda m: any(
                p["participant"] == "chuangkou" and p["state"] == "reconnecting"
                for p in m["participants"]
            ),
        )
        token = (await clerk.post(f"/api/v1/sessions/{session_id}/token"))["token"]
        clerk_channel = await SignalChannel.open(clerk, session_id, token)
        clerk_peer = await connect_media(clerk_channel, ("face", "document", "audio"))
        peers.append(clerk_peer)
        await wait_until(lambda: slot_for(approver_channel, "chuangkou", "document") is not None)
        await approver_channel.wait(
            "participants",
            lambda m: any(
                p["participant"] == "chuangkou" and p["state"] == "connected"
                for p in m["participants"]
            ),
        )
        mid = slot_for(approver_channel, "chuangkou", "document")
        before = len(approver_peer.received[mid].counters)
        await wait_until(
            lambda: len(approver_peer.received[mid].counters) > before + 10,
            what="media after rejoin",
        )

        await clerk_channel.close()
        await approver_channel.close()

        async def ended() -> bool:
            session = (await clerk.get(f"/api/v1/sessions/{session_id}"))["session"]
            return session["state"] == "ended" and session["end_reason"] == "all_left"

        await wait_until(ended, what="the session to end after the grace period")
    finally:
        for peer in peers:
            await peer.close()
