"""Every use of aiortc internals, in one place, pinned to one aiortc version.

aiortc has no public API for forwarding RTP without decoding (see docs/aiortc-hooks.md).
Each function here names the private attribute it relies on; tests/test_media_hooks.py
fails if an aiortc upgrade changes any of them.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import struct
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import aiortc
import pylibsrtp
from aioice import Candidate, Connection
from aioice.candidate import candidate_foundation, candidate_priority
from aioice.ice import CandidatePair, StunProtocol
from aiortc import (
    RTCDtlsTransport,
    RTCIceGatherer,
    RTCPeerConnection,
    RTCRtpReceiver,
    RTCRtpSender,
    RTCRtpTransceiver,
    sdp,
)
from aiortc.rtcdtlstransport import RtpRouter
from aiortc.rtcdtlstransport import State as DtlsState
from aiortc.rtcrtpreceiver import StreamStatistics
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RTCP_PSFB_FIR,
    RTCP_PSFB_PLI,
    RTCP_RTPFB_NACK,
    RtcpPsfbPacket,
    RtcpRrPacket,
    RtcpRtpfbPacket,
    RtcpSrPacket,
    RtpPacket,
    pack_remb_fci,
    unpack_remb_fci,
)

from media import _fastpath, rtpread
from media.rtpread import RtpView

PINNED_AIORTC = "1.16.0"
URI_AUDIO_LEVEL = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"

PacketHandler = Callable[[RtpView], None]
"""Called with each media packet (RTX already unwrapped), as it arrives."""


class HookError(RuntimeError):
    """aiortc is not the version these hooks were written for."""


HOOKED: tuple[tuple[type, tuple[str, ...], tuple[str, ...]], ...] = (
    # (class, methods used or replaced, attributes its __init__ sets that we use)
    (
        RTCRtpReceiver,
        ("_handle_rtp_packet", "_handle_rtcp_packet"),
        ("__codecs", "__remote_streams", "__rtx_ssrc", "__rtcp_ssrc", "__nack_generator"),
    ),
    (
        RTCRtpSender,
        ("_handle_rtcp_packet", "_send_keyframe"),
        (
            "_ssrc",
            "_rtx_ssrc",
            "__ntp_timestamp",
            "__rtp_timestamp",
            "__packet_count",
            "__octet_count",
        ),
    ),
    (RTCRtpTransceiver, (), ("_codecs", "_headerExtensions")),
    (RTCDtlsTransport, ("_send_rtp",), ("_rtp_router",)),
    (RTCIceGatherer, (), ("_connection",)),
    (Connection, ("get_component_candidates",), ("_protocols",)),
    (StreamStatistics, ("add",), ()),
    # the per-packet fast path: rtp_sender, FastProtocol, fast_ingest
    (
        RTCDtlsTransport,
        ("_send_rtp",),
        ("_state", "_tx_srtp", "_rx_srtp", "_rtp_router", "_rtp_header_extensions_map"),
    ),
    (RtpRouter, ("route_rtp",), ()),
    (Connection, (), ("_nominated", "_protocols")),
    (CandidatePair, (), ("protocol", "remote_candidate")),
    (StunProtocol, ("datagram_received",), ()),
    (pylibsrtp.Session, (), ("_srtp",)),
)
"""Every aiortc/aioice internal used below, checked once when this module is imported."""


def missing_internals() -> list[str]:
    """The hooked internals this aiortc lacks (methods, and attributes set in __init__,
    read from its byte code)."""
    missing = []
    for cls, methods, attributes in HOOKED:
        missing += [f"{cls.__name__}.{m}()" for m in methods if not callable(getattr(cls, m, None))]
        init = vars(cls).get("__init__")
        names = init.__code__.co_names if init is not None else ()
        for attribute in attributes:
            mangled = f"_{cls.__name__}{attribute}" if attribute.startswith("__") else attribute
            if mangled not in names:
                missing.append(f"{cls.__name__}.{attribute}")
    return missing


def check_aiortc() -> None:
    """Refuse another aiortc than the pinned one, naming each hooked internal it lacks."""
    missing = missing_internals()
    if missing or aiortc.__version__ != PINNED_AIORTC:
        lacks = f"; it lacks {', '.join(missing)}" if missing else ""
        raise HookError(
            f"coreview's media hooks need aiortc {PINNED_AIORTC}, not {aiortc.__version__}{lacks}"
        )


check_aiortc()


# -- receiving side -----------------------------------------------------------------------


def tap_receiver(receiver: RTCRtpReceiver, on_packet: PacketHandler) -> PacketHandler:
    """Bypass depacketising, the jitter buffer and the decoder of ``receiver``.

    Keeps what feeds receiver reports (per-SSRC statistics, kept in ``_fastpath.Stats``:
    aiortc's ``StreamStatistics`` in C) and unwraps RTX; every media packet then goes to
    ``on_packet``. NACK and PLI are the caller's business. Returns
    the same handling for packets read elsewhere (``fast_ingest``).
    Relies on: ``RTCRtpReceiver._handle_rtp_packet`` (replaced on the instance) and the
    private ``__codecs``, ``__remote_streams``, ``__rtx_ssrc`` dicts.
    """
    codecs: dict[int, Any] = receiver._RTCRtpReceiver__codecs  # type: ignore[attr-defined]
    streams: dict[int, Any] = receiver._RTCRtpReceiver__remote_streams  # type: ignore[attr-defined]
    rtx_ssrcs: dict[int, int] = receiver._RTCRtpReceiver__rtx_ssrc  # type: ignore[attr-defined]

    apts: dict[int, int | None] = {}
    """Payload type → the type it retransmits (None: a media type)."""

    def deliver(packet: RtpView) -> None:
        payload_type = packet.payload_type
        codec = codecs.get(payload_type)
        if codec is None:
            return
        if payload_type in apts:
            apt = apts[payload_type]
        else:
            apt = apts[payload_type] = (
                codec.parameters.get("apt") if codec.mimeType.lower().endswith("/rtx") else None
            )
        stream = streams.get(packet.ssrc)
        if stream is None:
            stream = streams[packet.ssrc] = _fastpath.Stats(codec.clockRate)
        stream.add(packet)  # reads sequence_number, timestamp
        if apt is not None:
            original = rtx_ssrcs.get(packet.ssrc)
            if original is None or apt not in codecs:
                return
            unwrapped = rtpread.unwrap_rtx(packet, apt, original)
            if unwrapped is None:
                return
            packet = unwrapped
        on_packet(packet)

    async def handle(packet: RtpPacket, arrival_time_ms: int) -> None:
        deliver(
            RtpView(
                packet.payload_type,
                packet.marker,
                packet.sequence_number,
                packet.timestamp,
                packet.ssrc,
                packet.payload,
                packet.extensions.audio_level,
            )
        )

    receiver._handle_rtp_packet = handle  # type: ignore[method-assign]
    return deliver


def stream_statistics(receiver: RTCRtpReceiver, ssrc: int) -> _fastpath.Stats | None:
    """The statistics a tapped receiver keeps for ``ssrc`` (its ``__remote_streams``:
    ``_fastpath.Stats``, aiortc's ``StreamStatistics`` in C), if it has seen the SSRC."""
    stream = receiver._RTCRtpReceiver__remote_streams.get(ssrc)  # type: ignore[attr-defined]
    return stream if isinstance(stream, _fastpath.Stats) else None


def watch_sender_reports(
    receiver: RTCRtpReceiver, on_report: Callable[[RtcpSrPacket], None]
) -> None:
    """Call ``on_report`` with each RTCP sender report the receiver gets (it still
    handles them itself, for round-trip estimates). Relies on ``_handle_rtcp_packet``."""
    original = receiver._handle_rtcp_packet

    async def handle(packet: Any) -> None:
        if isinstance(packet, RtcpSrPacket):
            on_report(packet)
        await original(packet)

    receiver._handle_rtcp_packet = handle  # type: ignore[method-assign]


def remote_ssrcs(receiver: RTCRtpReceiver) -> list[int]:
    """Media SSRCs the receiver has seen packets from (its ``__remote_streams`` less the
    RTX SSRCs of its ``__rtx_ssrc``)."""
    streams: dict[int, StreamStatistics] = receiver._RTCRtpReceiver__remote_streams  # type: ignore[attr-defined]
    rtx_ssrcs: dict[int, int] = receiver._RTCRtpReceiver__rtx_ssrc  # type: ignore[attr-defined]
    return [ssrc for ssrc in streams if ssrc not in rtx_ssrcs]


def missing_packets(receiver: RTCRtpReceiver) -> list[int]:
    """Sequence numbers the receiver still misses (its ``__nack_generator``, which NACKs
    each only once, when found missing); empty for a receiver that does not NACK."""
    generator = receiver._RTCRtpReceiver__nack_generator  # type: ignore[attr-defined]
    return [] if generator is None else sorted(generator.missing)


def _rtcp_ssrc(receiver: RTCRtpReceiver) -> int | None:
    ssrc: int | None = receiver._RTCRtpReceiver__rtcp_ssrc  # type: ignore[attr-defined]
    return ssrc


def send_rtcp(receiver: RTCRtpReceiver, packet: Any) -> None:
    """Send feedback on the receiver's transport now (``rtp_sender``; a few packets a
    second, so the sender is not kept)."""
    rtp_sender(receiver.transport)(bytes(packet))


def send_nack(receiver: RTCRtpReceiver, media_ssrc: int, lost: list[int]) -> None:
    ssrc = _rtcp_ssrc(receiver)
    if ssrc is not None and lost:
        packet = RtcpRtpfbPacket(fmt=RTCP_RTPFB_NACK, ssrc=ssrc, media_ssrc=media_ssrc)
        packet.lost = sorted(lost)
        send_rtcp(receiver, packet)


def send_pli(receiver: RTCRtpReceiver, media_ssrc: int) -> None:
    ssrc = _rtcp_ssrc(receiver)
    if ssrc is not None:
        send_rtcp(receiver, RtcpPsfbPacket(fmt=RTCP_PSFB_PLI, ssrc=ssrc, media_ssrc=media_ssrc))


def send_remb(receiver: RTCRtpReceiver, bitrate: int, media_ssrcs: list[int]) -> None:
    ssrc = _rtcp_ssrc(receiver)
    if ssrc is not None and media_ssrcs:
        fci = pack_remb_fci(bitrate, media_ssrcs)
        send_rtcp(receiver, RtcpPsfbPacket(fmt=RTCP_PSFB_APP, ssrc=ssrc, media_ssrc=0, fci=fci))


def register_rtx_ssrcs(pc: RTCPeerConnection, remote: sdp.SessionDescription) -> None:
    """Route each receiver's RTX SSRC (from the remote description's FID groups) to it.
    aiortc's router knows only media SSRCs, and with two video tracks sharing one RTX
    payload type it drops retransmissions. Relies on the DTLS transport's
    ``_rtp_router.ssrc_table``."""
    by_mid = {t.mid: t for t in pc.getTransceivers()}
    for media in remote.media:
        transceiver = by_mid.get(media.rtp.muxId)
        if transceiver is None:
            continue
        router = transceiver.receiver.transport._rtp_router
        for group in media.ssrc_group:
            if group.semantic == "FID" and len(group.items) == 2:
                router.ssrc_table[int(group.items[1])] = transceiver.receiver


# -- sending side -------------------------------------------------------------------------


@dataclass
class SenderParams:
    """What an outgoing leg needs to write packets for one negotiated sender."""

    ssrc: int
    rtx_ssrc: int
    payload_type: int
    rtx_payload_type: int | None
    mime_type: str
    clock_rate: int
    mid: str | None
    extension_ids: dict[str, int]
    """Negotiated header extension IDs by URI."""


def sender_params(transceiver: RTCRtpTransceiver) -> SenderParams:
    """Available once the local description is set. Relies on ``transceiver._codecs``
    (negotiated, preferred first) and ``transceiver._headerExtensions``."""
    sender = transceiver.sender
    codecs = transceiver._codecs
    primary = codecs[0]
    if primary.payloadType is None:
        raise HookError("negotiated codec without payload type")
    rtx = next(
        (
            c.payloadType
            for c in codecs
            if c.mimeType.lower().endswith("/rtx")
            and c.parameters.get("apt") == primary.payloadType
        ),
        None,
    )
    ssrc, rtx_ssrc = sender_ssrcs(sender)
    return SenderParams(
        ssrc=ssrc,
        rtx_ssrc=rtx_ssrc,
        payload_type=primary.payloadType,
        rtx_payload_type=rtx,
        mime_type=primary.mimeType,
        clock_rate=primary.clockRate,
        mid=transceiver.mid,
        extension_ids={ext.uri: ext.id for ext in transceiver._headerExtensions},
    )


def codec_mime_type(transceiver: RTCRtpTransceiver) -> str:
    """The negotiated (preferred) codec, e.g. ``video/VP8``. Relies on ``_codecs``."""
    return str(transceiver._codecs[0].mimeType)


def sender_ssrcs(sender: RTCRtpSender) -> tuple[int, int]:
    """The sender's media and RTX SSRCs (``_ssrc``, ``_rtx_ssrc``)."""
    return sender._ssrc, sender._rtx_ssrc


def on_keyframe_request(sender: RTCRtpSender, callback: Callable[[], None]) -> None:
    """Call ``callback`` instead of flagging the encoder when a PLI/FIR reaches this
    sender (a sender fed encoded packets has no encoder to flag). Relies on
    ``RTCRtpSender._send_keyframe`` (replaced on the instance)."""
    sender._send_keyframe = callback  # type: ignore[method-assign]


def set_sender_report(
    sender: RTCRtpSender, ntp: int, rtp_timestamp: int, packets: int, octets: int
) -> None:
    """Values for the sender's next RTCP SR (its own ``_run_rtcp`` sends it).
    Relies on the private ``__ntp_timestamp``, ``__rtp_timestamp``, ``__packet_count``,
    ``__octet_count``."""
    sender._RTCRtpSender__ntp_timestamp = ntp  # type: ignore[attr-defined]
    sender._RTCRtpSender__rtp_timestamp = rtp_timestamp  # type: ignore[attr-defined]
    sender._RTCRtpSender__packet_count = packets  # type: ignore[attr-defined]
    sender._RTCRtpSender__octet_count = octets  # type: ignore[attr-defined]


@dataclass
class SenderFeedback:
    on_nack: Callable[[list[int]], None]
    on_keyframe_request: Callable[[], None]
    on_remb: Callable[[int], None]
    on_loss: Callable[[int], None]
    """The subscriber's reported fraction lost (of 256) for this sender."""


def intercept_sender_feedback(sender: RTCRtpSender, feedback: SenderFeedback) -> None:
    """Route a subscriber's NACK, PLI/FIR and REMB for this sender to ``feedback``;
    receiver reports still reach aiortc (for round-trip time and stats).
    Relies on ``RTCRtpSender._handle_rtcp_packet`` (replaced on the instance)."""
    original = sender._handle_rtcp_packet

    async def handle(packet: Any) -> None:
        if isinstance(packet, RtcpRtpfbPacket) and packet.fmt == RTCP_RTPFB_NACK:
            feedback.on_nack(list(packet.lost))
        elif isinstance(packet, RtcpPsfbPacket) and packet.fmt in (RTCP_PSFB_FIR, RTCP_PSFB_PLI):
            feedback.on_keyframe_request()
        elif isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_APP:
            try:
                bitrate, _ssrcs = unpack_remb_fci(packet.fci)
            except ValueError:
                return
            feedback.on_remb(bitrate)
        else:
            if isinstance(packet, RtcpRrPacket | RtcpSrPacket):
                for report in packet.reports:
                    if report.ssrc == sender._ssrc:
                        feedback.on_loss(report.fraction_lost)
            await original(packet)

    sender._handle_rtcp_packet = handle  # type: ignore[method-assign]


# -- ICE: announced addresses and a UDP port range --------------------------------------


def _bind(address: str, ports: Iterable[int]) -> socket.socket:
    last: OSError | None = None
    for port in ports:
        sock = socket.socket(
            socket.AF_INET6 if ":" in address else socket.AF_INET, socket.SOCK_DGRAM
        )
        try:
            sock.bind((address, port))
            return sock
        except OSError as exc:
            sock.close()
            if exc.errno == errno.EADDRNOTAVAIL:
                raise
            last = exc
    raise OSError(errno.EADDRINUSE, f"no free UDP port for {address}") from last


def control_host_candidates(
    pc: RTCPeerConnection,
    announced: tuple[str, ...],
    port_min: int,
    port_max: int,
    *,
    fast: bool = False,
) -> None:
    """Gather host candidates on the announced addresses (or this host's addresses),
    on ports within ``[port_min, port_max]`` (0 = any). An announced address that is not
    local (a NAT's public address) is announced while the socket listens on all
    interfaces. Call after ``setRemoteDescription`` and before ``createAnswer``. With
    ``fast``, the sockets can hand SRTP media to ``fast_ingest`` once it is attached.
    Relies on the ICE gatherer's ``_connection`` and aioice's ``get_component_candidates``."""
    ports: list[int] = list(range(port_min, port_max + 1)) if port_min and port_max else [0]
    for transceiver in pc.getTransceivers():
        connection = transceiver.receiver.transport.transport.iceGatherer._connection
        connection.get_component_candidates = _host_gatherer(connection, announced, ports, fast)  # type: ignore[method-assign,assignment]


def _host_gatherer(
    connection: Any, announced: tuple[str, ...], ports: list[int], fast: bool
) -> Callable[..., Awaitable[list[Candidate]]]:
    protocol_class = FastProtocol if fast else StunProtocol

    async def gather(component: int, addresses: list[str], **_ignored: Any) -> list[Candidate]:
        loop = asyncio.get_running_loop()
        candidates = []
        for address in announced or tuple(addresses):
            try:
                sock = _bind(address, ports)
            except OSError as exc:
                if exc.errno != errno.EADDRNOTAVAIL:
                    raise
                sock = _bind("0.0.0.0", ports)  # noqa: S104 - NAT: listen everywhere
            if fast:
                _enlarge_receive_buffer(sock)
            _transport, protocol = await loop.create_datagram_endpoint(
                lambda: protocol_class(connection), sock=sock
            )
            protocol.local_candidate = Candidate(
                foundation=candidate_foundation("host", "udp", address),
                component=component,
                transport="udp",
                priority=candidate_priority(component, "host"),
                host=address,
                port=sock.getsockname()[1],
                type="host",
            )
            connection._protocols.append(protocol)
            candidates.append(protocol.local_candidate)
        return candidates

    return gather


# -- the per-packet fast path (issue 10): a synchronous send and a direct ingest ---------


def rtp_sender(transport: RTCDtlsTransport, *, sync: bool = True) -> _fastpath.Sender:
    """Protect and send on ``transport`` without a coroutine per packet: SRTP (or SRTCP)
    with its keys, then ``sendto`` on the nominated pair's host socket, in C
    (``_fastpath.Sender``; this resolves a pair once, when it is first seen nominated).
    Another pair (a TURN relay), or ``sync=False``, goes through aiortc's own
    ``_send_rtp`` in a task. Packets sent before DTLS is up or after close are dropped
    (aiortc raises), as are packets too long to protect. Relies on
    ``RTCDtlsTransport._state``, ``_tx_srtp``, ``_send_rtp``, aioice
    ``Connection._nominated`` and ``CandidatePair.protocol``/``remote_addr``."""
    connection = transport.transport._connection
    tasks: set[asyncio.Future[None]] = set()

    def done(task: asyncio.Future[None]) -> None:
        tasks.discard(task)
        if not task.cancelled():
            task.exception()  # a ConnectionError while closing: nothing to do

    def later(data: bytes) -> None:
        task = asyncio.ensure_future(transport._send_rtp(data))
        tasks.add(task)
        task.add_done_callback(done)

    def resolve(pair: CandidatePair) -> tuple[Any, ...] | None:
        if not sync or pair.protocol.local_candidate.type != "host":
            return None
        udp = pair.protocol.transport
        sock = udp.get_extra_info("socket")  # none once closed: the Sender checks first
        host, port = pair.remote_addr[:2]
        return (udp, -1 if sock is None else sock.fileno(), host, port, transport._tx_srtp)

    return _fastpath.Sender(transport, DtlsState.CONNECTED, connection._nominated, resolve, later)


IGNORED_SSRCS = 256
"""SSRCs the fast ingest remembers to drop (no tap takes them); beyond, it starts over."""
RECEIVE_BUFFER = 4 << 20
"""Receive buffer asked for on a fast-ingest socket (bytes; the kernel caps it at
net.core.rmem_max): media is forwarded as it is read, so a burst waits in the socket."""


def _enlarge_receive_buffer(sock: socket.socket) -> None:
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
    except OSError:
        pass  # the default buffer still works


class FastProtocol(StunProtocol):
    """A server host candidate's socket: SRTP media goes straight to the attached
    ingest; STUN, DTLS and SRTCP go to aioice and aiortc as before (so sender and
    receiver reports, NACK, PLI and REMB keep working). Which is which follows aiortc's
    own test (``is_rtcp``: second byte 192-208)."""

    ingest: Callable[[bytes], None] | None = None

    def datagram_received(self, data: bytes | str, addr: tuple[Any, ...]) -> None:
        ingest = self.ingest
        if (
            ingest is not None
            and len(data) > 12
            and 127 < data[0] < 192  # type: ignore[operator]
            and not 191 < data[1] < 209  # type: ignore[operator]
        ):
            ingest(data)  # type: ignore[arg-type]
        else:
            super().datagram_received(data, addr)


def fast_ingest(pc: RTCPeerConnection, taps: Mapping[RTCRtpReceiver, PacketHandler]) -> bool:
    """Read incoming SRTP media of ``pc`` on its ``FastProtocol`` sockets: unprotect,
    parse the header and hand the packet to its receiver's tap (as
    ``tap_receiver`` returns it), in C (``_fastpath.Ingest``), without aiortc's queue,
    task switch and ``RtpPacket``.
    An SSRC not seen yet is routed once by aiortc's router (its rules: SSRC, MID, payload
    type); one no tap takes is remembered and dropped (or a malformed packet, alone). Call
    once DTLS is up; returns False if there is nothing to attach to (aiortc's
    path then stays in use). Relies on ``_rx_srtp``, ``_rtp_router``,
    ``_rtp_header_extensions_map``, ``RTCRtpTransceiver._headerExtensions`` and
    ``Connection._protocols``."""
    attached = False
    for transport in {t.receiver.transport for t in pc.getTransceivers()}:
        protocols = [
            p for p in transport.transport._connection._protocols if isinstance(p, FastProtocol)
        ]
        if transport._rx_srtp is None or not protocols:
            continue
        audio_ids = {
            t.receiver: next((e.id for e in t._headerExtensions if e.uri == URI_AUDIO_LEVEL), 0)
            for t in pc.getTransceivers()
            if t.kind == "audio"
        }
        ingest = _ingest(transport, taps, audio_ids)
        for protocol in protocols:
            protocol.ingest = ingest
        attached = True
    return attached


def _ingest(
    transport: RTCDtlsTransport,
    taps: Mapping[RTCRtpReceiver, PacketHandler],
    audio_ids: Mapping[RTCRtpReceiver, int],
) -> Callable[[bytes], None]:
    router = transport._rtp_router
    extensions = transport._rtp_header_extensions_map
    routes: dict[int, tuple[PacketHandler, int]] = {}
    """SSRC → (tap, audio level extension ID or 0)."""
    ignored: set[int] = set()
    """SSRCs routed nowhere or to a receiver without a tap."""

    def learn(data: bytes) -> tuple[PacketHandler, int] | None:
        ssrc = int.from_bytes(data[8:12], "big")
        if ssrc in ignored:
            return None
        try:
            receiver: Any = router.route_rtp(RtpPacket.parse(data, extensions))
        except (ValueError, struct.error):  # e.g. an extension of the wrong size
            return None
        tap = taps.get(receiver)
        if tap is None:
            if len(ignored) >= IGNORED_SSRCS:
                ignored.clear()
            ignored.add(ssrc)
            return None
        route = routes[ssrc] = (tap, audio_ids.get(receiver, 0))
        return route

    return _fastpath.Ingest(transport._rx_srtp, routes, learn)
