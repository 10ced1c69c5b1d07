"""Each private part of aiortc that media/hooks.py relies on is still there and still
behaves as assumed. An aiortc upgrade that changes any of them fails here first."""

from __future__ import annotations

import asyncio
import inspect
import re
import socket
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiortc
from aioice import Candidate, Connection, stun
from aioice.ice import CandidatePair, StunProtocol
from aiortc import RTCDtlsTransport, RTCPeerConnection, RTCRtpReceiver, RTCRtpSender
from aiortc.rtcdtlstransport import RtpRouter
from aiortc.rtcdtlstransport import State as DtlsState
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtcrtpreceiver import NackGenerator, StreamStatistics
from aiortc.rtp import RTCP_PSFB_PLI, HeaderExtensionsMap, RtcpPsfbPacket, RtpPacket
from pylibsrtp import Policy, Session

from media import hooks
from media.rtpread import RtpView
from media.rtpwrite import URI_ABS_SEND_TIME, PacketWriter
from tests.helpers import wait_until


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


def test_missing_packets_reads_the_nack_generator():
    """The synthetic participant re-NACKs what aiortc's NackGenerator still misses (aiortc
    NACKs each loss once): a gap stays in ``missing`` until filled."""
    generator = NackGenerator()
    for seq in (10, 11, 14):
        generator.add(RtpPacket(sequence_number=seq))
    receiver: Any = SimpleNamespace(_RTCRtpReceiver__nack_generator=generator)
    assert hooks.missing_packets(receiver) == [12, 13]
    generator.add(RtpPacket(sequence_number=12))
    assert hooks.missing_packets(receiver) == [13]
    assert hooks.missing_packets(SimpleNamespace(_RTCRtpReceiver__nack_generator=None)) == []
    assert "self.__nack_generator" in inspect.getsource(RTCRtpReceiver.__init__)


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
        names |= {a for a in attributes if a.startswith("_") and not a.startswith("__")}
    # private names (mangled ones included: ._RTCRtpSender__...) of aiortc's classes, not
    # an object's own attribute of the same name (self._buffer)
    pattern = re.compile(r"(?<!\bself)\.(_RTC\w+|" + "|".join(sorted(names)) + r")\b")
    offenders = [
        f"{path.relative_to(REPO)}:{number}: {line.strip()}"
        for package in ("coreview", "media", "bench", "signaling", "recorder", "webui")
        for path in sorted((REPO / package).rglob("*.py"))
        if path != REPO / "media" / "hooks.py"
        for number, line in enumerate(path.read_text("utf-8").splitlines(), 1)
        if pattern.search(line)
    ]
    assert offenders == []


# -- the per-packet fast path -------------------------------------------------------------


def test_fast_path_mirrors_aiortcs_own_reading():
    """FastProtocol takes what aiortc's DTLS transport would treat as SRTP media (first
    byte 128-191, not RTCP by ``is_rtcp``); aioice's sender writes to the nominated
    pair's socket at its remote address; the router learns SSRCs by route_rtp."""
    recv_next = inspect.getsource(RTCDtlsTransport._recv_next)
    assert "first_byte > 127 and first_byte < 192 and self._rx_srtp" in recv_next
    assert "if is_rtcp(data):" in recv_next
    assert "msg[1] >= 192 and msg[1] <= 208" in inspect.getsource(aiortc.rtp.is_rtcp)
    sendto = inspect.getsource(Connection.sendto)
    assert "self._nominated.get(component)" in sendto
    assert "active_pair.protocol.send_data(data, active_pair.remote_addr)" in sendto
    assert "self.transport.sendto(data, addr)" in inspect.getsource(StunProtocol.send_data)
    assert isinstance(inspect.getattr_static(CandidatePair, "remote_addr"), property)
    send_rtp = inspect.getsource(RTCDtlsTransport._send_rtp)
    assert "self._tx_srtp.protect_rtcp(data)" in send_rtp
    assert "self._tx_srtp.protect(data)" in send_rtp
    assert "self._state != State.CONNECTED" in send_rtp
    assert "ssrc_table" in inspect.getsource(RtpRouter.route_rtp)


def srtp_pair() -> tuple[Session, Session]:
    """A sending and a receiving SRTP session with one key."""
    key = bytes(range(30))
    profile = Policy.SRTP_PROFILE_AES128_CM_SHA1_80
    tx = Session(Policy(key=key, ssrc_type=Policy.SSRC_ANY_OUTBOUND, srtp_profile=profile))
    rx = Session(Policy(key=key, ssrc_type=Policy.SSRC_ANY_INBOUND, srtp_profile=profile))
    return tx, rx


async def test_fast_protocol_sends_media_to_the_ingest_and_the_rest_to_aioice():
    """Media goes to the attached ingest; RTCP, DTLS and anything before the ingest is
    attached go to aioice's connection; a STUN request still reaches ICE."""
    to_aioice: list[bytes] = []
    requests: list[stun.Message] = []
    connection = SimpleNamespace(
        data_received=lambda data, component: to_aioice.append(data),
        request_received=lambda message, addr, protocol: requests.append(message),
    )
    protocol = hooks.FastProtocol(connection)  # type: ignore[arg-type]
    protocol.local_candidate = Candidate("1", 1, "udp", 1, "127.0.0.1", 5000, "host")
    media = PacketWriter().write(96, 1, 1, 2, 3, b"payload", 0)
    rtcp = bytes(RtcpPsfbPacket(fmt=RTCP_PSFB_PLI, ssrc=1, media_ssrc=2))
    addr = ("127.0.0.1", 6000)
    protocol.datagram_received(media, addr)
    assert to_aioice == [media]
    ingested: list[bytes] = []
    protocol.ingest = ingested.append
    for data in (media, rtcp, b"\x16\xfe\xfd" + bytes(20)):
        protocol.datagram_received(data, addr)
    assert ingested == [media]
    assert to_aioice == [media, rtcp, b"\x16\xfe\xfd" + bytes(20)]
    request = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST)
    protocol.datagram_received(bytes(request), addr)
    assert [r.transaction_id for r in requests] == [request.transaction_id]


def test_fast_ingest_unprotects_parses_and_routes_learning_ssrcs_once():
    """A packet of an SSRC seen before goes straight to its receiver's tap; an unknown
    SSRC is routed once by aiortc's router (here by payload type); an unroutable SSRC is
    asked about once and then dropped; a forged packet, or one whose header extension
    aiortc cannot read, is dropped; audio receivers get the audio level."""
    tx, rx = srtp_pair()
    router = RtpRouter()
    video, audio = RTCRtpReceiver.__new__(RTCRtpReceiver), RTCRtpReceiver.__new__(RTCRtpReceiver)
    router.register_receiver(video, ssrcs=[1111], payload_types=[96])
    router.register_receiver(audio, ssrcs=[2222], payload_types=[111])
    routed: list[int] = []
    route_rtp = router.route_rtp

    def spy(packet: aiortc.rtp.RtpPacket) -> Any:
        routed.append(packet.ssrc)
        return route_rtp(packet)

    router.route_rtp = spy  # type: ignore[method-assign]
    extensions = HeaderExtensionsMap()
    extensions.configure(
        RTCRtpParameters(
            headerExtensions=[RTCRtpHeaderExtensionParameters(id=3, uri=URI_ABS_SEND_TIME)]
        )
    )
    transport = SimpleNamespace(
        _rx_srtp=rx, _rtp_router=router, _rtp_header_extensions_map=extensions
    )
    seen: dict[str, list[RtpView]] = {"video": [], "audio": []}
    ingest = hooks._ingest(
        transport,  # type: ignore[arg-type]
        {video: seen["video"].append, audio: seen["audio"].append},
        {audio: 5},
    )
    writer = PacketWriter(audio_level_id=5)
    for seq, (payload_type, ssrc) in enumerate(
        [(96, 1111), (96, 1111), (111, 2222), (96, 3333), (96, 3333), (50, 4444), (50, 4444)]
    ):
        level = (True, 33) if payload_type == 111 else None
        ingest(tx.protect(writer.write(payload_type, 0, seq, 0, ssrc, b"data", 0, level)))
    forged = bytearray(tx.protect(writer.write(96, 0, 99, 0, 1111, b"data", 0)))
    forged[-1] ^= 1
    ingest(bytes(forged))
    short_time = b"\x90\x60\x00\x64" + bytes(4) + (5555).to_bytes(4, "big")
    ingest(tx.protect(short_time + b"\xbe\xde\x00\x01\x31\x00\x00\x00" + b"data"))
    assert [p.sequence_number for p in seen["video"]] == [0, 1, 3, 4]
    assert [(p.ssrc, p.audio_level) for p in seen["audio"]] == [(2222, (True, 33))]
    assert routed == [1111, 2222, 3333, 4444]


async def test_rtp_sender_sends_at_once_on_a_host_pair_else_through_aiortc():
    """Synchronous: SRTP or SRTCP with the transport's keys, then the nominated host
    pair's socket at the pair's remote address (a newly nominated pair is taken at
    once); nothing before DTLS is up, without a pair, after close, once the pair's socket
    is closing, or too long to protect; a relayed pair (TURN) or ``sync=False`` goes
    through aiortc's ``_send_rtp``."""
    tx, rx = srtp_pair()
    loop = asyncio.get_running_loop()
    udp, _protocol = await loop.create_datagram_endpoint(
        asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0)
    )
    peers = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2)]
    for peer in peers:
        peer.bind(("127.0.0.1", 0))
        peer.setblocking(False)
    through_aiortc: list[bytes] = []

    async def send_rtp(data: bytes) -> None:
        through_aiortc.append(data)

    def pair(kind: str, peer: socket.socket) -> CandidatePair:
        local = SimpleNamespace(local_candidate=SimpleNamespace(type=kind), transport=udp)
        remote = Candidate("2", 1, "udp", 1, "127.0.0.1", peer.getsockname()[1], "host")
        return CandidatePair(local, remote)  # type: ignore[arg-type]

    def received(peer: socket.socket) -> list[bytes]:
        packets = []
        while True:
            try:
                data, addr = peer.recvfrom(2048)
            except BlockingIOError:
                return packets
            assert addr == udp.get_extra_info("sockname")
            packets.append(data)

    connection = SimpleNamespace(_nominated={})
    transport: Any = SimpleNamespace(
        _state=DtlsState.NEW,
        _tx_srtp=tx,
        _send_rtp=send_rtp,
        transport=SimpleNamespace(_connection=connection),
    )
    send = hooks.rtp_sender(transport)
    media = [PacketWriter().write(96, 0, seq, 0, 1111, b"data", 0) for seq in range(6)]
    rtcp = bytes(RtcpPsfbPacket(fmt=RTCP_PSFB_PLI, ssrc=1, media_ssrc=2))
    send(media[0])  # DTLS not up
    transport._state = DtlsState.CONNECTED
    send(media[0])  # no nominated pair
    connection._nominated[1] = pair("host", peers[0])
    send(media[1])
    send(rtcp)
    send(PacketWriter().write(96, 0, 9, 0, 1111, bytes(1400), 0))  # too long to protect
    await asyncio.sleep(0.05)  # ok-sleep: loopback delivery of what was sent
    first = received(peers[0])
    assert len(first) == 2
    assert rx.unprotect(first[0]) == media[1]
    assert rx.unprotect_rtcp(first[1]) == rtcp
    assert (send.sent, send.dropped) == (2, 1)
    connection._nominated[1] = pair("host", peers[1])
    send(media[2])
    transport._state = DtlsState.CLOSED
    send(media[3])
    transport._state = DtlsState.CONNECTED
    connection._nominated[1] = pair("relay", peers[0])
    send(media[4])
    connection._nominated[1] = pair("host", peers[0])
    udp.close()
    send(media[5])  # the socket is closing: never touched
    hooks.rtp_sender(transport, sync=False)(rtcp)
    await wait_until(lambda: len(through_aiortc) == 2, what="both sent through aiortc")
    assert through_aiortc == [media[4], rtcp]
    await asyncio.sleep(0.05)  # ok-sleep: loopback delivery of what was sent
    assert [rx.unprotect(p) for p in received(peers[1])] == [media[2]]
    assert received(peers[0]) == []
    assert send.sent == 3
    for peer in peers:
        peer.close()
