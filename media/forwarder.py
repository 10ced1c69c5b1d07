"""RTP-level forwarding: each packet a publisher sends is rewritten for every subscriber
leg and sent as it arrives — no jitter buffer, no decoding, no re-encoding.

    PublishedTrack   one upstream stream (participant, source); asks for keyframes,
                     re-sends NACKs for upstream gaps timed by the round trip
                     (media/upstream.py), falls back to a PLI
    Slot             one outgoing sender of a subscriber's connection; owns the leg's
                     sequence space and the packet cache that answers its NACKs
    Leg              a track forwarded into a slot: offsets fixed at the first keyframe
    PacketSink       sees every packet of a track beside forwarding (recording, snapshots)
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from typing import Protocol

from aiortc import RTCRtpReceiver, RTCRtpSender
from aiortc.rtp import RtcpSrPacket

from media import _fastpath, hooks
from media.keyframes import keyframe_detector
from media.rtpread import RtpView
from media.rtpwrite import PacketWriter, abs_send_time
from media.upstream import UpstreamGaps

logger = logging.getLogger(__name__)

KEYFRAME_REQUEST_INTERVAL = 0.5
"""At most one PLI upstream per track per this many seconds."""
KEYFRAME_RETRY_INTERVAL = 1.0
"""While a leg still waits for its first keyframe, ask again this often."""
QUIET_KEYFRAME_WAIT = 12.0
"""A quiet leg (a hidden subscriber's) asks for a keyframe only after waiting this long
for one that someone else caused: the recording cuts a chunk on a requested keyframe
every ``chunk_seconds`` (10 s by default), so with recording on it never asks."""
CONGESTION_LOSS = 5
"""Fraction lost (of 256, ~2 %) above which a subscriber's estimate clamps publishers."""
CACHE_SIZE = _fastpath.CACHE_SIZE
"""Packets kept per slot to answer its NACKs (~3 s of a 3 Mbit/s video track)."""
ERROR_LOG_INTERVAL = 10.0
"""A packet whose handling fails is counted; the traceback is logged at most this often."""


class PacketSink(Protocol):
    """Sees each packet a published track receives (RTX unwrapped, before forwarding),
    with its arrival time (seconds since the epoch). Called on the event loop for every
    packet: keep it cheap, never block."""

    def packet(self, packet: RtpView, arrival: float) -> None: ...

    def ended(self) -> None:
        """The track is gone (its publisher left or reconnected)."""
        ...


_open_tracks: weakref.WeakSet[PublishedTrack] = weakref.WeakSet()
"""Published tracks not closed yet (one a failed connect never closed drops out when
it is collected)."""


def open_tracks() -> int:
    """Published tracks open in this process: media flows (or may at any moment)."""
    return len(_open_tracks)


class PublishedTrack(_fastpath.TrackBase):
    """Its per-packet state lives in the C base (``_fastpath.TrackBase``): while every
    leg has started (``_fast``, set here after each packet Python handles), the fast
    ingest forwards the next packet of the media SSRC in C (receiver statistics, sinks,
    legs) without calling ``on_packet``; anything else (a gap, RTX, a new SSRC) comes
    here."""

    def __init__(
        self,
        participant: str,
        source: str,
        kind: str,
        mime_type: str,
        receiver: RTCRtpReceiver,
    ) -> None:
        self.participant = participant
        self.source = source
        self.kind = kind
        self.mime_type = mime_type
        self.receiver = receiver
        self.ssrc: int | None = None
        self.legs: set[Leg] = set()
        self.sinks: list[PacketSink] = []
        self.packets = 0
        self._stats = None
        """Receiver statistics of the media SSRC (``hooks.stream_statistics``)."""
        self._fast = False
        """The next packet may be forwarded in C (``_arm``)."""
        self._highest = -1
        """The newest upstream sequence number, advanced in C while ``_fast``."""
        self.recovered = 0
        """Upstream gaps filled by a retransmission."""
        self.late = 0
        """Retransmissions that came after their gap was given up (still forwarded)."""
        self.keyframe_requests = 0
        self.errors = 0
        """Packets whose handling raised (logged, dropped: the track goes on)."""
        self.last_report: tuple[int, int] | None = None  # (ntp, rtp) of the last SR
        self._is_video = kind == "video"
        self._legs: tuple[Leg, ...] = ()
        """``legs`` as a tuple, for the per-packet loop."""
        self._gated = False
        """Some leg may not have started: look for keyframes."""
        self._error_logged_at = 0.0
        self._gaps = UpstreamGaps()
        self._starts_keyframe = keyframe_detector(mime_type)
        self._last_keyframe_request = 0.0
        self._retry_task: asyncio.Task[None] | None = None
        self.closed = False
        """Set by ``close``: packets still read off the socket until the connection
        closes are dropped (no forwarding, no NACK task after the close)."""
        self._new_gaps = asyncio.Event()
        self.deliver = hooks.tap_receiver(receiver, self.on_packet)
        """Where packets read off the socket go (``hooks.fast_ingest``)."""
        hooks.watch_sender_reports(receiver, self.on_sender_report)
        _open_tracks.add(self)

    def _add_leg(self, leg: Leg) -> None:
        self.legs.add(leg)
        self._legs = tuple(self.legs)
        self._gated = True

    def _remove_leg(self, leg: Leg) -> None:
        self.legs.discard(leg)
        self._legs = tuple(self.legs)

    def on_packet(self, packet: RtpView) -> None:
        if self.closed:
            return
        if self._is_video and self._highest >= 0:
            self._gaps.highest = self._highest  # C may have forwarded packets since
        try:
            self._on_packet(packet)
        except Exception:  # one bad packet must not stop the track: count, log, go on
            self._failed()
        self._arm(packet)

    def _failed(self) -> None:
        """Count the packet whose handling raised (the exception being handled) and log
        it, at most every ERROR_LOG_INTERVAL. Called from C too."""
        self.errors += 1
        now = time.monotonic()
        if now - self._error_logged_at > ERROR_LOG_INTERVAL:
            self._error_logged_at = now
            logger.exception(
                "%s/%s: a packet failed (%d so far)", self.participant, self.source, self.errors
            )

    def _arm(self, packet: RtpView) -> None:
        """Whether C may forward the next packets of this SSRC and payload type alone:
        every leg started, statistics found. (C takes only the next sequence number, so
        gaps still open upstream stay Python's: their retransmissions come here.)"""
        if packet.ssrc != self._fast_ssrc or self._stats is None:
            self._stats = hooks.stream_statistics(self.receiver, packet.ssrc)
        self._fast_pt = packet.payload_type
        self._fast_ssrc = packet.ssrc
        if self._is_video and self._gaps.highest is not None:
            self._highest = self._gaps.highest
        self._fast = not self.closed and not self._gated and self._stats is not None

    def _on_packet(self, packet: RtpView) -> None:
        now = time.monotonic()
        wall = time.time()
        self.ssrc = packet.ssrc
        self.packets += 1
        for sink in self.sinks:
            try:
                sink.packet(packet, wall)
            except Exception:  # a failing sink (recording) must not cost subscribers
                self._failed()
        seq = packet.sequence_number
        fresh = True
        if self._is_video:
            gaps = self._gaps
            new_gaps, recovered, late = gaps.add(seq, now)
            self.recovered += recovered
            self.late += late
            if gaps.jumped:
                self._resync()
            if new_gaps:
                hooks.send_nack(self.receiver, packet.ssrc, new_gaps)
                self._new_gaps.set()
                self._ensure_retry_task()
            # a leg starts only on the newest packet: a late retransmission of an old
            # keyframe would leave a hole after it that the subscriber cannot fill
            fresh = seq == gaps.highest
        legs = self._legs
        if self._gated:
            self._gated = any(not leg.started for leg in legs)
        keyframe = not self._is_video or (
            self._gated and fresh and self._starts_keyframe(packet.payload)
        )
        send_time = abs_send_time(wall)
        for leg in legs:
            try:
                leg.forward(packet, keyframe, now, send_time)
            except Exception:  # one subscriber's failure must not cost the others
                self._failed()
        if (
            self._gated
            and any(leg.awaits_keyframe() for leg in legs)
            and now - self._last_keyframe_request > KEYFRAME_RETRY_INTERVAL
        ):
            self.request_keyframe()

    def _resync(self) -> None:
        """An outage (a jump in sequence numbers): every leg waits for the next keyframe
        and then numbers on from its last packet, so the subscriber sees no jump."""
        for leg in self._legs:
            leg.started = False
        self._gated = True
        self._last_keyframe_request = 0.0
        self.request_keyframe()

    def on_sender_report(self, report: RtcpSrPacket) -> None:
        info = report.sender_info
        self.last_report = (info.ntp_timestamp, info.rtp_timestamp)
        for leg in self.legs:
            leg.translate_report(*self.last_report)

    def request_keyframe(self) -> None:
        if self.kind != "video" or self.ssrc is None:
            return
        now = time.monotonic()
        if now - self._last_keyframe_request < KEYFRAME_REQUEST_INTERVAL:
            return
        self._last_keyframe_request = now
        self.keyframe_requests += 1
        hooks.send_pli(self.receiver, self.ssrc)

    def _ensure_retry_task(self) -> None:
        if self._retry_task is None or self._retry_task.done():
            self._retry_task = asyncio.create_task(self._retry_nacks())

    @property
    def round_trip(self) -> float | None:
        """Smoothed round trip to the publisher (s), if measured."""
        return self._gaps.round_trip.srtt

    async def _retry_nacks(self) -> None:
        """NACK each gap again when its answer is overdue; a gap given up asks for a
        keyframe, but the legs keep forwarding: a retransmission that comes later still
        completes the subscribers' frames."""
        while self.ssrc is not None:
            due = self._gaps.next_due()
            if due is None:
                return
            self._new_gaps.clear()
            try:
                async with asyncio.timeout(max(0.0, due - time.monotonic())):
                    await self._new_gaps.wait()
                continue  # a new gap may be due before the one waited for
            except TimeoutError:
                pass
            retry, gave_up = self._gaps.due(time.monotonic())
            if retry:
                hooks.send_nack(self.receiver, self.ssrc, retry)
            if gave_up:
                self.request_keyframe()

    async def close(self) -> None:
        self.closed = True
        self._fast = False
        _open_tracks.discard(self)
        if self._retry_task is not None:
            self._retry_task.cancel()
            await asyncio.gather(self._retry_task, return_exceptions=True)
        for leg in self._legs:
            leg.detach()
        for sink in self.sinks:
            sink.ended()
        self.sinks.clear()


class Slot(_fastpath.SlotBase):
    """An outgoing sender on a subscriber's connection. Its sequence space, counters and
    the packet cache that answers NACKs live in the C base (``_fastpath.SlotBase``:
    ``next_seq``, ``last_timestamp``, ``last_sent_at``, ``packets``, ``octets``;
    ``send(marker, seq, timestamp, payload, audio_level, send_time)`` keeps the packet
    for CACHE_SIZE packets, counts, writes and sends it; ``cached(seq)``)."""

    def __init__(
        self,
        sender: RTCRtpSender,
        params: hooks.SenderParams,
        kind: str,
        *,
        next_seq: int = 0,
        last_timestamp: int = 0,
        rtx_seq: int = 0,
        quiet: bool = False,
        sync: bool = True,
    ) -> None:
        self.sender = sender
        self.params = params
        self.kind = kind
        self.next_seq = next_seq
        self.last_timestamp = last_timestamp
        self.rtx_seq = rtx_seq
        self.remb: int | None = None
        self.fraction_lost = 0
        self.retransmitted = 0
        self.leg: Leg | None = None
        self.quiet = quiet
        """A hidden subscriber's: it never asks the publisher for anything (keyframes,
        lower bitrate), so the publisher cannot tell it is there."""
        self.sync = sync
        """Send each packet at once on the socket (``hooks.rtp_sender``); False: through
        aiortc's coroutines, one task per packet (the fallback, and a benchmark baseline)."""
        self._payload_type = params.payload_type
        self._ssrc = params.ssrc
        self.writer = PacketWriter.from_ids(params.mid, params.extension_ids)
        self._sender = hooks.rtp_sender(sender.transport, sync=sync)
        hooks.intercept_sender_feedback(
            sender,
            hooks.SenderFeedback(
                self.on_nack, self.on_keyframe_request, self.on_remb, self.on_loss
            ),
        )

    def on_nack(self, lost: list[int]) -> None:
        """Resend from the cache, as RTX (RFC 4588) where negotiated."""
        params = self.params
        send_time = abs_send_time(time.time())
        for seq in lost:
            cached = self.cached(seq)
            if cached is None:
                continue
            marker, timestamp, payload = cached
            if params.rtx_payload_type is None:
                self.writer.send(
                    self._sender, params.payload_type, marker, seq, timestamp, params.ssrc,
                    payload, send_time,
                )  # fmt: skip
            else:
                self.writer.send(
                    self._sender, params.rtx_payload_type, marker, self.rtx_seq, timestamp,
                    params.rtx_ssrc, seq.to_bytes(2, "big") + payload, send_time,
                )  # fmt: skip
                self.rtx_seq = (self.rtx_seq + 1) & 0xFFFF
            self.retransmitted += 1

    def on_keyframe_request(self) -> None:
        if self.leg is not None and not self.quiet:
            self.leg.track.request_keyframe()

    def on_remb(self, bitrate: int) -> None:
        self.remb = bitrate

    def on_loss(self, fraction_lost: int) -> None:
        self.fraction_lost = fraction_lost

    @property
    def congested(self) -> bool:
        """The subscriber loses more than ~2 % of this leg's packets (a quiet one never
        counts: its loss must not lower what the publisher sends)."""
        return self.fraction_lost > CONGESTION_LOSS and not self.quiet


class Leg(_fastpath.LegBase):
    """One published track forwarded into one slot. ``forward(packet, keyframe, now,
    send_time)`` is the C base's (``_fastpath.LegBase``): a leg not started starts on a
    keyframe once its subscriber is ``connected`` (``_start``); a started one drops a
    late retransmission older than its start, rewrites sequence number and timestamp
    and sends through its slot. ``now`` (monotonic) and ``send_time`` (abs-send-time) are
    taken once per packet for all legs."""

    track: PublishedTrack
    slot: Slot

    def __init__(self, track: PublishedTrack, slot: Slot) -> None:
        self.track = track
        self.slot = slot
        self.connected_at: float | None = None
        slot.leg = self
        track._add_leg(self)

    @property
    def connected(self) -> bool:
        """The subscriber's transport is up: what the leg sends now arrives. (The room
        asks for a keyframe when it comes up.)"""
        return bool(self.slot.sender.transport.state == "connected")

    def awaits_keyframe(self) -> bool:
        """Not started, its subscriber connected, and entitled to ask for a keyframe."""
        if self.started or not self.connected:
            return False
        now = time.monotonic()
        if self.connected_at is None:
            self.connected_at = now
        return not self.slot.quiet or now - self.connected_at > QUIET_KEYFRAME_WAIT

    def detach(self) -> None:
        self.track._remove_leg(self)
        if self.slot.leg is self:
            self.slot.leg = None

    def _start(self, packet: RtpView, now: float) -> None:
        """Fix the offsets so the leg's numbering continues where the slot left off."""
        slot = self.slot
        self.first_upstream_seq = packet.sequence_number
        self.since_start = 0
        self.seq_offset = (slot.next_seq - packet.sequence_number) & 0xFFFF
        elapsed = now - slot.last_sent_at if slot.last_sent_at else 0.0
        resume = (slot.last_timestamp + max(1, int(elapsed * slot.params.clock_rate))) & 0xFFFFFFFF
        self.ts_offset = (resume - packet.timestamp) & 0xFFFFFFFF
        self.started = True
        if self.track.last_report is not None:
            self.translate_report(*self.track.last_report)

    def translate_report(self, ntp: int, rtp_timestamp: int) -> None:
        """The publisher's NTP↔RTP mapping, in this leg's timestamp space, so the
        subscriber can keep audio and video in sync."""
        if self.started:
            hooks.set_sender_report(
                self.slot.sender,
                ntp,
                (rtp_timestamp + self.ts_offset) & 0xFFFFFFFF,
                self.slot.packets,
                self.slot.octets,
            )
