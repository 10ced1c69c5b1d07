"""RTP-level forwarding through a MediaRoom, with real aiortc peers on loopback; every
test runs on both media paths: the fast one (packets read off the socket, sent at once)
on uvloop, and aiortc's (its transport, receiver and coroutines) on the standard loop;
the flow test on all four pairs (tests/conftest.py, PRODUCTION_PAIRS)."""

from __future__ import annotations

import hashlib
import itertools
import socket
import time
from collections.abc import Callable
from typing import Any

import pytest
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RtcpPacket,
    RtcpPsfbPacket,
    RtcpReceiverInfo,
    RtcpRrPacket,
    RtcpSrPacket,
    RtpPacket,
    is_rtcp,
    unpack_remb_fci,
)

from media import hooks
from media.forwarder import open_tracks
from media.keyframes import vp8_keyframe_start
from media.participant import SyntheticParticipant, make_sources
from media.room import PUBLISH_BITRATE, MediaConfig, MediaRoom
from tests.helpers import wait_until

pytestmark = pytest.mark.asyncio(loop_factories=["asyncio", "uvloop"])
"""Forwarding runs on the standard loop and on uvloop (media/loops.py)."""


@pytest.fixture(autouse=True, params=[("fast", "sync"), ("aiortc", "async")], ids=lambda p: p[0])
def media_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The ingest and send modes every MediaConfig of the test gets."""
    ingest, send = request.param
    monkeypatch.setenv("COREVIEW_MEDIA_INGEST", ingest)
    monkeypatch.setenv("COREVIEW_MEDIA_SEND", send)
    return str(ingest)


def config() -> MediaConfig:
    return MediaConfig(announced_addresses=("127.0.0.1",))


def transport(peer: SyntheticParticipant) -> Any:
    return peer.pc.getTransceivers()[0].sender.transport


def on_outgoing(peer: SyntheticParticipant, keep: Callable[[bytes], bool]) -> None:
    """Filter (or observe) what the peer sends, as plaintext RTP/RTCP, before SRTP."""
    dtls = transport(peer)
    original = dtls._send_rtp

    async def send(data: bytes) -> None:
        if keep(data):
            await original(data)

    dtls._send_rtp = send


def on_incoming_rtp(peer: SyntheticParticipant, keep: Callable[[bytes], bool]) -> None:
    """Filter (or observe) the plaintext RTP the peer receives."""
    dtls = transport(peer)
    original = dtls._handle_rtp_data

    async def handle(data: bytes, arrival_time_ms: int) -> None:
        if keep(data):
            await original(data, arrival_time_ms)

    dtls._handle_rtp_data = handle


def lose_every(n: int) -> Callable[[bytes], bool]:
    """Drop the first sending of each RTP packet whose sequence number is a multiple of
    ``n`` (never RTCP): the same packets drop on every run, however loaded the machine.
    A retransmission (RTX: another SSRC and sequence space) is dropped only by its own
    number."""
    dropped: set[tuple[int, int]] = set()

    def keep(data: bytes) -> bool:
        if is_rtcp(data):
            return True
        ssrc, seq = int.from_bytes(data[8:12], "big"), int.from_bytes(data[2:4], "big")
        if seq % n or (ssrc, seq) in dropped:
            return True
        dropped.add((ssrc, seq))
        return False

    return keep


async def connect(room: MediaRoom, name: str, peer: SyntheticParticipant) -> None:
    offer, mapping = await peer.offer()
    publish = frozenset(mapping.values())
    await peer.accept(await room.connect(name, offer, mapping, publish))


def slot_of(room: MediaRoom, subscriber: str, publisher: str, source: str) -> str:
    for mid, shown in room.slots(subscriber).items():
        if shown == {"participant": publisher, "source": source}:
            return mid
    raise AssertionError(f"{subscriber} has no slot for {publisher}/{source}")


class Pair:
    """A clerk (face, document, tone) and an approver (face, tone) in one room."""

    def __init__(self) -> None:
        self.room = MediaRoom("session", config())
        self.clerk = SyntheticParticipant(make_sources(("face", "document", "audio")))
        self.approver = SyntheticParticipant(make_sources(("face", "audio")))
        self.others: list[SyntheticParticipant] = []

    async def start(self) -> None:
        await connect(self.room, "clerk", self.clerk)
        await connect(self.room, "approver", self.approver)

    def seen_by_approver(self, source: str) -> Any:
        return self.approver.received[slot_of(self.room, "approver", "clerk", source)]

    async def close(self) -> None:
        for peer in (self.clerk, self.approver, *self.others):
            await peer.close()
        await self.room.close()


def gaps(arrived_at: list[float]) -> float:
    return max((b - a for a, b in itertools.pairwise(arrived_at)), default=0.0)


@pytest.mark.all_pairs
async def test_stamped_frames_flow_both_ways_in_order(media_path: str):
    """Clerk's face, document and tone reach the approver and the approver's face and
    tone reach the clerk; counters arrive in increasing order. On the fast path the
    server's DTLS transport sees almost none of the media packets (they bypass it), and
    C forwards nearly all of them alone (the steady state)."""
    pair = Pair()
    await pair.start()
    try:
        document, face = pair.seen_by_approver("document"), pair.seen_by_approver("face")
        back = pair.clerk.received[slot_of(pair.room, "clerk", "approver", "face")]
        tone = pair.seen_by_approver("audio")
        await wait_until(
            lambda: (
                min(len(document.counters), len(face.counters), len(back.counters)) >= 30
                and tone.frequency is not None
            ),
            what="30 frames on every video track and a second of audio",
        )
        for received in (document, face, back):
            assert received.counters == sorted(received.counters)
            assert len(set(received.counters)) == len(received.counters)
        assert (1280, 720) in document.sizes
        assert abs(tone.frequency - 440) < 10
        server_pc = pair.room._peers["clerk"].pc
        stats = await server_pc.getStats()
        through_dtls = sum(s.packetsReceived for s in stats.values() if s.type == "transport")
        received = sum(t.packets for t in pair.room._peers["clerk"].tracks.values())
        in_c = sum(t.fast_packets for t in pair.room._peers["clerk"].tracks.values())
        if media_path == "fast":
            assert through_dtls < received / 4, (through_dtls, received)
            assert in_c > received * 0.9, (in_c, received)
        else:
            assert through_dtls >= received
            assert in_c == 0
    finally:
        await pair.close()


async def test_open_tracks_are_counted_until_their_room_closes():
    """The count the API's pacing follows (signaling/web/pacing.py)."""
    before = open_tracks()
    pair = Pair()
    await pair.start()
    try:
        assert open_tracks() == before + 5  # the clerk's face, document, tone; the approver's two
        await pair.room.disconnect("approver")
        assert open_tracks() == before + 3
    finally:
        await pair.close()
    assert open_tracks() == before


async def test_received_payloads_are_the_sent_payloads():
    """Nothing is re-encoded: every video payload the approver receives is byte for
    byte one the clerk sent."""
    pair = Pair()
    sent: set[bytes] = set()
    received: list[bytes] = []

    def digest(data: bytes) -> bytes:
        return hashlib.sha256(RtpPacket.parse(data).payload).digest()

    def record_sent(data: bytes) -> bool:
        if not is_rtcp(data) and RtpPacket.parse(data).payload_type != 96:  # 96: opus
            sent.add(digest(data))
        return True

    def record_received(data: bytes) -> bool:
        if RtpPacket.parse(data).payload_type != 96:
            received.append(digest(data))
        return True

    on_outgoing(pair.clerk, record_sent)
    on_incoming_rtp(pair.approver, record_received)
    await pair.start()
    try:
        document = pair.seen_by_approver("document")
        await wait_until(lambda: len(document.counters) >= 30, what="30 document frames")
        assert len(received) >= len(document.counters)
        assert all(item in sent for item in received)
    finally:
        await pair.close()


async def test_a_failing_sink_is_counted_and_forwarding_goes_on(
    media_path: str, caplog: pytest.LogCaptureFixture
):
    """A sink that raises on some packets (in C's steady path or in Python's) costs
    only those packets' sink call: each is counted in the track's errors and logged
    with its traceback (at most every ERROR_LOG_INTERVAL), and frames keep flowing."""

    class Failing:
        calls = 0

        def packet(self, packet: Any, arrival: float) -> None:
            self.calls += 1
            if self.calls % 10 == 0:
                raise ValueError("sink failed")

        def ended(self) -> None:
            pass

    pair = Pair()
    await pair.start()
    try:
        document = pair.seen_by_approver("document")
        await wait_until(lambda: len(document.counters) >= 5, what="5 document frames")
        track = pair.room.track("clerk", "document")
        sink = Failing()
        track.sinks.append(sink)
        start = len(document.counters)
        await wait_until(lambda: len(document.counters) >= start + 30, what="30 more frames")
        assert sink.calls >= 30 and track.errors == sink.calls // 10
        assert any(r.exc_info and "sink failed" in str(r.exc_info[1]) for r in caplog.records), (
            "the failure was not logged with its exception"
        )
        if media_path == "fast":
            assert track.fast_packets > sink.calls / 2
    finally:
        await pair.close()


async def test_a_failing_leg_is_counted_and_the_next_leg_still_forwards(media_path: str):
    """Two subscribers of one track, the first leg's slot unable to send (its sender
    raises): each packet's failure is counted in the track's errors, and the second leg,
    after it in the same loop (C's steady path or Python's), still forwards every packet."""
    pair = Pair()
    await pair.start()
    try:
        document = pair.seen_by_approver("document")
        await wait_until(lambda: len(document.counters) >= 5, what="5 document frames")
        late = SyntheticParticipant({})
        pair.others.append(late)
        await connect(pair.room, "auditor", late)
        track = pair.room.track("clerk", "document")
        await wait_until(lambda: len(track.legs) == 2 and all(leg.started for leg in track.legs))
        failing, other = track._legs  # the order both paths forward in
        failing.slot._sender = None  # the slot's send raises TypeError
        errors, forwarded = track.errors, other.forwarded
        await wait_until(
            lambda: other.forwarded >= forwarded + 30, what="30 more on the second leg"
        )
        assert track.errors - errors >= 30
    finally:
        await pair.close()


async def test_two_percent_loss_both_ways_does_not_stall():
    """At 2 % loss from the publisher and 2 % to the subscriber, upstream gaps are
    recovered by NACK/RTX, downstream NACKs are answered from the leg's cache, and the
    document track keeps running: nearly every frame arrives, in order, no long freeze."""
    pair = Pair()
    on_outgoing(pair.clerk, lose_every(50))
    on_incoming_rtp(pair.approver, lose_every(50))
    await pair.start()
    try:
        document = pair.seen_by_approver("document")
        await wait_until(lambda: len(document.counters) >= 120, limit=30, what="120 frames")
        first, last = document.counters[0], document.counters[-1]
        assert len(document.counters) >= 0.95 * (last - first + 1)
        assert document.counters == sorted(document.counters)
        assert gaps(document.arrived_at[5:]) < 1.0
        track = pair.room.track("clerk", "document")
        slot = next(iter(track.legs)).slot
        assert track.recovered > 0, "no upstream retransmission was used"
        assert slot.retransmitted > 0, "no downstream NACK was answered from the cache"
    finally:
        await pair.close()


async def test_a_lost_retransmission_is_asked_for_again():
    """A subscriber that loses a packet and then its retransmission NACKs it again (as
    browsers do; the synthetic participant repeats aiortc's single NACK) and the leg's
    cache answers again: the document does not freeze until a keyframe is asked for."""
    pair = Pair()
    await pair.start()
    try:
        document = pair.seen_by_approver("document")
        track = pair.room.track("clerk", "document")
        params = next(iter(track.legs)).slot.params
        lost: list[int] = []

        def keep(data: bytes) -> bool:
            if is_rtcp(data) or len(document.counters) < 10:
                return True
            ssrc = int.from_bytes(data[8:12], "big")
            if (ssrc, len(lost)) in ((params.ssrc, 0), (params.rtx_ssrc, 1)):
                lost.append(int.from_bytes(data[2:4], "big"))
                return False
            return True

        on_incoming_rtp(pair.approver, keep)
        await wait_until(lambda: len(document.counters) >= 60, limit=30, what="60 frames")
        assert len(lost) == 2, "the packet and its first retransmission were dropped"
        assert gaps(document.arrived_at[5:]) < 1.0
        assert pair.approver.keyframe_requests == 0
        assert next(iter(track.legs)).slot.retransmitted >= 2
    finally:
        await pair.close()


async def test_late_subscriber_gets_a_picture_within_two_seconds():
    """A subscriber joining a running session is gated until a keyframe, and the PLI
    sent upstream on its join brings one at once: its first frame, connection included,
    comes within 2 s even on a loaded machine (the source's own keyframes are further
    apart; bench.relay measures ~0.1 s on a quiet one). The leg already forwarding goes
    on: it is not restarted, and no packet it forwarded is taken for an upstream gap
    (C's steady state hands its newest sequence number back to Python)."""
    pair = Pair()
    await pair.start()
    try:
        document = pair.seen_by_approver("document")
        await wait_until(lambda: len(document.counters) >= 45, what="3 s of document frames")
        track = pair.room.track("clerk", "document")
        (watching,) = track.legs
        before = watching.since_start
        late = SyntheticParticipant({})
        pair.others.append(late)
        joined = time.monotonic()
        await connect(pair.room, "auditor", late)
        mid = slot_of(pair.room, "auditor", "clerk", "document")
        await wait_until(lambda: late.received[mid].first_at is not None, limit=5)
        assert late.received[mid].first_at - joined < 2.0
        assert track.keyframe_requests >= 1
        assert watching.started and watching.since_start > before, "the watching leg restarted"
        assert track.recovered == 0 and not track._gaps.missing, "packets taken for a gap"
    finally:
        await pair.close()


async def test_a_quiet_subscriber_asks_the_publisher_for_nothing():
    """A hidden auditor's connection (quiet) makes no keyframe request when it joins or
    waits, nor by its own PLIs, and its loss does not lower the publisher's bitrate; its
    picture starts on the next keyframe someone else causes (the recording's next cut)."""
    room = MediaRoom("session", config())
    clerk = SyntheticParticipant(make_sources(("document",)))
    hidden = SyntheticParticipant({})
    try:
        await connect(room, "clerk", clerk)
        await wait_until(
            lambda: (track := room.track("clerk", "document")) is not None and track.packets > 30,
            what="the clerk's document arriving",
        )
        track = room.track("clerk", "document")
        asked = track.keyframe_requests
        losing = False  # the auditor loses packets once its picture has started
        drop = lose_every(5)
        on_incoming_rtp(hidden, lambda data: not losing or drop(data))
        offer, mapping = await hidden.offer()
        answer = await room.connect("auditor", offer, mapping, frozenset(), quiet=True)
        await hidden.accept(answer)
        mid = slot_of(room, "auditor", "clerk", "document")
        receiver = next(t.receiver for t in hidden.pc.getTransceivers() if t.mid == mid)
        [leg] = track.legs
        await wait_until(lambda: leg.connected, what="the auditor's transport")
        for _ in range(3):  # the leg's SSRC: nothing has arrived yet to learn it from
            hooks.send_pli(receiver, leg.slot.params.ssrc)
        await wait_until(
            lambda: leg.connected_at is not None and time.monotonic() - leg.connected_at > 3,
            what="3 s of waiting",
        )
        assert track.keyframe_requests == asked
        assert hidden.received[mid].first_at is None

        cut = time.monotonic()
        track._last_keyframe_request = 0.0  # as the recording's cut would, past the throttle
        track.request_keyframe()
        await wait_until(lambda: hidden.received[mid].first_at is not None, limit=5)
        assert hidden.received[mid].first_at - cut < 1.0
        losing = True
        await wait_until(lambda: leg.slot.fraction_lost > 0, what="the auditor's loss reported")
        assert not leg.slot.congested
    finally:
        for peer in (clerk, hidden):
            await peer.close()
        await room.close()


async def test_subscriber_keyframe_requests_are_forwarded_throttled():
    """A burst of PLIs from a subscriber reaches the publisher as at most one PLI per
    half second."""
    pair = Pair()
    pli_seen: list[float] = []
    await pair.start()
    publisher_sender = next(
        t.sender
        for t in pair.clerk.pc.getTransceivers()
        if t.sender.track is pair.clerk.sources["document"]
    )
    hooks.on_keyframe_request(publisher_sender, lambda: pli_seen.append(time.monotonic()))
    try:
        document = pair.seen_by_approver("document")
        await wait_until(lambda: len(document.counters) >= 5)
        mid = slot_of(pair.room, "approver", "clerk", "document")
        receiver = next(t.receiver for t in pair.approver.pc.getTransceivers() if t.mid == mid)
        ssrc = hooks.remote_ssrcs(receiver)[0]
        started = time.monotonic()
        for _ in range(20):
            hooks.send_pli(receiver, ssrc)
        await wait_until(lambda: len(pli_seen) >= 1, what="a PLI at the publisher")
        elapsed = time.monotonic() - started
        assert 1 <= len(pli_seen) <= 1 + elapsed / 0.5
    finally:
        await pair.close()


async def test_sender_reports_are_translated_and_remb_reaches_the_publisher():
    """The subscriber gets sender reports whose RTP time matches the leg's timestamps
    (so lip sync works), and the publisher gets REMB for its video SSRCs and receiver
    reports whose highest sequence number follows what it sent (the server's receive
    statistics are fed on either media path)."""
    pair = Pair()
    reports: list[RtcpSrPacket] = []
    rembs: list[tuple[int, list[int]]] = []
    receiver_reports: list[RtcpReceiverInfo] = []
    last_ts: dict[int, int] = {}

    approver_dtls = transport(pair.approver)
    original_rtcp = approver_dtls._handle_rtcp_data

    async def watch_rtcp(data: bytes) -> None:
        reports.extend(p for p in RtcpPacket.parse(data) if isinstance(p, RtcpSrPacket))
        await original_rtcp(data)

    approver_dtls._handle_rtcp_data = watch_rtcp

    def watch_rtp(data: bytes) -> bool:
        packet = RtpPacket.parse(data)
        last_ts[packet.ssrc] = packet.timestamp
        return True

    on_incoming_rtp(pair.approver, watch_rtp)
    last_sent_seq: dict[int, int] = {}

    def watch_sent(data: bytes) -> bool:
        if not is_rtcp(data):
            last_sent_seq[int.from_bytes(data[8:12], "big")] = int.from_bytes(data[2:4], "big")
        return True

    on_outgoing(pair.clerk, watch_sent)
    clerk_dtls = transport(pair.clerk)
    original_clerk_rtcp = clerk_dtls._handle_rtcp_data

    async def watch_remb(data: bytes) -> None:
        for packet in RtcpPacket.parse(data):
            if isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_APP:
                rembs.append(unpack_remb_fci(packet.fci))
            if isinstance(packet, RtcpRrPacket):
                receiver_reports.extend(packet.reports)
        await original_clerk_rtcp(data)

    clerk_dtls._handle_rtcp_data = watch_remb
    await pair.start()
    try:
        document_slot = next(iter(pair.room.track("clerk", "document").legs)).slot
        ssrc = document_slot.params.ssrc
        await wait_until(
            lambda: any(r.ssrc == ssrc and r.sender_info.rtp_timestamp for r in reports) and rembs,
            limit=10,
            what="a translated sender report and a REMB",
        )
        report = next(r for r in reports if r.ssrc == ssrc and r.sender_info.rtp_timestamp)
        drift = (last_ts[ssrc] - report.sender_info.rtp_timestamp) & 0xFFFFFFFF
        assert min(drift, 0x100000000 - drift) < 5 * 90_000  # within 5 s of the leg's clock
        bitrate, ssrcs = rembs[-1]
        clerk_video = {
            t.ssrc for t in (pair.room.track("clerk", "face"), pair.room.track("clerk", "document"))
        }
        assert set(ssrcs) == clerk_video
        assert bitrate == PUBLISH_BITRATE  # nobody loses packets: the full target
        document_ssrc = pair.room.track("clerk", "document").ssrc
        await wait_until(
            lambda: any(r.ssrc == document_ssrc for r in receiver_reports),
            limit=10,
            what="a receiver report for the clerk's document",
        )
        report = [r for r in receiver_reports if r.ssrc == document_ssrc][-1]
        sent_seq = last_sent_seq[document_ssrc]  # sent after the report's last one
        assert 0 <= (sent_seq - report.highest_sequence) & 0xFFFF < 2000
        assert report.packets_lost < 50
    finally:
        await pair.close()


async def test_announced_address_and_port_range_are_used(media_path: str):
    """The server's answer offers host candidates only on the announced address and
    within the configured UDP port range; a fast-ingest socket asks for a receive buffer
    beyond the default (bursts wait there while packets are forwarded)."""
    room = MediaRoom("ports", MediaConfig(("127.0.0.1",), 41000, 41050))
    peer = SyntheticParticipant(make_sources(("face",)))
    try:
        offer, mapping = await peer.offer()
        answer = await room.connect("clerk", offer, mapping, frozenset({"face"}))
        candidates = [
            line.split() for line in answer.splitlines() if line.startswith("a=candidate:")
        ]
        assert candidates
        for fields in candidates:
            assert fields[4] == "127.0.0.1"
            assert 41000 <= int(fields[5]) <= 41050
        default = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        with default:
            default_size = default.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        connection = room._peers["clerk"].pc.getTransceivers()[0].receiver.transport.transport
        for protocol in connection.iceGatherer._connection._protocols:
            sock = protocol.transport.get_extra_info("socket")
            size = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
            assert (size > default_size) == (media_path == "fast"), (size, default_size)
    finally:
        await peer.close()
        await room.close()


async def test_a_lossy_subscriber_clamps_what_the_publisher_is_asked_for():
    """A subscriber losing ~10 % of its packets reports its own estimate, and the
    publisher is asked for no more than that."""
    pair = Pair()
    rembs: list[int] = []
    on_incoming_rtp(pair.approver, lose_every(10))
    clerk_dtls = transport(pair.clerk)
    original = clerk_dtls._handle_rtcp_data

    async def watch_remb(data: bytes) -> None:
        for packet in RtcpPacket.parse(data):
            if isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_APP:
                rembs.append(unpack_remb_fci(packet.fci)[0])
        await original(data)

    clerk_dtls._handle_rtcp_data = watch_remb
    await pair.start()
    try:
        slot = next(iter(pair.room.track("clerk", "document").legs)).slot
        await wait_until(
            lambda: (
                slot.congested and slot.remb is not None and rembs and rembs[-1] < PUBLISH_BITRATE
            ),
            limit=15,
            what="a clamped REMB",
        )
    finally:
        await pair.close()


async def test_publisher_that_never_sends_a_keyframe():
    """A publisher whose keyframes never arrive: its subscriber gets no frame (nothing
    undecodable is forwarded), the server keeps asking for a keyframe about once a
    second, and the other direction is unaffected. Once keyframes get through, the
    picture starts."""
    pair = Pair()
    block = {"on": True}
    document_ssrc: set[int] = set()

    def drop_keyframes(data: bytes) -> bool:
        if is_rtcp(data) or not block["on"]:
            return True
        packet = RtpPacket.parse(data)
        payload = packet.payload[2:] if packet.ssrc == rtx_ssrc else packet.payload
        return not (packet.ssrc in document_ssrc and vp8_keyframe_start(payload))

    on_outgoing(pair.clerk, drop_keyframes)
    sender = next(
        t.sender
        for t in pair.clerk.pc.getTransceivers()
        if t.sender.track is pair.clerk.sources["document"]
    )
    document_ssrc.update(hooks.sender_ssrcs(sender))  # retransmissions too
    rtx_ssrc = hooks.sender_ssrcs(sender)[1]
    await pair.start()
    try:
        back = pair.clerk.received[slot_of(pair.room, "clerk", "approver", "face")]
        await wait_until(lambda: len(back.counters) >= 30, what="the approver's face at the clerk")
        document = pair.seen_by_approver("document")
        track = pair.room.track("clerk", "document")
        await wait_until(lambda: track.keyframe_requests >= 3, what="repeated keyframe requests")
        assert document.counters == []
        block["on"] = False
        await wait_until(
            lambda: len(document.counters) >= 5, what="the picture once keyframes pass"
        )
    finally:
        await pair.close()
