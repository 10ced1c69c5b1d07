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
from dataclasses import dataclass, field
from typing import Protocol

from aiortc import RTCRtpReceiver, RTCRtpSender
from aiortc.rtp import RtcpSrPacket

from media import hooks
from media.keyframes import keyframe_detector
from media.rtpread import RtpView
from media.rtpwrite import PacketWriter, abs_send_time
from media.upstream import UpstreamGaps, seq_newer

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
CACHE_SIZE = 1024
"""Packets kept per leg to answer its NACKs (~3 s of a 3 Mbit/s video track)."""
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


class PublishedTrack:
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
        try:
            self._on_packet(packet)
        except Exception:  # one bad packet must not stop the track: count, log, go on
            self.errors += 1
            now = time.monotonic()
            if now - self._error_logged_at > ERROR_LOG_INTERVAL:
                self._error_logged_at = now
                logger.exception(
                    "%s/%s: a packet failed (%d so far)", self.participant, self.source, self.errors
                )

    def _on_packet(self, packet: RtpView) -> None:
        now = time.monotonic()
        wall = time.time()
        self.ssrc = packet.ssrc
        self.packets += 1
        if self.sinks:
            for sink in self.sinks:
                sink.packet(packet, wall)
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
            leg.forward(packet, keyframe, now, send_time)
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
        _open_tracks.discard(self)
        if self._retry_task is not None:
            self._retry_task.cancel()
            await asyncio.gather(self._retry_task, return_exceptions=True)
        for leg in self._legs:
            leg.detach()
        for sink in self.sinks:
            sink.ended()
        self.sinks.clear()


@dataclass
class Slot:
    """An outgoing sender on a subscriber's connection."""

    sender: RTCRtpSender
    params: hooks.SenderParams
    kind: str
    next_seq: int = 0
    last_timestamp: int = 0
    last_sent_at: float = 0.0
    packets: int = 0
    octets: int = 0
    remb: int | None = None
    fraction_lost: int = 0
    rtx_seq: int = 0
    retransmitted: int = 0
    leg: Leg | None = None
    quiet: bool = False
    """A hidden subscriber's: it never asks the publisher for anything (keyframes,
    lower bitrate), so the publisher cannot tell it is there."""
    sync: bool = True
    """Send each packet at once on the socket (``hooks.rtp_sender``); False: through
    aiortc's coroutines, one task per packet (the fallback, and a benchmark baseline)."""
    cache: list[tuple[int, int, int, bytes] | None] = field(
        default_factory=lambda: [None] * CACHE_SIZE
    )
    """(sequence number, marker, timestamp, payload) of recent packets, by seq % size."""

    def __post_init__(self) -> None:
        self.writer = PacketWriter.from_ids(self.params.mid, self.params.extension_ids)
        self._sender = hooks.rtp_sender(self.sender.transport, sync=self.sync)
        hooks.intercept_sender_feedback(
            self.sender,
            hooks.SenderFeedback(
                self.on_nack, self.on_keyframe_request, self.on_remb, self.on_loss
            ),
        )

    def on_nack(self, lost: list[int]) -> None:
        """Resend from the cache, as RTX (RFC 4588) where negotiated."""
        params = self.params
        send_time = abs_send_time(time.time())
        for seq in lost:
            cached = self.cache[seq % CACHE_SIZE]
            if cached is None or cached[0] != seq:
                continue
            _seq, marker, timestamp, payload = cached
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

    def send(
        self,
        marker: int,
        seq: int,
        timestamp: int,
        payload: bytes,
        audio_level: tuple[bool, int] | None,
        send_time: int,
    ) -> None:
        self.cache[seq % CACHE_SIZE] = (seq, marker, timestamp, payload)
        self.packets += 1
        self.octets += len(payload)
        params = self.params
        self.writer.send(
            self._sender, params.payload_type, marker, seq, timestamp, params.ssrc, payload,
            send_time, audio_level,
        )  # fmt: skip


class Leg:
    """One published track forwarded into one slot."""

    def __init__(self, track: PublishedTrack, slot: Slot) -> None:
        self.track = track
        self.slot = slot
        self.started = False
        self.first_upstream_seq = 0
        self.seq_offset = 0
        self.ts_offset = 0
        self.forwarded = 0
        self.since_start = 0
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

    def forward(self, packet: RtpView, keyframe: bool, now: float, send_time: int) -> None:
        """Rewrite ``packet`` for this leg and send it; ``now`` (monotonic) and
        ``send_time`` (abs-send-time) are taken once per packet for all legs."""
        if not self.started:
            if not keyframe:
                return  # a subscriber cannot decode anything before a keyframe
            if not self.connected:
                return  # a keyframe sent before DTLS is up is lost: wait for the next one
            self._start(packet, now)
        elif self.since_start < CACHE_SIZE and seq_newer(
            self.first_upstream_seq, packet.sequence_number
        ):
            return  # older than what this leg started with (a late retransmission)
        slot = self.slot
        seq = (packet.sequence_number + self.seq_offset) & 0xFFFF
        timestamp = (packet.timestamp + self.ts_offset) & 0xFFFFFFFF
        if seq_newer((seq + 1) & 0xFFFF, slot.next_seq):
            slot.next_seq = (seq + 1) & 0xFFFF
            slot.last_timestamp = timestamp
            slot.last_sent_at = now
        self.forwarded += 1
        self.since_start += 1
        slot.send(packet.marker, seq, timestamp, packet.payload, packet.audio_level, send_time)

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
