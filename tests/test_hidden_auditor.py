"""A hidden auditor (监察旁听) is not observable by the visible participants: its join,
media, media state, drop, rejoin, hang-up and snapshots send them nothing and change
nothing they see. Real aiortc peers on loopback, real sockets."""

from __future__ import annotations

from typing import Any

from coreview.simulate import SignalChannel, connect_media, slot_for
from recorder.auditlog import chain_of
from signaling.review import protocol
from signaling.web.appkeys import AUDIT
from tests.helpers import live_call, wait_until


async def received_document(channel: SignalChannel, peer: Any, frames: int = 5) -> None:
    await wait_until(lambda: slot_for(channel, "chuangkou", "document") is not None)
    track = peer.received[slot_for(channel, "chuangkou", "document")]
    before = len(track.counters)
    # a hidden auditor's picture starts on the recording's next cut (≤ 10 s)
    await wait_until(lambda: len(track.counters) >= before + frames, 30, "document frames")


async def settled(channel: SignalChannel, mark: int) -> list[dict[str, Any]]:
    """What the channel received since ``mark``, once a ping sent now is answered (the
    server writes to a socket in order, so anything sent before the pong is in)."""
    await channel.send(protocol.Ping())
    await channel.wait("pong")
    return channel.received[mark:]


async def test_auditor_join_media_drop_rejoin_and_leave_send_the_others_nothing(users, server):
    """While an auditor joins, receives media, toggles its media state, drops, rejoins,
    takes a snapshot and hangs up, the clerk and the approver receive no message at all,
    the approver's list of snapshots does not show the auditor's, and the case's record
    (API and page) shows the reviewers none of the auditor's events or snapshots."""
    clerk, approver, auditor = (
        await users("chuangkou"),
        await users("shenpi"),
        await users("jiancha"),
    )
    started, clerk_channel, approver_channel = await live_call(clerk, approver)
    session_id = started["session"]["id"]
    peers = [
        await connect_media(clerk_channel, ("face", "document", "audio")),
        await connect_media(approver_channel, ("face", "audio")),
    ]
    channels = [clerk_channel, approver_channel]
    try:
        await received_document(approver_channel, peers[1])
        await wait_until(lambda: slot_for(clerk_channel, "shenpi", "face") is not None)
        visible = (clerk_channel, approver_channel)
        for channel in visible:
            await settled(channel, 0)  # everything up to now is in
        marks = [len(c.received) for c in visible]
        slots_before = [c.latest("slots") for c in visible]

        token = (await auditor.post(f"/api/v1/sessions/{session_id}/token"))["token"]
        auditor_channel = await SignalChannel.open(auditor, session_id, token)
        channels.append(auditor_channel)
        peers.append(await connect_media(auditor_channel, ()))
        await received_document(auditor_channel, peers[-1])
        await auditor_channel.send(protocol.MediaState(False, False, False))
        await auditor_channel.wait(
            "participants",
            lambda m: any(
                p["participant"] == "jiancha" and not p["audio_on"] for p in m["participants"]
            ),
        )
        await auditor_channel.send(protocol.Chat("旁听"))
        await auditor_channel.wait("error", lambda m: m["code"] == "not_allowed")
        await auditor_channel.send(protocol.StillRequest(None))
        await auditor_channel.wait("error", lambda m: m["code"] == "not_allowed")
        shot = await auditor.post(
            f"/api/v1/sessions/{session_id}/snapshots",
            {"participant": "chuangkou", "source": "document"},
        )

        await auditor_channel.close()  # a drop: reconnecting for the grace period
        await peers[-1].close()
        chain = chain_of(started["session"]["case_no"])

        async def dropped() -> bool:
            events = await server.app[AUDIT].events(chain, kind="participant_reconnecting")
            return any(e.actor == "jiancha" for e in events)

        await wait_until(dropped, what="the auditor's drop")
        token = (await auditor.post(f"/api/v1/sessions/{session_id}/token"))["token"]
        auditor_channel = await SignalChannel.open(auditor, session_id, token)
        channels.append(auditor_channel)
        peers.append(await connect_media(auditor_channel, ()))
        await received_document(auditor_channel, peers[-1])
        await auditor_channel.send(protocol.Hangup())
        await wait_until(lambda: auditor_channel.socket.closed, what="the auditor's hang-up")

        for channel, mark, slots in zip(visible, marks, slots_before, strict=True):
            extra = await settled(channel, mark)
            assert extra == [], [m["type"] for m in extra]
            assert channel.latest("slots") == slots
        listed = await approver.get(f"/api/v1/sessions/{session_id}/stills")
        taken = [s["sha256"] for s in listed["snapshots"]]
        assert shot["snapshot"]["sha256"] not in taken
        own = await auditor.get(f"/api/v1/sessions/{session_id}/stills")
        assert shot["snapshot"]["sha256"] in [s["sha256"] for s in own["snapshots"]]

        # Nor does the case's record show the reviewers anything of the auditor.
        case_no = started["session"]["case_no"]
        for reviewer in (clerk, approver):
            record = await reviewer.get(f"/api/v1/cases/{case_no}/evidence")
            assert "jiancha" not in {e["actor"] for e in record["log"]["events"]}
            assert shot["snapshot"]["sha256"] not in [s["sha256"] for s in record["snapshots"]]
            async with reviewer.http.get(f"{reviewer.base_url}/cases/{case_no}") as response:
                page = await response.text()
            assert "jiancha" not in page and auditor.user["display_name"] not in page
        record = await auditor.get(f"/api/v1/cases/{case_no}/evidence")
        assert "auditor_joined" in {e["kind"] for e in record["log"]["events"]}
    finally:
        for peer in peers:
            await peer.close()
        for channel in channels:
            await channel.close()


async def test_a_visible_participant_is_still_announced_to_the_auditor(users, server):
    """The auditor sees everyone, itself included, and is told when a visible
    participant changes its media state (hidden is one-way)."""
    clerk, approver, auditor = (
        await users("chuangkou"),
        await users("shenpi"),
        await users("jiancha"),
    )
    started, clerk_channel, approver_channel = await live_call(clerk, approver)
    session_id = started["session"]["id"]
    token = (await auditor.post(f"/api/v1/sessions/{session_id}/token"))["token"]
    auditor_channel = await SignalChannel.open(auditor, session_id, token)
    try:
        listed = await auditor_channel.wait("participants")
        assert {p["participant"] for p in listed["participants"]} == {
            "chuangkou",
            "shenpi",
            "jiancha",
        }
        await clerk_channel.send(protocol.MediaState(False, True, True))
        await auditor_channel.wait(
            "participants",
            lambda m: any(
                p["participant"] == "chuangkou" and not p["audio_on"] for p in m["participants"]
            ),
        )
    finally:
        for channel in (clerk_channel, approver_channel, auditor_channel):
            await channel.close()
