"""Every entry point of media/_fastpath.c driven with arbitrary input (Hypothesis): no
crash, no sanitizer report (``make sanitize`` runs this file against a build with
AddressSanitizer and UndefinedBehaviorSanitizer), and what leaves the socket is always
SRTP the subscriber can open. ``COREVIEW_FUZZ_EXAMPLES`` sets how many sequences run."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pylibsrtp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from media import _fastpath

EXAMPLES = int(os.environ.get("COREVIEW_FUZZ_EXAMPLES", "150"))
fuzz = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
KEY = bytes(range(30))
CONNECTED = object()
STREAM_SSRC, STREAM_PT = 0x1234, 100

ids = st.integers(-2, 16)
u8, u16, u32 = st.integers(0, 0xFF), st.integers(0, 0xFFFF), st.integers(0, 0xFFFFFFFF)
anything = st.one_of(st.none(), st.integers(-(2**70), 2**70), st.floats(), st.binary(max_size=8))
levels = st.one_of(st.none(), st.tuples(st.booleans(), st.integers(-1, 200)), anything)


def session(direction: int) -> pylibsrtp.Session:
    return pylibsrtp.Session(pylibsrtp.Policy(key=KEY, ssrc_type=direction))


@st.composite
def extension_block(draw: st.DrawFn) -> bytes:
    """A one- or two-byte extension block whose elements may be malformed."""
    block = draw(st.binary(max_size=32))
    words = (len(block) + 3) // 4 if draw(st.booleans()) else draw(st.integers(0, 12))
    profile = draw(st.sampled_from([b"\xbe\xde", b"\x10\x00", b"\x12\x34"]))
    return profile + words.to_bytes(2, "big") + block


@st.composite
def rtp_bytes(draw: st.DrawFn) -> bytes:
    """Plaintext RTP: a header (CSRCs, extension, padding bits arbitrary), then anything."""
    first = 0x80 | draw(st.integers(0, 0x3F))
    head = bytes([first, draw(u8)]) + draw(st.binary(min_size=10, max_size=10))
    extension = draw(extension_block()) if first & 0x10 else b""
    return head + extension + draw(st.binary(max_size=120))


class Track(_fastpath.TrackBase):
    def __init__(self) -> None:
        self.sinks = []
        self._legs = ()
        self.errors = 0
        self.delivered = 0

    def deliver(self, view: Any) -> None:
        """Python's path, as forwarder.PublishedTrack's: every leg, then arm C."""
        self.delivered += 1
        for leg in self._legs:
            leg.forward(view, True, 2.0, 0)
        self._fast, self._gated = True, False
        self._fast_pt, self._fast_ssrc = view.payload_type, view.ssrc
        self._highest = view.sequence_number

    def _failed(self) -> None:
        self.errors += 1


class Slot(_fastpath.SlotBase):
    pass


class Leg(_fastpath.LegBase):
    connected = True

    def _start(self, packet: Any, now: float) -> None:
        self.started = True
        self.first_upstream_seq = packet.sequence_number


class Sink:
    def __init__(self, fail: bool) -> None:
        self.fail = fail

    def packet(self, view: Any, arrival: float) -> None:
        if self.fail:
            raise ValueError("sink failed")

    def ended(self) -> None:
        pass


class Rig:
    """A publisher's SRTP in, C's ingest, one track with two legs, and a Sender that
    protects onto a loopback socket the test reads back."""

    def __init__(self, inbox: socket.socket, outbox: socket.socket) -> None:
        self.inbox = inbox
        self.publisher = session(pylibsrtp.Policy.SSRC_ANY_OUTBOUND)
        self.subscriber = session(pylibsrtp.Policy.SSRC_ANY_INBOUND)
        host, port = inbox.getsockname()
        udp = SimpleNamespace(is_closing=lambda: False)
        route = (udp, outbox.fileno(), host, port, session(pylibsrtp.Policy.SSRC_ANY_OUTBOUND))
        self.dtls = SimpleNamespace(_state=CONNECTED)
        self.later: list[bytes] = []
        self.sender = _fastpath.Sender(
            self.dtls, CONNECTED, {1: "pair"}, lambda pair: route, self.later.append
        )
        self.track = Track()
        self.track._stats = _fastpath.Stats(90000)
        self.track._is_video = True
        self.legs = []
        self.slots = []
        for mid in (b"\x10a", b""):
            slot = Slot()
            slot.writer = _fastpath.Writer(mid, 2, 3)
            slot._sender = self.sender
            slot._ssrc = 1000 + len(self.slots)
            self.slots.append(slot)
            leg = Leg()
            leg.slot, leg.track = slot, self.track
            self.legs.append(leg)
        self.track._legs = tuple(self.legs)
        self.seq = 0
        self.routes: dict[int, tuple[Any, int]] = {STREAM_SSRC: (self.track, 1)}
        self.ingest = _fastpath.Ingest(
            session(pylibsrtp.Policy.SSRC_ANY_INBOUND), self.routes, self.learn
        )

    def media(self, step: int, marker: bool, extension: bytes, payload: bytes) -> bytes:
        """The publisher's next packet of its one stream (SSRC, payload type fixed)."""
        self.seq = (self.seq + step) & 0xFFFF
        first = 0x90 if extension else 0x80
        head = bytes([first, marker << 7 | STREAM_PT]) + self.seq.to_bytes(2, "big")
        head += (self.seq * 3000).to_bytes(4, "big") + STREAM_SSRC.to_bytes(4, "big")
        return self.publisher.protect(head + extension + payload)

    def learn(self, data: bytes) -> tuple[Any, int] | None:
        ssrc = int.from_bytes(data[8:12], "big")
        if ssrc % 3 == 0:
            return None
        route = self.routes[ssrc] = (self.track, ssrc % 16)
        return route

    def drain(self) -> int:
        """Read what the Sender sent; count what the subscriber's keys open (a packet
        sent twice is refused as a replay, as a browser would)."""
        opened = 0
        while True:
            try:
                data = self.inbox.recv(2048)
            except BlockingIOError:
                return opened
            unprotect = (
                self.subscriber.unprotect_rtcp if 191 < data[1] < 209 else self.subscriber.unprotect
            )
            try:
                unprotect(data)
                opened += 1
            except pylibsrtp.Error:
                pass


@pytest.fixture(scope="module")
def sockets() -> Iterator[tuple[socket.socket, socket.socket]]:
    inbox = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    outbox = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    inbox.bind(("127.0.0.1", 0))
    inbox.setblocking(False)
    try:
        yield inbox, outbox
    finally:
        inbox.close()
        outbox.close()


media = st.tuples(
    st.just("media"),
    st.sampled_from([1, 1, 1, 1, 2, 0, -1, 300]),
    st.booleans(),
    st.one_of(st.just(b""), extension_block(), st.just(b"\xbe\xde\x00\x01\x10\x85\x00\x00")),
    st.binary(max_size=1500),
)
operation = st.one_of(
    media,
    media,
    st.tuples(st.just("burst"), st.integers(1, 30), st.binary(max_size=200)),
    st.tuples(st.just("ingest"), rtp_bytes()),
    st.tuples(st.just("ingest_raw"), st.binary(max_size=1600)),
    st.tuples(st.just("ingest_flipped"), rtp_bytes(), st.integers(0, 2000), u8),
    st.tuples(st.just("steady"), st.booleans(), st.booleans(), u8, u32, st.integers(-1, 0x10000)),
    st.tuples(
        st.just("forward"),
        u8,
        u8,
        u16,
        u32,
        u32,
        st.binary(max_size=1500),
        levels,
        st.booleans(),
        anything,
    ),
    st.tuples(
        st.just("send"), anything, anything, anything, st.binary(max_size=1500), levels, anything
    ),
    st.tuples(st.just("cached"), st.integers(-(2**40), 2**40)),
    st.tuples(st.just("sinks"), st.lists(st.booleans(), max_size=2)),
    st.tuples(st.just("started"), st.booleans(), st.booleans(), st.integers(-5, 0x10005)),
    st.tuples(st.just("slot"), st.sampled_from(["none", "other", "back"])),
    st.tuples(st.just("state"), st.booleans()),
    st.tuples(st.just("sender"), st.binary(max_size=1600)),
)


@fuzz
@given(st.lists(operation, max_size=60))
def test_any_sequence_of_calls_is_safe(
    sockets: tuple[socket.socket, socket.socket], steps: list[tuple[Any, ...]]
) -> None:
    """Ingest (SRTP of arbitrary RTP, bytes that are not SRTP, flipped bits), the
    steady state switched on and off under it, legs and slots given arbitrary packets
    and arguments, slots taken away, sinks that fail, DTLS down: every call returns or
    raises a Python exception, and the counters stay coherent."""
    rig = Rig(*sockets)
    track = rig.track
    opened = 0
    for step in steps:
        kind, args = step[0], step[1:]
        try:
            if kind == "media":
                rig.ingest(rig.media(*args))
            elif kind == "burst":
                for _ in range(args[0]):
                    rig.ingest(rig.media(1, False, b"", args[1]))
            elif kind == "ingest":
                rig.ingest(rig.publisher.protect(args[0]))
            elif kind == "ingest_raw":
                rig.ingest(args[0])
            elif kind == "ingest_flipped":
                data = bytearray(rig.publisher.protect(args[0]))
                data[args[1] % len(data)] ^= args[2] or 1
                rig.ingest(bytes(data))
            elif kind == "steady":
                track._fast, track._gated, track._fast_pt, track._fast_ssrc, track._highest = args
            elif kind == "forward":
                view = _fastpath.RtpView(*args[:7])
                rig.legs[0].forward(view, args[7], 1.0, args[8])
            elif kind == "send":
                rig.slots[1].send(*args)
            elif kind == "cached":
                rig.slots[0].cached(args[0])
            elif kind == "sinks":
                track.sinks = [Sink(fail) for fail in args[0]]
            elif kind == "started":
                rig.legs[0].started, rig.legs[1].started, rig.legs[1].first_upstream_seq = args
            elif kind == "slot":
                rig.legs[0].slot = {"none": None, "other": object(), "back": rig.slots[0]}[args[0]]
            elif kind == "state":
                rig.dtls._state = CONNECTED if args[0] else "closed"
            elif kind == "sender":
                rig.sender(args[0])
        except (TypeError, ValueError, OverflowError, pylibsrtp.Error):
            pass
        opened += rig.drain()
    assert opened <= rig.sender.sent
