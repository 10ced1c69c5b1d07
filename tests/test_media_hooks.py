"""Each private part of aiortc that media/hooks.py relies on is still there and still
behaves as assumed. An aiortc upgrade that changes any of them fails here first."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
from pathlib import Path

import aiortc
from aioice import Connection
from aiortc import RTCPeerConnection, RTCRtpReceiver, RTCRtpSender
from aiortc.rtcdtlstransport import RtpRouter
from aiortc.rtcrtpreceiver import StreamStatistics

from media import hooks


def test_aiortc_is_the_pinned_version():
    """The hooks were written and measured against one aiortc version."""
    assert aiortc.__version__ == hooks.PINNED_AIORTC
    hooks.check_aiortc()


def test_receiver_internals_used_by_tap_receiver():
    """tap_receiver replaces _handle_rtp_packet and reads the receiver's codecs,
    per-SSRC statistics, RTX map and RTCP SSRC."""
    assert list(inspect.signature(RTCRtpReceiver._handle_rtp_packet).parameters) == [
        "self",
        "packet",
        "arrival_time_ms",
    ]
    assert "packet" in inspect.signature(RTCRtpReceiver._handle_rtcp_packet).parameters
    source = inspect.getsource(RTCRtpReceiver.__init__)
    for name in ("__codecs", "__remote_streams", "__rtx_ssrc", "__rtcp_ssrc"):
        assert f"self.{name}" in source, name
    assert "self.__remote_streams.items()" in inspect.getsource(RTCRtpReceiver._run_rtcp)
    assert list(inspect.signature(StreamStatistics.add).parameters) == ["self", "packet"]


def test_sender_internals_used_for_forwarding():
    """Forwarding writes with the sender's SSRCs, feeds its SR counters and intercepts
    its RTCP handler; the SR loop reads exactly those counters."""
    source = inspect.getsource(RTCRtpSender.__init__)
    for name in (
        "_ssrc",
        "_rtx_ssrc",
        "__ntp_timestamp",
        "__rtp_timestamp",
        "__packet_count",
        "__octet_count",
    ):
        assert f"self.{name} =" in source, name
    rtcp = inspect.getsource(RTCRtpSender._run_rtcp)
    for name in ("__ntp_timestamp", "__rtp_timestamp", "__packet_count", "__octet_count"):
        assert f"self.{name}" in rtcp, name
    assert "packet" in inspect.signature(RTCRtpSender._handle_rtcp_packet).parameters


async def test_transceiver_and_transport_internals():
    """Negotiated codecs and header extensions live on the transceiver; the DTLS
    transport routes RTP by an SSRC table and sends through _send_rtp; the ICE gatherer
    wraps an aioice Connection whose candidate gathering we replace."""
    pc = RTCPeerConnection()
    try:
        transceiver = pc.addTransceiver("video", direction="recvonly")
        assert hasattr(transceiver, "_codecs") and hasattr(transceiver, "_headerExtensions")
        dtls = transceiver.receiver.transport
        assert isinstance(dtls._rtp_router, RtpRouter)
        assert isinstance(dtls._rtp_router.ssrc_table, dict)
        assert inspect.iscoroutinefunction(dtls._send_rtp)
        connection = dtls.transport.iceGatherer._connection
        assert isinstance(connection, Connection)
        assert isinstance(connection._protocols, list)
        assert list(inspect.signature(Connection.get_component_candidates).parameters)[:3] == [
            "self",
            "component",
            "addresses",
        ]
        assert "get_component_candidates(" in inspect.getsource(Connection.gather_candidates)
    finally:
        await pc.close()


def test_router_drops_rtx_without_the_fix():
    """The reason register_rtx_ssrcs exists: with two receivers sharing the RTX payload
    type, a packet from an unknown RTX SSRC is not routed."""
    router = RtpRouter()
    first, second = object(), object()
    router.register_receiver(first, ssrcs=[1], payload_types=[97, 98])
    router.register_receiver(second, ssrcs=[2], payload_types=[97, 98])
    packet = aiortc.rtp.RtpPacket(payload_type=98, ssrc=11)
    assert router.route_rtp(packet) is None
    router.ssrc_table[11] = first
    assert router.route_rtp(packet) is first


REPO = Path(__file__).resolve().parents[1]


def test_a_missing_internal_is_named_when_media_hooks_is_imported():
    """Importing media.hooks against an aiortc that lacks a hooked method or attribute
    fails at once with a HookError naming each missing part."""
    code = """
import aiortc.rtcrtpsender as sender, aiortc.rtcrtptransceiver as transceiver
del sender.RTCRtpSender._send_keyframe
original = transceiver.RTCRtpTransceiver.__init__
def init(self, *args, **kwargs):  # sets nothing itself: _codecs is no longer seen
    original(self, *args, **kwargs)
transceiver.RTCRtpTransceiver.__init__ = init
try:
    import media.hooks
except Exception as exc:
    print(type(exc).__name__, exc)
"""
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert done.stdout.startswith("HookError"), done.stdout + done.stderr
    assert "RTCRtpSender._send_keyframe()" in done.stdout
    assert "RTCRtpTransceiver._codecs" in done.stdout
    assert not hooks.missing_internals()


def test_no_aiortc_internal_is_used_outside_media_hooks():
    """Only media/hooks.py touches aiortc's private parts: no other module of the
    application or the bench names a hooked internal."""
    names: set[str] = set()
    for _cls, methods, attributes in hooks.HOOKED:
        names |= {m for m in methods if m.startswith("_")}
        names |= {a for a in attributes if not a.startswith("__")}
    # private names (mangled ones included: ._RTCRtpSender__...) of aiortc's classes
    pattern = re.compile(r"\.(_RTC\w+|" + "|".join(sorted(names)) + r")\b")
    offenders = [
        f"{path.relative_to(REPO)}:{number}: {line.strip()}"
        for package in ("media", "bench", "signaling", "recorder", "webui")
        for path in sorted((REPO / package).rglob("*.py"))
        if path != REPO / "media" / "hooks.py"
        for number, line in enumerate(path.read_text("utf-8").splitlines(), 1)
        if pattern.search(line)
    ]
    assert offenders == []
