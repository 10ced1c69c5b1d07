# Types of media/_fastpath.c.
from collections.abc import Callable
from typing import Any

class Transform:
    def __init__(self, session: Any, func: int, ctx: int, trailer: int) -> None: ...
    def __call__(self, data: bytes, /) -> bytes: ...

class Sender:
    sent: int
    dropped: int
    def __init__(
        self,
        dtls: Any,
        connected: Any,
        nominated: dict[int, Any],
        resolve: Callable[[Any], tuple[Any, ...] | None],
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
        session: Any,
        unprotect: int,
        ctx: int,
        routes: dict[int, tuple[Callable[[RtpView], None], int]],
        learn: Callable[[bytes], tuple[Callable[[RtpView], None], int] | None],
    ) -> None: ...
    def __call__(self, data: bytes, /) -> None: ...
