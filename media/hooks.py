"""Every use of aiortc internals, in one place, pinned to one aiortc version.

aiortc has no public API for forwarding RTP without decoding (see docs/aiortc-hooks.md).
Each function here names the private attribute it relies on; tests/test_media_hooks.py
fails if an aiortc upgrade changes any of them.
"""

from __future__ import annotations

import asyncio
import errno
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import aiortc
from aioice import Candidate, Connection
from aioice.candidate import candidate_foundation, candidate_priority
from aioice.ice import StunProtocol
from aiortc import (
    RTCDtlsTransport,
    RTCIceGatherer,
    RTCPeerConnection,
    RTCRtpReceiver,
    RTCRtpSender,
    RTCRtpTransceiver,
    sdp,
)
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
    unwrap_rtx,
)

PINNED_AIORTC = "1.16.0"

PacketHandler = Callable[[RtpPacket, int], Awaitable[None]]
"""Called with each media packet (RTX already unwrapped) and its arrival time in ms."""


class HookError(RuntimeError):
    """aiortc is not the version these hooks were written for."""


HOOKED: tuple[tuple[type, tuple[str, ...], tuple[str, ...]], ...] = (
    # (class, methods used or replaced, attributes its __init__ sets that we use)
    (
        RTCRtpReceiver,
        ("_handle_rtp_packet", "_handle_rtcp_packet"),
        ("__codecs", "__remote_streams", "__rtx_ssrc", "__rtcp_ssrc"),
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


def tap_receiver(receiver: RTCRtpReceiver, on_packet: PacketHandler) -> None:
    """Bypass depacketising, the jitter buffer and the decoder of ``receiver``.

    Keeps what feeds receiver reports (per-SSRC statistics) and unwraps RTX; every media
    packet then goes to ``on_packet``. NACK and PLI are the caller's business.
    Relies on: ``RTCRtpReceiver._handle_rtp_packet`` (replaced on the instance) and the
    private ``__codecs``, ``__remote_streams``, ``__rtx_ssrc`` dicts.
    """
    codecs: dict[int, Any] = receiver._RTCRtpReceiver__codecs  # type: ignore[attr-defined]
    streams: dict[int, StreamStatistics] = receiver._RTCRtpReceiver__remote_streams  # type: ignore[attr-defined]
    rtx_ssrcs: dict[int, int] = receiver._RTCRtpReceiver__rtx_ssrc  # type: ignore[attr-defined]

    rtx_types: dict[int, bool] = {}

    async def handle(packet: RtpPacket, arrival_time_ms: int) -> None:
        codec = codecs.get(packet.payload_type)
        if codec is None:
            return
        is_rtx = rtx_types.get(packet.payload_type)
        if is_rtx is None:
            is_rtx = rtx_types[packet.payload_type] = codec.mimeType.lower().endswith("/rtx")
        stream = streams.get(packet.ssrc)
        if stream is None:
            stream = streams[packet.ssrc] = StreamStatistics(codec.clockRate)
        stream.add(packet)
        if is_rtx:
            original = rtx_ssrcs.get(packet.ssrc)
            apt = codec.parameters.get("apt")
            if original is None or apt not in codecs or len(packet.payload) < 2:
                return
            packet = unwrap_rtx(packet, payload_type=apt, ssrc=original)
        await on_packet(packet, arrival_time_ms)

    receiver._handle_rtp_packet = handle  # type: ignore[method-assign]


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
    """SSRCs the receiver has seen packets from (its ``__remote_streams``)."""
    streams: dict[int, StreamStatistics] = receiver._RTCRtpReceiver__remote_streams  # type: ignore[attr-defined]
    return list(streams)


def _rtcp_ssrc(receiver: RTCRtpReceiver) -> int | None:
    ssrc: int | None = receiver._RTCRtpReceiver__rtcp_ssrc  # type: ignore[attr-defined]
    return ssrc


async def send_rtcp(receiver: RTCRtpReceiver, packet: Any) -> None:
    try:
        await receiver.transport._send_rtp(bytes(packet))
    except ConnectionError:
        pass


async def send_nack(receiver: RTCRtpReceiver, media_ssrc: int, lost: list[int]) -> None:
    ssrc = _rtcp_ssrc(receiver)
    if ssrc is not None and lost:
        packet = RtcpRtpfbPacket(fmt=RTCP_RTPFB_NACK, ssrc=ssrc, media_ssrc=media_ssrc)
        packet.lost = sorted(lost)
        await send_rtcp(receiver, packet)


async def send_pli(receiver: RTCRtpReceiver, media_ssrc: int) -> None:
    ssrc = _rtcp_ssrc(receiver)
    if ssrc is not None:
        await send_rtcp(
            receiver, RtcpPsfbPacket(fmt=RTCP_PSFB_PLI, ssrc=ssrc, media_ssrc=media_ssrc)
        )


async def send_remb(receiver: RTCRtpReceiver, bitrate: int, media_ssrcs: list[int]) -> None:
    ssrc = _rtcp_ssrc(receiver)
    if ssrc is not None and media_ssrcs:
        fci = pack_remb_fci(bitrate, media_ssrcs)
        await send_rtcp(
            receiver, RtcpPsfbPacket(fmt=RTCP_PSFB_APP, ssrc=ssrc, media_ssrc=0, fci=fci)
        )


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


async def send_rtp(sender: RTCRtpSender, data: bytes) -> None:
    """SRTP-protect with the leg's keys and send. Relies on ``transport._send_rtp``."""
    await sender.transport._send_rtp(data)


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
    on_nack: Callable[[list[int]], Awaitable[None]]
    on_keyframe_request: Callable[[], Awaitable[None]]
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
            await feedback.on_nack(list(packet.lost))
        elif isinstance(packet, RtcpPsfbPacket) and packet.fmt in (RTCP_PSFB_FIR, RTCP_PSFB_PLI):
            await feedback.on_keyframe_request()
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
    pc: RTCPeerConnection, announced: tuple[str, ...], port_min: int, port_max: int
) -> None:
    """Gather host candidates on the announced addresses (or this host's addresses),
    on ports within ``[port_min, port_max]`` (0 = any). An announced address that is not
    local (a NAT's public address) is announced while the socket listens on all
    interfaces. Call after ``setRemoteDescription`` and before ``createAnswer``.
    Relies on the ICE gatherer's ``_connection`` and aioice's ``get_component_candidates``."""
    ports: list[int] = list(range(port_min, port_max + 1)) if port_min and port_max else [0]
    for transceiver in pc.getTransceivers():
        connection = transceiver.receiver.transport.transport.iceGatherer._connection
        connection.get_component_candidates = _host_gatherer(connection, announced, ports)  # type: ignore[method-assign,assignment]


def _host_gatherer(
    connection: Any, announced: tuple[str, ...], ports: list[int]
) -> Callable[..., Awaitable[list[Candidate]]]:
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
            _transport, protocol = await loop.create_datagram_endpoint(
                lambda: StunProtocol(connection), sock=sock
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
