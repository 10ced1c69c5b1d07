"""The server's log of a real ``coreview serve`` at INFO: session transitions with ids,
no personal data, and no ICE/DTLS detail (aioice and aiortc log at DEBUG only)."""

from __future__ import annotations

import logging

from coreview.cli import configure_logging
from coreview.simulate import ApiClient, SignalChannel, connect_media, slot_for
from signaling.review import protocol
from tests.helpers import start_session, valid_id, wait_until
from tests.live import LiveServer

pytest_plugins = ("tests.live",)


async def test_info_log_shows_session_transitions_and_no_ice_steps(live_server: LiveServer):
    """A whole session through a real server: its log at INFO names the session's start,
    accept and end by id, holds no applicant data and no aioice/aiortc lines."""
    clerk, approver = ApiClient(live_server.url), ApiClient(live_server.url)
    peers = []
    try:
        await clerk.login("chuangkou", live_server.password("chuangkou"))
        await approver.login("shenpi", live_server.password("shenpi"))
        started = await start_session(clerk)
        session_id = started["session"]["id"]
        clerk_channel = await SignalChannel.open(clerk, session_id, started["token"])
        accepted = await approver.post(f"/api/v1/sessions/{session_id}/accept")
        approver_channel = await SignalChannel.open(approver, session_id, accepted["token"])
        peers.append(await connect_media(clerk_channel, ("face", "document", "audio")))
        peers.append(await connect_media(approver_channel, ("face", "audio")))
        await wait_until(
            lambda: slot_for(approver_channel, "chuangkou", "document") is not None,
            what="the document reaches the approver",
        )
        await approver_channel.send(protocol.End())
        await clerk_channel.wait("state", lambda m: m["state"] == "ended")
        for channel in (clerk_channel, approver_channel):
            await channel.close()

        def logged() -> bool:
            return f"session {session_id} ended" in live_server.log_path.read_text("utf-8")

        await wait_until(logged, what="the end in the server's log")
    finally:
        for peer in peers:
            await peer.close()
        await clerk.close()
        await approver.close()
    log = live_server.log_path.read_text("utf-8")
    for step in ("started", "accepted", "ended"):
        assert f"session {session_id} {step}" in log, step
    assert started["session"]["case_no"] in log
    lines = log.splitlines()
    assert not [line for line in lines if " aioice." in line or " aiortc." in line]
    assert "钱七" not in log and valid_id() not in log


def test_debug_level_lets_ice_detail_through():
    """At DEBUG the media libraries log their detail too; at INFO only their warnings."""
    root = logging.getLogger()
    saved = root.level, list(root.handlers)
    try:
        configure_logging("INFO")
        assert logging.getLogger("aioice.ice").getEffectiveLevel() == logging.WARNING
        assert logging.getLogger("aiortc.rtcdtlstransport").getEffectiveLevel() == logging.WARNING
        assert logging.getLogger("signaling.review.sessions").isEnabledFor(logging.INFO)
        configure_logging("DEBUG")
        assert logging.getLogger("aioice.ice").isEnabledFor(logging.DEBUG)
        assert logging.getLogger("aiortc.rtcdtlstransport").isEnabledFor(logging.DEBUG)
    finally:
        for name in ("aioice", "aiortc"):
            logging.getLogger(name).setLevel(logging.NOTSET)
        root.setLevel(saved[0])
        root.handlers[:] = saved[1]
