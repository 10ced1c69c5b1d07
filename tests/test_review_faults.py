"""Review sessions when things go wrong or get more crowded: queue timeout, co-review
(联审) by a second department, a hidden auditor, malformed SDP, a peer vanishing
mid-offer, a publisher losing its UDP path for a while."""

from __future__ import annotations

import asyncio
from pathlib import Path

from coreview.app import create_app
from coreview.simulate import ApiClient, ApiError, SignalChannel, connect_media, slot_for
from media.participant import SyntheticParticipant, make_sources
from signaling.review import protocol
from signaling.settings import Settings
from signaling.web.appkeys import AUDIT
from tests.helpers import demo_password, live_call, start_session, valid_id, wait_until
from tests.test_media_forwarding import on_outgoing


async def test_unaccepted_session_times_out_with_a_clear_message(aiohttp_server, data_dir: Path):
    """A session nobody accepts within the configured time ends as timed_out; the clerk
    is told in Chinese, the queue empties and a late accept is refused."""
    settings = Settings(
        data_dir=data_dir, announced_addresses=("127.0.0.1",), queue_timeout_seconds=1
    )
    server = await aiohttp_server(create_app(settings))
    clerk, approver = ApiClient(str(server.make_url(""))), ApiClient(str(server.make_url("")))
    try:
        await clerk.login("chuangkou", demo_password(data_dir, "chuangkou"))
        await approver.login("shenpi", demo_password(data_dir, "shenpi"))
        started = await start_session(clerk)
        channel = await SignalChannel.open(clerk, started["session"]["id"], started["token"])
        timed_out = await channel.wait("state", lambda m: m["state"] == "timed_out", limit=10)
        assert "超时" in timed_out["message"]
        assert (await approver.get("/api/v1/queue"))["items"] == []
        try:
            await approver.post(f"/api/v1/sessions/{started['session']['id']}/accept")
            raise AssertionError("a timed-out session was accepted")
        except ApiError as refused:
            assert (refused.status, refused.code) == (409, "session_timed_out")
        await channel.close()
    finally:
        await clerk.close()
        await approver.close()


async def test_second_department_joins_as_full_participant(users, server):
    """The accepting approver invites another department (联审); the invitation shows in
    that department's queue; its approver joins and sees and hears the clerk, and the
    clerk receives the new approver's face."""
    clerk, approver, second = (
        await users("chuangkou"),
        await users("shenpi"),
        await users("shenpi_rs"),
    )
    started, clerk_channel, approver_channel = await live_call(clerk, approver)
    session_id = started["session"]["id"]
    peers = [
        await connect_media(clerk_channel, ("face", "document", "audio")),
        await connect_media(approver_channel, ("face", "audio")),
    ]
    channels = [clerk_channel, approver_channel]
    try:
        await approver.post(f"/api/v1/sessions/{session_id}/invite", {"department": "LZ-RSJ"})
        queue = (await second.get("/api/v1/queue"))["items"]
        assert [(i["session_id"], i["invitation_from"]) for i in queue] == [
            (session_id, "柳州市市场监督管理局")
        ]
        joined = await second.post(f"/api/v1/sessions/{session_id}/join-invitation")
        second_channel = await SignalChannel.open(second, session_id, joined["token"])
        channels.append(second_channel)
        second_peer = await connect_media(second_channel, ("face", "audio"))
        peers.append(second_peer)
        await wait_until(
            lambda: (
                slot_for(second_channel, "chuangkou", "document") is not None
                and slot_for(clerk_channel, "shenpi_rs", "face") is not None
            ),
            what="slots for the co-reviewer",
        )
        document = second_peer.received[slot_for(second_channel, "chuangkou", "document")]
        back = peers[0].received[slot_for(clerk_channel, "shenpi_rs", "face")]
        await wait_until(lambda: len(document.counters) >= 10 and len(back.counters) >= 10)
        assert (await second.get("/api/v1/queue"))["items"] == []
        case_no = started["session"]["case_no"]
        assert (await second.get(f"/api/v1/cases/{case_no}"))["case"]["case_no"] == case_no
        await second.post(f"/api/v1/sessions/{session_id}/end")  # a co-reviewer may end it
        await clerk_channel.wait("state", lambda m: m["state"] == "ended")
    finally:
        for peer in peers:
            await peer.close()
        for channel in channels:
            await channel.close()


async def test_auditor_watches_hidden_and_is_logged(users, server):
    """An auditor in scope joins a live session hidden: receives the clerk's document,
    cannot publish or chat, is not listed to the others, and the join is in the case's
    audit log."""
    clerk, approver, auditor = (
        await users("chuangkou"),
        await users("shenpi"),
        await users("jiancha"),
    )
    started, clerk_channel, approver_channel = await live_call(clerk, approver)
    session_id = started["session"]["id"]
    clerk_peer = await connect_media(clerk_channel, ("face", "document", "audio"))
    peers = [clerk_peer]
    channels = [clerk_channel, approver_channel]
    try:
        token = (await auditor.post(f"/api/v1/sessions/{session_id}/token"))["token"]
        auditor_channel = await SignalChannel.open(auditor, session_id, token)
        channels.append(auditor_channel)
        joined_grant = next(m for m in auditor_channel.received if m["type"] == "participants")
        assert any(p["participant"] == "jiancha" for p in joined_grant["participants"])
        await auditor_channel.send(protocol.Chat("我来看看"))
        assert (await auditor_channel.wait("error"))["code"] == "not_allowed"
        auditor_peer = await connect_media(auditor_channel, ())
        peers.append(auditor_peer)
        await wait_until(lambda: slot_for(auditor_channel, "chuangkou", "document") is not None)
        document = auditor_peer.received[slot_for(auditor_channel, "chuangkou", "document")]
        await wait_until(lambda: len(document.counters) >= 10, what="auditor receives the document")
        for message in approver_channel.received + clerk_channel.received:
            if message["type"] == "participants":
                assert all(p["participant"] != "jiancha" for p in message["participants"])
    finally:
        for peer in peers:
            await peer.close()
        for channel in channels:
            await channel.close()
    chain = f"case:{started['session']['case_no']}"
    joins = await server.app[AUDIT].events(chain, kind="auditor_joined")
    assert [e.actor for e in joins] == ["jiancha"]


async def test_malformed_sdp_and_forbidden_source_leave_the_session_usable(users):
    """A malformed offer and an offer publishing a source the token does not grant are
    refused with stable codes; a correct offer afterwards works."""
    clerk, approver = await users("chuangkou"), await users("shenpi")
    started = await start_session(clerk)
    session_id = started["session"]["id"]
    accepted = await approver.post(f"/api/v1/sessions/{session_id}/accept")
    channel = await SignalChannel.open(approver, session_id, accepted["token"])
    try:
        await channel.send(protocol.Offer("v=0\r\nthis is not sdp\r\n", {}))
        assert (await channel.wait("error"))["code"] == "bad_sdp"
        await channel.send(protocol.Offer("v=0\r\n", {"0": "document"}))
        assert (await channel.wait("error"))["code"] == "source_not_allowed"
        peer = await connect_media(channel, ("face", "audio"))
        await peer.close()
    finally:
        await channel.close()


async def test_peer_vanishing_mid_offer_does_not_disturb_others(users):
    """A participant whose socket closes right after sending an offer is dropped to
    reconnecting; the other participant's media keeps flowing."""
    clerk, approver = await users("chuangkou"), await users("shenpi")
    started, clerk_channel, approver_channel = await live_call(clerk, approver)
    session_id = started["session"]["id"]
    clerk_peer = await connect_media(clerk_channel, ("face", "document", "audio"))
    ghost = SyntheticParticipant(make_sources(("face", "audio")))
    try:
        sdp, publish = await ghost.offer()
        await approver_channel.send(protocol.Offer(sdp, publish))
        await approver_channel.close()
        await clerk_channel.wait(
            "participants",
            lambda m: any(
                p["participant"] == "shenpi" and p["state"] == "reconnecting"
                for p in m["participants"]
            ),
        )
        token = (await approver.post(f"/api/v1/sessions/{session_id}/token"))["token"]
        approver_channel = await SignalChannel.open(approver, session_id, token)
        approver_peer = await connect_media(approver_channel, ("face", "audio"))
        await wait_until(lambda: slot_for(approver_channel, "chuangkou", "document") is not None)
        document = approver_peer.received[slot_for(approver_channel, "chuangkou", "document")]
        await wait_until(
            lambda: len(document.counters) >= 10, what="media after the vanished offer"
        )
        await approver_peer.close()
    finally:
        await ghost.close()
        await clerk_peer.close()
        await clerk_channel.close()
        await approver_channel.close()


async def test_media_resumes_after_the_server_loses_the_clerks_udp_for_10_s(users):
    """The server gets nothing from the clerk for 10 s (its UDP path gone). The
    connection and the session survive; when the path returns the server, which gave
    up on the outage, waits for a keyframe, asks for one, and numbers on without a
    hole: the approver's document track resumes within a second or two."""
    clerk, approver = await users("chuangkou"), await users("shenpi")
    started, clerk_channel, approver_channel = await live_call(clerk, approver)
    session_id = started["session"]["id"]
    clerk_peer = SyntheticParticipant(make_sources(("face", "document", "audio")))
    blackout = {"on": False}
    on_outgoing(clerk_peer, lambda _data: not blackout["on"])
    try:
        sdp, publish = await clerk_peer.offer()
        await clerk_channel.send(protocol.Offer(sdp, publish))
        await clerk_peer.accept((await clerk_channel.wait("answer"))["sdp"])
        approver_peer = await connect_media(approver_channel, ("face", "audio"))
        await wait_until(lambda: slot_for(approver_channel, "chuangkou", "document") is not None)
        document = approver_peer.received[slot_for(approver_channel, "chuangkou", "document")]
        await wait_until(lambda: len(document.counters) >= 10)
        blackout["on"] = True
        source = clerk_peer.sources["document"]
        lost_from = source.counter
        await wait_until(lambda: source.counter >= lost_from + 150, what="10 s of frames")
        blackout["on"] = False
        back_at = source.counter
        await wait_until(
            lambda: bool(document.counters) and document.counters[-1] >= back_at,
            limit=3,
            what="the document track to resume",
        )
        assert (await clerk.get(f"/api/v1/sessions/{session_id}"))["session"]["state"] == "live"
        await approver_channel.send(protocol.Ping())
        await approver_channel.wait("pong")
        await approver_peer.close()
    finally:
        await clerk_peer.close()
        await clerk_channel.close()
        await approver_channel.close()


async def test_clerk_hanging_up_while_waiting_cancels(users):
    """A clerk who hangs up before anyone accepted cancels the session: it leaves the
    queue at once instead of waiting for the timeout."""
    clerk, approver = await users("chuangkou"), await users("shenpi")
    started = await start_session(clerk)
    channel = await SignalChannel.open(clerk, started["session"]["id"], started["token"])
    assert len((await approver.get("/api/v1/queue"))["items"]) == 1
    await channel.send(protocol.Hangup())
    await channel.close()

    async def cancelled() -> bool:
        session = (await clerk.get(f"/api/v1/sessions/{started['session']['id']}"))["session"]
        return session["state"] == "cancelled"

    await wait_until(cancelled, what="the session to be cancelled")
    assert (await approver.get("/api/v1/queue"))["items"] == []


async def test_a_join_token_opens_one_socket_only(users):
    """A copied join token is refused once it has been used."""
    clerk = await users("chuangkou")
    started = await start_session(clerk)
    session_id = started["session"]["id"]
    channel = await SignalChannel.open(clerk, session_id, started["token"])
    try:
        socket = await clerk.http.ws_connect(f"{clerk.base_url}/api/v1/sessions/{session_id}/ws")
        await socket.send_str(protocol.Join(started["token"]).to_json())
        reply = await socket.receive_json()
        assert (reply["type"], reply["code"]) == ("error", "token_used")
        await socket.close()
    finally:
        await channel.close()


async def test_publishing_a_source_on_the_wrong_kind_is_refused(users):
    """Mapping a video transceiver to the audio source is refused (bad_publish_map)."""
    clerk, approver = await users("chuangkou"), await users("shenpi")
    started = await start_session(clerk)
    session_id = started["session"]["id"]
    channel = await SignalChannel.open(clerk, session_id, started["token"])
    await approver.post(f"/api/v1/sessions/{session_id}/accept")
    peer = SyntheticParticipant(make_sources(("face",)))
    try:
        sdp, publish = await peer.offer()
        await channel.send(protocol.Offer(sdp, {mid: "audio" for mid in publish}))
        assert (await channel.wait("error"))["code"] == "bad_publish_map"
    finally:
        await peer.close()
        await channel.close()


async def test_live_session_survives_a_restart_only_if_someone_rejoins(aiohttp_server, data_dir):
    """A live session outlasts a server restart: its participants are told the server
    restarts; if nobody rejoins within the grace period, it ends as all_left."""
    settings = Settings(
        data_dir=data_dir, announced_addresses=("127.0.0.1",), reconnect_grace_seconds=1
    )
    first = await aiohttp_server(create_app(settings))
    clerk, approver = ApiClient(str(first.make_url(""))), ApiClient(str(first.make_url("")))
    await clerk.login("chuangkou", demo_password(data_dir, "chuangkou"))
    await approver.login("shenpi", demo_password(data_dir, "shenpi"))
    started = await start_session(clerk)
    session_id = started["session"]["id"]
    await approver.post(f"/api/v1/sessions/{session_id}/accept")
    channel = await SignalChannel.open(clerk, session_id, started["token"])
    await first.close()
    assert (await channel.wait("error"))["code"] == "server_restart"
    assert channel.socket.close_code == 1012
    await clerk.close()
    await approver.close()

    second = await aiohttp_server(create_app(settings))
    auditor = ApiClient(str(second.make_url("")))
    try:
        await auditor.login("jiancha", demo_password(data_dir, "jiancha"))

        async def ended() -> bool:
            session = (await auditor.get(f"/api/v1/sessions/{session_id}"))["session"]
            return session["state"] == "ended" and session["end_reason"] == "all_left"

        await wait_until(ended, limit=10, what="the abandoned session to end")
    finally:
        await auditor.close()


async def test_concurrent_starts_open_one_session(users):
    """Many starts of the same case at once: exactly one session opens, the others are
    told one exists (the database decides, not a check-then-insert)."""
    clerk = await users("chuangkou")
    body = {
        "matter": "LZ-SCJG-0101",
        "applicant_name": "吴九",
        "id_number": valid_id(),
        "phone": "13800000000",
    }
    case_no = (await clerk.post("/api/v1/cases", body))["case"]["case_no"]
    results = await asyncio.gather(
        *(clerk.post(f"/api/v1/cases/{case_no}/sessions", {"consent": True}) for _ in range(12)),
        return_exceptions=True,
    )
    opened = [r for r in results if isinstance(r, dict)]
    refused = [r for r in results if isinstance(r, ApiError)]
    assert len(opened) == 1 and len(refused) == 11
    assert {(e.status, e.code) for e in refused} == {(409, "session_exists")}


async def test_offers_that_break_the_sdp_parser_get_bad_sdp(users):
    """Offers that make aiortc's parser raise odd exceptions are refused with bad_sdp;
    the participant stays connected and can still send a good offer."""
    clerk, approver = await users("chuangkou"), await users("shenpi")
    started = await start_session(clerk)
    session_id = started["session"]["id"]
    accepted = await approver.post(f"/api/v1/sessions/{session_id}/accept")
    channel = await SignalChannel.open(approver, session_id, accepted["token"])
    try:
        peer = SyntheticParticipant(make_sources(("face", "audio")))
        good, publish = await peer.offer()
        broken = [
            good.replace("a=ssrc:", "a=ssrc:x"),
            good.replace("a=ice-ufrag:", "a=ice-ufrag"),
            good.replace("a=rtpmap:", "a=rtpmap"),
            "m=audio\r\n",
        ]
        for sdp in broken:
            await channel.send(protocol.Offer(sdp, publish))
            assert (await channel.wait("error"))["code"] == "bad_sdp", sdp[:40]
        await channel.send(protocol.Offer(good, publish))
        await peer.accept((await channel.wait("answer"))["sdp"])
        await peer.close()
    finally:
        await channel.close()


async def test_joining_while_the_session_is_cancelled_is_told_it_was_cancelled(users):
    """A clerk's page joining at the moment the session is cancelled gets the final
    state (cancelled) and close code 4001, never a refusal, whichever comes first."""
    clerk = await users("chuangkou")
    for _ in range(8):
        started = await start_session(clerk)
        session_id = started["session"]["id"]

        async def join(session_id: str, token: str) -> list[dict]:
            socket = await clerk.http.ws_connect(
                f"{clerk.base_url}/api/v1/sessions/{session_id}/ws"
            )
            await socket.send_str(protocol.Join(token).to_json())
            received = [m.json() async for m in socket if m.type.name == "TEXT"]
            assert socket.close_code == 4001
            return received

        joining = asyncio.create_task(join(session_id, started["token"]))
        await clerk.post(f"/api/v1/sessions/{session_id}/cancel")
        received = await asyncio.wait_for(joining, 10)
        assert not [m for m in received if m["type"] == "error"]
        assert received[-1]["type"] == "state" and received[-1]["state"] == "cancelled"
