"""Media rooms: one per live review session. Each participant has one server-side
peer connection carrying what it publishes (its sendonly transceivers) and a fixed set
of subscriber slots (its recvonly transceivers) that the room fills with the others'
tracks — so joins and leaves never renegotiate (aiortc's renegotiation is fragile)."""

from __future__ import annotations

import asyncio
import logging
import os
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from aiortc import (
    MediaStreamTrack,
    RTCBundlePolicy,
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
    sdp,
)

from media import hooks
from media.candidates import CandidatePolicy
from media.forwarder import Leg, PublishedTrack, Slot

logger = logging.getLogger(__name__)

Source = Literal["face", "document", "audio"]
SOURCES: tuple[Source, ...] = ("face", "document", "audio")
SOURCE_KIND: dict[str, str] = {"face": "video", "document": "video", "audio": "audio"}
PUBLISH_BITRATE = 5_000_000
"""REMB sent to publishers unless a congested subscriber reports less (bits/s)."""
REMB_INTERVAL = 1.0
INGESTS = ("fast", "aiortc")
SENDS = ("sync", "async")


def _mode(variable: str, choices: tuple[str, ...]) -> str:
    value = os.environ.get(variable, choices[0])
    if value not in choices:
        raise ValueError(f"{variable} must be one of {', '.join(choices)}, not {value!r}")
    return value


class MediaError(Exception):
    """Base of media errors; ``code`` is stable."""

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code


class IdleTrack(MediaStreamTrack):
    """A sender's track that never yields: forwarded packets bypass the encoder."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self._never: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def recv(self) -> None:  # type: ignore[override]
        await self._never


@dataclass(frozen=True)
class MediaConfig:
    announced_addresses: tuple[str, ...] = ()
    """Addresses announced in ICE; empty: this host's addresses."""
    udp_port_min: int = 0
    udp_port_max: int = 0
    ice_allowed_networks: tuple[str, ...] = ()
    """Remote candidates in these networks are always accepted."""
    ice_denied_networks: tuple[str, ...] = ()
    """Remote candidates in these networks are dropped, besides the defaults
    (media/candidates.py)."""
    ingest: str = field(default_factory=lambda: _mode("COREVIEW_MEDIA_INGEST", INGESTS))
    """``fast``: media packets go from the socket straight to forwarding
    (``hooks.fast_ingest``); ``aiortc``: through aiortc's transport and receiver."""
    send: str = field(default_factory=lambda: _mode("COREVIEW_MEDIA_SEND", SENDS))
    """``sync``: each forwarded packet is protected and sent at once
    (``hooks.rtp_sender``); ``async``: through aiortc's coroutines."""

    def __post_init__(self) -> None:
        if self.ingest not in INGESTS or self.send not in SENDS:
            raise ValueError(f"unknown media mode: ingest {self.ingest!r}, send {self.send!r}")


@dataclass
class MediaTotals:
    """Counters of this node's media since start, read when metrics are scraped (the
    forwarder's own per-track and per-slot counters, summed; nothing per packet)."""

    rooms: int = 0
    peers: int = 0
    published_tracks: int = 0
    received_packets: int = 0
    """RTP packets received from publishers (RTX unwrapped)."""
    forwarded_packets: int = 0
    """RTP packets sent to subscribers, retransmissions included."""
    forwarded_bytes: int = 0
    """Payload bytes of those packets."""
    ingest_errors: int = 0
    """Received packets whose handling raised (logged and dropped)."""

    def add(self, other: MediaTotals) -> None:
        self.received_packets += other.received_packets
        self.forwarded_packets += other.forwarded_packets
        self.forwarded_bytes += other.forwarded_bytes
        self.ingest_errors += other.ingest_errors


@dataclass
class Peer:
    participant: str
    pc: RTCPeerConnection
    tracks: dict[str, PublishedTrack] = field(default_factory=dict)
    slots: dict[str, Slot] = field(default_factory=dict)  # by mid
    quiet: bool = False  # a hidden subscriber: asks publishers for nothing

    def totals(self) -> MediaTotals:
        return MediaTotals(
            peers=1,
            published_tracks=len(self.tracks),
            received_packets=sum(t.packets for t in self.tracks.values()),
            forwarded_packets=sum(s.packets for s in self.slots.values()),
            forwarded_bytes=sum(s.octets for s in self.slots.values()),
            ingest_errors=sum(t.errors for t in self.tracks.values()),
        )


StateCallback = Callable[[str, str], Awaitable[None]]
"""(participant, connection state) → None; states as RTCPeerConnection.connectionState."""
TrackCallback = Callable[[PublishedTrack], None]
"""Told of each newly published track instance (before its first packet), e.g. to
attach packet sinks to ``track.sinks``."""


def _offer_directions(description: sdp.SessionDescription) -> dict[str, str]:
    return {m.rtp.muxId: m.direction or "sendrecv" for m in description.media if m.rtp.muxId}


class MediaRoom:
    def __init__(
        self,
        room_id: str,
        config: MediaConfig,
        on_state: StateCallback | None = None,
        on_slots: Callable[[], Awaitable[None]] | None = None,
        on_track: TrackCallback | None = None,
    ) -> None:
        self.room_id = room_id
        self._config = config
        self._on_state = on_state
        self._on_slots = on_slots
        self._on_track = on_track
        self._candidates = CandidatePolicy.for_server(
            config.announced_addresses, config.ice_allowed_networks, config.ice_denied_networks
        )
        self._peers: dict[str, Peer] = {}
        self._departed = MediaTotals()
        """Counters of the connections closed so far."""
        self._remb_task = asyncio.create_task(self._send_remb())

    async def connect(
        self,
        participant: str,
        offer_sdp: str,
        publish: Mapping[str, str],
        allowed: frozenset[str],
        *,
        quiet: bool = False,
    ) -> str:
        """Answer a participant's offer. ``publish`` maps the mids of its sendonly
        transceivers to sources; ``allowed`` is what its join token lets it publish.
        A ``quiet`` participant (a hidden auditor) asks the publishers for nothing: its
        legs start on the next keyframe someone else causes, and its loss never lowers
        their bitrate. A participant that connects again replaces its old connection."""
        offer_sdp, offer = self._check_offer(offer_sdp, publish, allowed)
        await self.disconnect(participant, notify=False)
        peer = self._open_peer(participant, quiet)
        await self._negotiate(peer, offer_sdp, offer, publish)
        self._hook_transceivers(peer, publish)
        self._watch_state(peer)
        await self._assign()
        return peer.pc.localDescription.sdp

    def _check_offer(
        self, offer_sdp: str, publish: Mapping[str, str], allowed: frozenset[str]
    ) -> tuple[str, sdp.SessionDescription]:
        """The offer without refused ICE candidates, as text and parsed; MediaError if it
        cannot be parsed or ``publish`` names a source not allowed or a mid that does
        not send that kind."""
        for mid, source in publish.items():
            if source not in allowed:
                raise MediaError("source_not_allowed", f"{source} on mid {mid}")
        offer_sdp, refused = self._candidates.filter_sdp(offer_sdp)
        if refused:
            logger.info("room %s: dropped %d refused ICE candidates", self.room_id, len(refused))
            logger.debug("room %s: refused candidate addresses %s", self.room_id, refused)
        try:
            offer = sdp.SessionDescription.parse(offer_sdp)
        except Exception as exc:  # aiortc's parser raises anything from ValueError to StopIteration
            raise MediaError("bad_sdp", repr(exc)) from exc
        if not offer.media:
            raise MediaError("bad_sdp", "no media")
        directions = _offer_directions(offer)
        kinds = {m.rtp.muxId: m.kind for m in offer.media}
        for mid, source in publish.items():
            if directions.get(mid) not in ("sendonly", "sendrecv"):
                raise MediaError("bad_publish_map", f"mid {mid} does not send")
            if kinds.get(mid) != SOURCE_KIND[source]:
                raise MediaError("bad_publish_map", f"mid {mid} is not {SOURCE_KIND[source]}")
        return offer_sdp, offer

    def _open_peer(self, participant: str, quiet: bool) -> Peer:
        """A new peer connection for the participant, in the room from now on."""
        pc = RTCPeerConnection(
            RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
        )
        peer = Peer(participant, pc, quiet=quiet)
        self._peers[participant] = peer
        return peer

    async def _negotiate(
        self,
        peer: Peer,
        offer_sdp: str,
        offer: sdp.SessionDescription,
        publish: Mapping[str, str],
    ) -> None:
        """Apply the offer, set each transceiver's direction and make the answer. On a
        failure the peer is closed (and leaves the room) and MediaError raised."""
        pc = peer.pc
        try:
            await pc.setRemoteDescription(RTCSessionDescription(offer_sdp, "offer"))
            self._set_directions(pc, _offer_directions(offer), publish)
            hooks.register_rtx_ssrcs(pc, offer)
            hooks.control_host_candidates(
                pc,
                self._config.announced_addresses,
                self._config.udp_port_min,
                self._config.udp_port_max,
                fast=self._config.ingest == "fast",
            )
            await pc.setLocalDescription(await pc.createAnswer())
        except Exception as exc:  # e.g. OperationError: no codec in common
            if self._peers.get(peer.participant) is peer:
                await self.disconnect(peer.participant)
            else:
                await pc.close()
            raise MediaError("bad_sdp", repr(exc)) from exc

    @staticmethod
    def _set_directions(
        pc: RTCPeerConnection, directions: Mapping[str, str], publish: Mapping[str, str]
    ) -> None:
        """The offer's recvonly transceivers become our subscriber slots (sendonly, idle
        until a leg fills them), its published mids our recvonly ones; the rest inactive."""
        for transceiver in pc.getTransceivers():
            direction = directions.get(transceiver.mid or "", "inactive")
            if direction == "recvonly":
                transceiver.sender.replaceTrack(IdleTrack(transceiver.kind))
                transceiver.direction = "sendonly"
            elif transceiver.mid in publish:
                transceiver.direction = "recvonly"
            else:
                transceiver.direction = "inactive"

    def _hook_transceivers(self, peer: Peer, publish: Mapping[str, str]) -> None:
        """A slot for each sendonly transceiver; a published track for each recvonly one
        (told to ``on_track``)."""
        for transceiver in peer.pc.getTransceivers():
            mid = transceiver.mid or ""
            if transceiver.direction == "sendonly":
                params = hooks.sender_params(transceiver)
                peer.slots[mid] = Slot(
                    transceiver.sender,
                    params,
                    transceiver.kind,
                    next_seq=random.randrange(0x10000),  # noqa: S311 - not a secret
                    last_timestamp=random.randrange(0x100000000),  # noqa: S311
                    rtx_seq=random.randrange(0x10000),  # noqa: S311
                    quiet=peer.quiet,
                    sync=self._config.send == "sync",
                )
            elif transceiver.direction == "recvonly":
                source = publish[mid]
                peer.tracks[source] = PublishedTrack(
                    peer.participant,
                    source,
                    transceiver.kind,
                    hooks.codec_mime_type(transceiver),
                    transceiver.receiver,
                )
                if self._on_track is not None:
                    self._on_track(peer.tracks[source])

    def _watch_state(self, peer: Peer) -> None:
        """Once connected: the fast ingest (if on) and keyframes asked for; every state
        told to ``on_state`` while the peer is still the participant's."""
        pc, participant = peer.pc, peer.participant

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            if self._peers.get(participant) is not peer:
                return
            if pc.connectionState == "connected":
                if self._config.ingest == "fast":
                    hooks.fast_ingest(pc, {t.receiver: t for t in peer.tracks.values()})
                self._request_keyframes(peer)
            if self._on_state is not None:
                await self._on_state(participant, pc.connectionState)

    async def disconnect(self, participant: str, *, notify: bool = True) -> None:
        peer = self._peers.pop(participant, None)
        if peer is None:
            return
        self._departed.add(peer.totals())
        for track in peer.tracks.values():
            await track.close()
        for slot in peer.slots.values():
            if slot.leg is not None:
                slot.leg.detach()
        await peer.pc.close()
        if notify:
            await self._assign()

    def slots(self, participant: str) -> dict[str, dict[str, str] | None]:
        """What each of the participant's receiving transceivers (by mid) carries."""
        peer = self._peers.get(participant)
        if peer is None:
            return {}
        return {
            mid: (
                {"participant": slot.leg.track.participant, "source": slot.leg.track.source}
                if slot.leg is not None
                else None
            )
            for mid, slot in peer.slots.items()
        }

    def track(self, participant: str, source: str) -> PublishedTrack | None:
        peer = self._peers.get(participant)
        return peer.tracks.get(source) if peer else None

    def totals(self) -> MediaTotals:
        """Counters of every connection the room had; connections open now."""
        found = MediaTotals(rooms=1)
        found.add(self._departed)
        for peer in self._peers.values():
            current = peer.totals()
            found.add(current)
            found.peers += 1
            found.published_tracks += current.published_tracks
        return found

    async def _assign(self) -> None:
        """Put every published track into a free slot of every other participant; ask
        for a keyframe for each new leg; tell the participants what their slots carry."""
        for subscriber in self._peers.values():
            shown = {
                (s.leg.track.participant, s.leg.track.source)
                for s in subscriber.slots.values()
                if s.leg is not None
            }
            for publisher in self._peers.values():
                if publisher is subscriber:
                    continue
                for source in SOURCES:
                    track = publisher.tracks.get(source)
                    if track is None or (publisher.participant, source) in shown:
                        continue
                    slot = next(
                        (
                            s
                            for s in subscriber.slots.values()
                            if s.leg is None and s.kind == track.kind
                        ),
                        None,
                    )
                    if slot is None:
                        continue
                    Leg(track, slot)
                    if subscriber.pc.connectionState == "connected" and not subscriber.quiet:
                        track.request_keyframe()  # else once it is (on_state)
        if self._on_slots is not None:
            await self._on_slots()

    def _request_keyframes(self, subscriber: Peer) -> None:
        """A subscriber's legs cannot start before its connection is up: ask for the
        keyframes they wait for once it is."""
        for slot in subscriber.slots.values():
            if slot.leg is not None and slot.leg.awaits_keyframe():
                slot.leg.track.request_keyframe()

    async def _send_remb(self) -> None:
        """Tell each publisher how much it may send: our target, clamped by the lowest
        estimate of a subscriber that is losing packets. A subscriber's estimate alone
        does not clamp: it grows only with what it receives, so it would hold the
        document camera low for tens of seconds at the start of every call."""
        while True:
            await asyncio.sleep(REMB_INTERVAL)
            for peer in tuple(self._peers.values()):
                try:
                    self._remb_to(peer)
                except Exception:
                    logger.exception("REMB to %s failed", peer.participant)

    def _remb_to(self, peer: Peer) -> None:
        video = [t for t in peer.tracks.values() if t.kind == "video" and t.ssrc]
        if not video:
            return
        reports = [
            leg.slot.remb
            for t in video
            for leg in t.legs
            if leg.slot.remb is not None and leg.slot.congested
        ]
        bitrate = min([PUBLISH_BITRATE, *reports])
        hooks.send_remb(video[0].receiver, bitrate, [t.ssrc for t in video if t.ssrc is not None])

    async def close(self) -> None:
        self._remb_task.cancel()
        await asyncio.gather(self._remb_task, return_exceptions=True)
        for participant in list(self._peers):
            await self.disconnect(participant, notify=False)


class MediaServer:
    """Owns the rooms of this node."""

    def __init__(self, config: MediaConfig) -> None:
        self.config = config
        self._rooms: dict[str, MediaRoom] = {}
        self._closed = MediaTotals()
        """Counters of the rooms closed so far."""

    def totals(self) -> MediaTotals:
        """This node's media counters since start, and what is open now."""
        found = MediaTotals()
        found.add(self._closed)
        for room in self._rooms.values():
            current = room.totals()
            found.add(current)
            found.rooms += 1
            found.peers += current.peers
            found.published_tracks += current.published_tracks
        return found

    def room(
        self,
        room_id: str,
        on_state: StateCallback | None = None,
        on_slots: Callable[[], Awaitable[None]] | None = None,
        on_track: TrackCallback | None = None,
    ) -> MediaRoom:
        room = self._rooms.get(room_id)
        if room is None:
            room = self._rooms[room_id] = MediaRoom(
                room_id, self.config, on_state, on_slots, on_track
            )
        return room

    async def close_room(self, room_id: str) -> None:
        room = self._rooms.pop(room_id, None)
        if room is not None:
            await room.close()
            self._closed.add(room.totals())

    async def close(self) -> None:
        for room_id in list(self._rooms):
            await self.close_room(room_id)
