# Types of media/_fastpath.c.
from collections.abc import Callable
from typing import Any

import pylibsrtp

class Sender:
    sent: int
    dropped: int
    def __init__(
        self,
        dtls: Any,
        connected: Any,
        nominated: dict[int, Any],
        resolve: Callable[[Any], tuple[Any, int, str, int, pylibsrtp.Session] | None],
        later: Callable[[bytes], None],
    ) -> None: ...
    def __call__(self, data: bytes, /) -> None: ...

class Writer:
    audio_level_id: int
    abs_send_time_id: int
    def __init__(
        self, mid_element: bytes = b"", abs_send_time_id: int = 0, audio_level_id: int = 0
    ) -> None: ...
    def write(
        self,
        payload_type: int,
        marker: int,
        sequence_number: int,
        timestamp: int,
        ssrc: int,
        payload: bytes,
        send_time: int,
        audio_level: tuple[bool, int] | None = None,
        /,
    ) -> bytes: ...
    def send(
        self,
        sender: Sender,
        payload_type: int,
        marker: int,
        sequence_number: int,
        timestamp: int,
        ssrc: int,
        payload: bytes,
        send_time: int,
        audio_level: tuple[bool, int] | None = None,
        /,
    ) -> None: ...

class RtpView:
    payload_type: int
    marker: int
    sequence_number: int
    timestamp: int
    ssrc: int
    @property
    def payload(self) -> bytes: ...
    @property
    def audio_level(self) -> tuple[bool, int] | None: ...
    def __init__(
        self,
        payload_type: int,
        marker: int,
        sequence_number: int,
        timestamp: int,
        ssrc: int,
        payload: bytes,
        audio_level: tuple[bool, int] | None = None,
    ) -> None: ...

def parse(data: bytes, audio_level_id: int = 0, /) -> RtpView | None: ...

class Ingest:
    def __init__(
        self,
        session: pylibsrtp.Session,
        routes: dict[int, tuple[Callable[[RtpView], None], int]],
        learn: Callable[[bytes], tuple[Callable[[RtpView], None], int] | None],
    ) -> None: ...
    def __call__(self, data: bytes, /) -> None: ...

CACHE_SIZE: int
SRTP_SIGNATURE: str

class Stats:
    cycles: int
    packets_received: int
    base_seq: int | None
    max_seq: int | None
    packets_expected: int
    packets_lost: int
    fraction_lost: int
    jitter: int
    def __init__(self, clockrate: int) -> None: ...
    def add(self, packet: Any, now: float | None = None, /) -> None: ...

class SlotBase:
    writer: Writer
    _sender: Sender
    _payload_type: int
    _ssrc: int
    next_seq: int
    last_timestamp: int
    last_sent_at: float
    packets: int
    octets: int
    def send(
        self,
        marker: int,
        seq: int,
        timestamp: int,
        payload: bytes,
        audio_level: tuple[bool, int] | None,
        send_time: int,
        /,
    ) -> None: ...
    def cached(self, seq: int, /) -> tuple[int, int, bytes] | None: ...

class LegBase:
    slot: Any
    track: Any
    started: bool
    first_upstream_seq: int
    seq_offset: int
    ts_offset: int
    forwarded: int
    since_start: int
    def forward(self, packet: RtpView, keyframe: bool, now: float, send_time: int, /) -> None: ...

class TrackBase:
    _legs: tuple[Any, ...]
    sinks: list[Any]
    _stats: Stats | None
    packets: int
    fast_packets: int
    _highest: int
    _fast_pt: int
    _fast_ssrc: int
    closed: bool
    _gated: bool
    _fast: bool
    _is_video: bool
    def __call__(self, packet: RtpView, /) -> None: ...
