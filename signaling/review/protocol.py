"""The signalling protocol (version 1): typed messages with ``parse`` and ``to_json``.

Every message is a JSON object ``{"v": 1, "type": ..., ...}``; docs/protocol.md shows
each with an example. Parsing checks size, version, type and every field, and raises
``ProtocolError`` with a stable code; the connection stays up.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, ClassVar

from signaling.web.validation import normalize_text

VERSION = 1
MAX_MESSAGE_BYTES = 64 * 1024
"""An SDP offer with seven transceivers is ~10 KB; anything far larger is refused."""
MAX_CHAT_CHARS = 1000
SOURCES = ("face", "document", "audio")


class ProtocolError(ValueError):
    """A message that cannot be accepted; ``code`` is stable (see docs/protocol.md)."""

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code
        self.detail = detail


@dataclass(frozen=True)
class Message:
    type: ClassVar[str]

    def to_json(self) -> str:
        body = {"v": VERSION, "type": self.type, **dataclasses.asdict(self)}
        return json.dumps(body, ensure_ascii=False, separators=(",", ":"))


# -- client to server ---------------------------------------------------------------------


@dataclass(frozen=True)
class Join(Message):
    """First message on a socket: the join token from ``POST /sessions/{id}/token``."""

    type: ClassVar[str] = "join"
    token: str


@dataclass(frozen=True)
class Offer(Message):
    """An SDP offer; ``publish`` maps the mids of sendonly transceivers to sources.
    Every recvonly transceiver becomes a slot the server fills with others' tracks."""

    type: ClassVar[str] = "offer"
    sdp: str
    publish: dict[str, str]


@dataclass(frozen=True)
class Chat(Message):
    type: ClassVar[str] = "chat"
    text: str


@dataclass(frozen=True)
class MediaState(Message):
    """What the sender currently sends (muted microphone, camera off)."""

    type: ClassVar[str] = "media_state"
    audio: bool
    face: bool
    document: bool


@dataclass(frozen=True)
class Hangup(Message):
    """Leave the session for good (not a reconnect)."""

    type: ClassVar[str] = "hangup"


@dataclass(frozen=True)
class Requeue(Message):
    """The clerk puts a live session no approver is in any more back in the queue."""

    type: ClassVar[str] = "requeue"


@dataclass(frozen=True)
class End(Message):
    """The accepting approver or a co-approver ends the session for everyone."""

    type: ClassVar[str] = "end"


@dataclass(frozen=True)
class Ping(Message):
    type: ClassVar[str] = "ping"


@dataclass(frozen=True)
class StillRequest(Message):
    """An approver asks the clerk for a full-resolution still of the document camera,
    optionally for one required material of the matter (``matter_materials`` id)."""

    type: ClassVar[str] = "still_request"
    material: int | None = None


# -- server to client ---------------------------------------------------------------------


@dataclass(frozen=True)
class Joined(Message):
    type: ClassVar[str] = "joined"
    participant: str
    role: str
    hidden: bool
    publish: list[str]
    session: dict[str, Any]
    ice_servers: list[dict[str, Any]]


@dataclass(frozen=True)
class Answer(Message):
    type: ClassVar[str] = "answer"
    sdp: str


@dataclass(frozen=True)
class Slots(Message):
    """What each of the receiver's recvonly transceivers (by mid) carries, or null."""

    type: ClassVar[str] = "slots"
    slots: dict[str, dict[str, str] | None]


@dataclass(frozen=True)
class Participants(Message):
    type: ClassVar[str] = "participants"
    participants: list[dict[str, Any]]


@dataclass(frozen=True)
class State(Message):
    """The session's state: waiting, live, ended, cancelled, timed_out."""

    type: ClassVar[str] = "state"
    state: str
    reason: str
    message: str


@dataclass(frozen=True)
class ChatPosted(Message):
    type: ClassVar[str] = "chat_posted"
    sender: str
    display_name: str
    text: str
    at: str


@dataclass(frozen=True)
class ChatHistory(Message):
    """The session's chat so far, oldest first, each as in ``chat_posted`` (sent after
    every join and rejoin)."""

    type: ClassVar[str] = "chat_history"
    messages: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class MaterialMarked(Message):
    """An approver marked a required material (a later mark of it supersedes this)."""

    type: ClassVar[str] = "material_marked"
    mark: dict[str, Any]


@dataclass(frozen=True)
class DecisionRecorded(Message):
    """The case's decision was recorded (once per case)."""

    type: ClassVar[str] = "decision_recorded"
    decision: dict[str, Any]


@dataclass(frozen=True)
class PeerMediaState(Message):
    type: ClassVar[str] = "peer_media_state"
    participant: str
    audio: bool
    face: bool
    document: bool


@dataclass(frozen=True)
class StillRequested(Message):
    """An approver asked for a still; the clerk's page takes it and uploads it with
    ``request`` (docs/api.md)."""

    type: ClassVar[str] = "still_requested"
    request: str
    material: dict[str, Any] | None
    requested_by: str
    display_name: str


@dataclass(frozen=True)
class StillAdded(Message):
    """A still was stored for the session (the same JSON as the upload's answer)."""

    type: ClassVar[str] = "still_added"
    still: dict[str, Any]


@dataclass(frozen=True)
class Error(Message):
    type: ClassVar[str] = "error"
    code: str
    message: str


@dataclass(frozen=True)
class Notice(Message):
    """Who is (not) there: ``approvers_left`` to the clerk (it may ``requeue``),
    ``clerk_left`` to the approvers."""

    type: ClassVar[str] = "notice"
    code: str
    message: str


@dataclass(frozen=True)
class Pong(Message):
    type: ClassVar[str] = "pong"


@dataclass(frozen=True)
class Queue(Message):
    """The live queue of an approver's department (and invitations to it)."""

    type: ClassVar[str] = "queue"
    items: list[dict[str, Any]] = field(default_factory=list)


CLIENT_MESSAGES: dict[str, type[Message]] = {
    m.type: m for m in (Join, Offer, Chat, MediaState, Hangup, End, Ping, StillRequest, Requeue)
}


def _text(data: dict[str, Any], name: str, limit: int) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value.strip():
        raise ProtocolError("bad_field", name)
    if len(value) > limit:
        raise ProtocolError("too_long", name)
    return value


def _flag(data: dict[str, Any], name: str) -> bool:
    value = data.get(name)
    if not isinstance(value, bool):
        raise ProtocolError("bad_field", name)
    return value


def _publish(data: dict[str, Any]) -> dict[str, str]:
    value = data.get("publish")
    if not isinstance(value, dict) or len(value) > len(SOURCES):
        raise ProtocolError("bad_field", "publish")
    for mid, source in value.items():
        if not isinstance(mid, str) or len(mid) > 16 or source not in SOURCES:
            raise ProtocolError("bad_field", "publish")
    if len(set(value.values())) != len(value):
        raise ProtocolError("bad_field", "publish")
    return dict(value)


def _material(data: dict[str, Any]) -> int | None:
    value = data.get("material")
    if value is None:
        return None
    if type(value) is not int or not 0 < value < 2**31:  # not True, not 1.0
        raise ProtocolError("bad_field", "material")
    return value


def parse(raw: str | bytes) -> Message:
    """Parse one client message."""
    if len(raw) > MAX_MESSAGE_BYTES or (
        isinstance(raw, str) and len(raw.encode("utf-8", "surrogatepass")) > MAX_MESSAGE_BYTES
    ):  # the limit is in UTF-8 bytes, as on the wire, also for text already decoded
        raise ProtocolError("too_large")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # RecursionError: nesting
        raise ProtocolError("bad_json") from exc
    if not isinstance(data, dict):
        raise ProtocolError("bad_json")
    version = data.get("v")
    if type(version) is not int or version != VERSION:  # not True, not 1.0
        raise ProtocolError("bad_version")
    kind = data.get("type")
    if kind == Join.type:
        return Join(_text(data, "token", 4096))
    if kind == Offer.type:
        return Offer(_text(data, "sdp", MAX_MESSAGE_BYTES), _publish(data))
    if kind == Chat.type:
        text = normalize_text(_text(data, "text", MAX_CHAT_CHARS).strip(), multiline=True)
        if text is None:
            raise ProtocolError("bad_field", "text")
        return Chat(text)
    if kind == MediaState.type:
        return MediaState(_flag(data, "audio"), _flag(data, "face"), _flag(data, "document"))
    if kind == StillRequest.type:
        return StillRequest(_material(data))
    if isinstance(kind, str) and kind in CLIENT_MESSAGES:
        return CLIENT_MESSAGES[kind]()
    raise ProtocolError("unknown_type", str(kind)[:32])
