"""When the approvers leave a live session, the clerk is told and can put the same
session back in the department's queue, where another approver accepts and continues
it; the approvers are told when the clerk leaves. Real aiortc peers, real sockets."""

from __future__ import annotations

import pytest

from coreview.simulate import ApiClient, ApiError, SignalChannel, connect_media, slot_for
from recorder.auditlog import chain_of
from signaling.review import protocol
from signaling.web.appkeys import AUDIT
from tests.helpers import live_call, wait_until


@pytest.fixture
async def second_approver(users, server):
    """Another approver of the clerk's department (市场监管), logged in."""
    admin = await users("admin")
    await admin.post(
        "/api/v1/users",
        {
            "username": "shenpi_b",
            "display_name": "市场监管审批员乙",
            "role": "approver",
            "department": "LZ-SCJG",
            "password": "Approver-pass-2",
            "temporary": False,
        },
    )
    client = ApiClient(str(server.make_url("")))
    await client.login("shenpi_b", "Approver-pass-2")
    yield client
    await client.close()


async def test_approver_gone_clerk_requeues_and_another_approver_continues(
    users, server, second_approver
):
    """The approver's tab closes: after the grace period the clerk gets approvers_left;
    its requeue puts the same session back in the queue (waiting); another approver of
    the department accepts it and receives the clerk's document over the clerk's
    existing media connection, with the chat so far; the first approver may no longer
    join; the log shows the requeue."""
    clerk, approver = await users("chuangkou"), await users("shenpi")
    started, clerk_channel, approver_channel = await live_call(clerk, approver)
    session_id = started["session"]["id"]
    clerk_peer = await connect_media(clerk_channel, ("face", "document", "audio"))
    approver_peer = await connect_media(approver_channel, ("face", "audio"))
    peers = [clerk_peer, approver_peer]
    channels = [clerk_channel]
    try:
        await clerk_channel.send(protocol.Chat("请看身份证"))
        await approver_channel.wait("chat_posted")
        await approver_channel.close()  # the tab closes: a drop, no hang-up
        await approver_peer.close()
        left = await clerk_channel.wait("notice", lambda m: m["code"] == "approvers_left")
        assert "重新排队" in left["message"]
        assert not any(
            p["role"] == "approver" for p in clerk_channel.latest("participants")["participants"]
        )
        assert (await clerk.get(f"/api/v1/sessions/{session_id}"))["session"]["state"] == "live"

        await clerk_channel.send(protocol.Requeue())

        async def requeued() -> bool:
            session = (await clerk.get(f"/api/v1/sessions/{session_id}"))["session"]
            return session["state"] == "waiting"

        await wait_until(requeued, what="the session back in the queue")
        await clerk_channel.wait("state", lambda m: m["state"] == "waiting")
        queue = (await second_approver.get("/api/v1/queue"))["items"]
        assert [item["session_id"] for item in queue] == [session_id]
        assert queue[0]["waiting_seconds"] < 5  # counted from the requeue
        with pytest.raises(ApiError) as refused:
            await approver.post(f"/api/v1/sessions/{session_id}/token")
        assert refused.value.code == "out_of_scope"

        accepted = await second_approver.post(f"/api/v1/sessions/{session_id}/accept")
        assert accepted["session"]["id"] == session_id
        await clerk_channel.wait("state", lambda m: m["state"] == "live")
        second_channel = await SignalChannel.open(second_approver, session_id, accepted["token"])
        channels.append(second_channel)
        history = await second_channel.wait("chat_history")
        assert [m["text"] for m in history["messages"]] == ["请看身份证"]
        second_peer = await connect_media(second_channel, ("face", "audio"))
        peers.append(second_peer)
        await wait_until(lambda: slot_for(second_channel, "chuangkou", "document") is not None)
        document = second_peer.received[slot_for(second_channel, "chuangkou", "document")]
        await wait_until(lambda: len(document.counters) >= 10, what="the document resumes")
        assert [
            e.actor
            for e in await server.app[AUDIT].events(
                chain_of(started["session"]["case_no"]), kind="session_requeued"
            )
        ] == ["chuangkou"]
    finally:
        for peer in peers:
            await peer.close()
        for channel in channels:
            await channel.close()


async def test_the_approver_is_told_when_the_clerk_hangs_up(users):
    """The clerk hangs up: the approver gets clerk_left saying so, and so does the
    approver's page when it joins again later (not a reasonless 不在会话中: seen in
    Chromium as the banner changing after the hang-up); the session stays live for the
    approver to end."""
    clerk, approver = await users("chuangkou"), await users("shenpi")
    started, clerk_channel, approver_channel = await live_call(clerk, approver)
    session_id = started["session"]["id"]
    channels = [clerk_channel, approver_channel]
    try:
        await clerk_channel.send(protocol.Hangup())
        told = await approver_channel.wait(
            "notice", lambda m: m["code"] == "clerk_left" and "已挂断" in m["message"]
        )
        assert told["message"] == "窗口人员已离开本次审办（已挂断）。"
        token = (await approver.post(f"/api/v1/sessions/{session_id}/token"))["token"]
        approver_channel = await SignalChannel.open(approver, session_id, token)
        channels.append(approver_channel)
        again = await approver_channel.wait("notice", lambda m: m["code"] == "clerk_left")
        assert again["message"] == "窗口人员已离开本次审办（已挂断）。"
        await approver_channel.send(protocol.End())
        await approver_channel.wait("state", lambda m: m["state"] == "ended")
    finally:
        for channel in channels:
            await channel.close()


async def test_requeue_is_refused_unless_the_clerk_is_alone_in_a_live_session(users):
    """The approver may not requeue (not_allowed); the clerk may not while an approver
    is there (approver_present); nothing changes."""
    clerk, approver = await users("chuangkou"), await users("shenpi")
    started, clerk_channel, approver_channel = await live_call(clerk, approver)
    session_id = started["session"]["id"]
    try:
        await approver_channel.send(protocol.Requeue())
        assert (await approver_channel.wait("error"))["code"] == "not_allowed"
        await clerk_channel.send(protocol.Requeue())
        refused = await clerk_channel.wait("error")
        assert refused["code"] == "approver_present" and "不能重新排队" in refused["message"]
        assert (await clerk.get(f"/api/v1/sessions/{session_id}"))["session"]["state"] == "live"
        assert not [m for m in clerk_channel.received if m["type"] == "notice"]
    finally:
        await clerk_channel.close()
        await approver_channel.close()
