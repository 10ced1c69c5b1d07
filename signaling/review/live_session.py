"""One live review session in this process: its participants, their sockets and reconnect
grace, chat and the media room, driven by the signalling protocol (signaling/review/protocol.py).
The hub (signaling/review/live_hub.py) owns the sessions and the sockets' reading; a session sees it
only as a ``SessionHub``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiohttp import web

from media.forwarder import PublishedTrack
from media.room import MediaError, MediaRoom, MediaServer
from recorder.auditlog import AuditLog
from recorder.clock import Clock
from recorder.recording import Recorder, SessionRecording
from signaling.china_time import CHINA_TIME
from signaling.review import protocol
from signaling.review.join_tokens import Grant
from signaling.review.recordings import attach, close_quietly
from signaling.review.sessions import FINAL_STATES, Reviews, ReviewSession, session_topic
from signaling.review.stills import Stills
from signaling.settings import Settings
from signaling.storage.bus import Bus
from signaling.web.errors import Conflict, SignalingError
from signaling.web.messages import CLERK_LEAVE_REASONS, RECORDING_FAILURES, message

logger = logging.getLogger(__name__)

CLOSE_REPLACED = 4000
CLOSE_ENDED = 4001
CLOSE_POLICY = 1008
CLOSE_RESTART = 1012
"""The server is going down: reconnect (the session goes on)."""


class SessionHub(Protocol):
    """What a live session uses of the hub that owns it (signaling/review/live_hub.py's LiveHub)."""

    settings: Settings
    clock: Clock
    reviews: Reviews
    media: MediaServer
    audit: AuditLog
    bus: Bus
    stills: Stills
    recorder: Recorder | None
    sessions: dict[str, LiveSession]

    def spawn(self, coro: Any) -> None: ...


@dataclass
class Participant:
    grant: Grant
    display_name: str
    socket: web.WebSocketResponse | None = None
    state: str = "connected"  # connected | reconnecting
    media: dict[str, bool] = field(default_factory=lambda: dict.fromkeys(protocol.SOURCES, True))
    grace: asyncio.TimerHandle | None = None
    slots_sent: dict[str, Any] | None = None
    """The slots last sent on the current socket (None: nothing sent on it yet)."""

    def describe(self) -> dict[str, Any]:
        return {
            "participant": self.grant.username,
            "display_name": self.display_name,
            "role": self.grant.role,
            "state": self.state,
            "hidden": self.grant.hidden,
            **{f"{k}_on": v for k, v in self.media.items()},
        }


async def send(socket: web.WebSocketResponse | None, msg: protocol.Message) -> None:
    if socket is None or socket.closed:
        return
    with contextlib.suppress(ConnectionError, RuntimeError):
        await socket.send_str(msg.to_json())


def error(code: str, **params: Any) -> protocol.Error:
    return protocol.Error(code, message(code, params))


def notice(code: str, **params: Any) -> protocol.Notice:
    return protocol.Notice(code, message(code, params))


class LiveSession:
    def __init__(self, hub: SessionHub, session: ReviewSession) -> None:
        self.hub = hub
        self.id = session.id
        self.case_no = session.case_no
        self.case_id = session.case_id
        self.participants: dict[str, Participant] = {}
        self.room: MediaRoom | None = None
        self.recording: SessionRecording | None = None
        self._recording_failures: set[str] = set()
        self.closed = False
        self.watching = asyncio.Event()
        """Set once state changes are subscribed to: only then is a state read current."""
        self.telling = asyncio.Lock()
        """Held while a change is told (state, chat, the participant list...), and while a
        joiner reads the state, attaches and is told it and the chat so far: so a joiner
        hears each change once, after its own first state, and lists arrive in order."""
        self._vacancy: asyncio.TimerHandle | None = None
        self._clerk_left_for = ""
        """Why the clerk last left (a ``leave`` reason), until it is back: what a later
        absence notice (a joiner, the vacancy timer) tells the approvers."""
        self._watch = asyncio.create_task(self._watch_state())

    async def _watch_state(self) -> None:
        async with self.hub.bus.subscribe(session_topic(self.id)) as queue:
            self.watching.set()
            while True:
                event = await queue.get()
                async with self.telling:
                    await self._tell(event)
                if event.get("event") == "state" and event["state"] in FINAL_STATES:
                    await self.close()
                    return

    async def _tell(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == "material_marked":
            await self.broadcast(protocol.MaterialMarked(event["mark"]))
        elif kind == "decision_recorded":
            await self.broadcast(protocol.DecisionRecorded(event["decision"]))
        elif kind == "still_added":
            await self.broadcast(protocol.StillAdded(event["still"]))
        elif kind == "state":
            state = str(event["state"])
            reason = str(event.get("reason") or "")
            await self.broadcast(protocol.State(state, reason, message(f"state_{state}")))

    async def broadcast(self, msg: protocol.Message) -> None:
        """To everyone; the caller holds ``telling`` (see ``announce``)."""
        for participant in tuple(self.participants.values()):
            await send(participant.socket, msg)

    async def announce(self, msg: protocol.Message) -> None:
        async with self.telling:
            await self.broadcast(msg)

    async def announce_participants(self, changed: Participant) -> None:
        async with self.telling:
            await self.send_participants(changed)

    async def send_participants(self, changed: Participant | None = None) -> None:
        """The list to everyone (the caller holds ``telling``). A change of a hidden
        participant (``changed``) goes to hidden participants only: the others' list did
        not change."""
        listed = [p.describe() for p in self.participants.values()]
        visible = [p for p in listed if not p["hidden"]]
        hidden_change = changed is not None and changed.grant.hidden
        for participant in tuple(self.participants.values()):
            if participant.grant.hidden:
                await send(participant.socket, protocol.Participants(listed))
            elif not hidden_change:
                await send(participant.socket, protocol.Participants(visible))

    async def send_slots(self) -> None:
        """Each participant's slots, to those whose slots changed since last told (a
        hidden subscriber connecting or leaving changes nobody else's)."""
        if self.room is None:
            return
        for name, participant in tuple(self.participants.items()):
            slots = self.room.slots(name)
            if participant.socket is None or slots == participant.slots_sent:
                continue
            participant.slots_sent = slots
            await send(participant.socket, protocol.Slots(slots))

    async def on_media_state(self, name: str, state: str) -> None:
        participant = self.participants.get(name)
        if participant is not None and state == "failed":
            await send(participant.socket, error("media_failed"))

    def media_room(self) -> MediaRoom:
        if self.room is None:
            recorder = self.hub.recorder
            if recorder is not None and self.recording is None:
                self.recording = recorder.session(
                    self.id, self.case_no, self.case_id, self.on_recording_failed
                )
            self.room = self.hub.media.room(
                self.id, self.on_media_state, self.send_slots, self.on_track
            )
        return self.room

    def on_track(self, track: PublishedTrack) -> None:
        if self.recording is not None:
            attach(self.recording, track)

    def recording_state(self) -> tuple[str, int]:
        """What the recording does now, and how many tracks it captures: ``off`` (no
        recorder), ``failed``, ``recording`` or ``idle`` (no track captured yet or now)."""
        if self.hub.recorder is None:
            return "off", 0
        active = sum(1 for c in self.recording.captures if not c.done) if self.recording else 0
        if self._recording_failures:
            return "failed", active
        return ("recording" if active else "idle"), active

    def on_recording_failed(self, code: str) -> None:
        """Tell everyone once per cause; forwarding goes on."""
        if code in self._recording_failures:
            return
        self._recording_failures.add(code)
        reason = RECORDING_FAILURES.get(code, RECORDING_FAILURES["write_failed"])
        self.hub.spawn(self.announce(error("recording_failed", reason=reason)))

    # -- joining and leaving --------------------------------------------------------------

    def expect_rejoin(self) -> None:
        """After the grace period, end the session if nobody is in it, or tell those in it
        who is missing (an approver who accepted but never came)."""
        if self._vacancy is not None:
            self._vacancy.cancel()
        loop = asyncio.get_running_loop()
        self._vacancy = loop.call_later(
            self.hub.settings.reconnect_grace_seconds, self._vacancy_expired
        )

    def _vacancy_expired(self) -> None:
        self._vacancy = None
        self.hub.spawn(self._vacant())

    async def _vacant(self) -> None:
        await self.end_if_empty()
        await self.tell_absence()

    def _present(self, role: str) -> bool:
        """A visible participant of ``role`` is in the session (reconnecting counts)."""
        return any(p.grant.role == role and not p.grant.hidden for p in self.participants.values())

    async def tell_absence(self, to: Participant | None = None, reason: str = "") -> None:
        """In a live session, tell the clerk that no approver is there (it may requeue),
        and the approvers that the clerk is not (``reason``: why it left)."""
        if self.closed or (await self.hub.reviews.get(self.id)).state != "live":
            return
        why = CLERK_LEAVE_REASONS.get(reason or self._clerk_left_for, CLERK_LEAVE_REASONS[""])
        for participant in (to,) if to else tuple(self.participants.values()):
            role = participant.grant.role
            if role == "clerk" and not self._present("approver"):
                await send(participant.socket, notice("approvers_left"))
            elif role == "approver" and not participant.grant.hidden and not self._present("clerk"):
                await send(participant.socket, notice("clerk_left", reason=why))

    async def attach(
        self, grant: Grant, display_name: str, socket: web.WebSocketResponse
    ) -> Participant:
        if self.closed:
            raise Conflict("session_ended")
        participant = self.participants.get(grant.username)
        rejoin = participant is not None
        if participant is None:
            participant = self.participants[grant.username] = Participant(grant, display_name)
        elif participant.socket is not None and participant.socket is not socket:
            # closed in the background: a dead client's close may take seconds
            self.hub.spawn(participant.socket.close(code=CLOSE_REPLACED, message=b"replaced"))
        if participant.grace is not None:
            participant.grace.cancel()
            participant.grace = None
        participant.grant, participant.socket, participant.state = grant, socket, "connected"
        if grant.role == "clerk" and not grant.hidden:
            self._clerk_left_for = ""
        participant.slots_sent = None
        kind = (
            "auditor_joined"
            if grant.hidden
            else ("participant_rejoined" if rejoin else "participant_joined")
        )
        await self.hub.audit.append(
            kind, actor=grant.username, case_no=self.case_no, session=self.id, role=grant.role
        )
        logger.info("session %s: %s (%s)", self.id, kind.replace("_", " "), grant.role)
        return participant

    async def detach(self, participant: Participant, socket: web.WebSocketResponse) -> None:
        """The socket closed without a hang-up: keep the place for the grace period."""
        if self.closed or participant.socket is not socket:
            return
        participant.socket = None
        if self.participants.get(participant.grant.username) is not participant:
            return
        participant.state = "reconnecting"
        # armed before any await, so a rejoin meanwhile finds and cancels it
        participant.grace = asyncio.get_running_loop().call_later(
            self.hub.settings.reconnect_grace_seconds, self._grace_expired, participant
        )
        await self.hub.audit.append(
            "participant_reconnecting",
            actor=participant.grant.username,
            case_no=self.case_no,
            session=self.id,
        )
        await self.announce_participants(participant)

    def _grace_expired(self, participant: Participant) -> None:
        participant.grace = None
        if participant.socket is None:  # not back in time
            self.hub.spawn(self.leave(participant, "grace_expired"))

    async def leave(self, participant: Participant, reason: str) -> None:
        name = participant.grant.username
        if self.participants.get(name) is not participant:
            return
        del self.participants[name]
        if participant.grant.role == "clerk" and not participant.grant.hidden:
            self._clerk_left_for = reason
        if participant.grace is not None:
            participant.grace.cancel()
        if self.room is not None:
            await self.room.disconnect(name)
        await self.hub.audit.append(
            "participant_left", actor=name, case_no=self.case_no, session=self.id, reason=reason
        )
        logger.info(
            "session %s: participant left (%s, %s)", self.id, participant.grant.role, reason
        )
        await self.announce_participants(participant)
        await self.end_if_empty()
        if not participant.grant.hidden:
            await self.tell_absence(reason=reason)

    async def end_if_empty(self) -> None:
        """Nobody visible is left: a live session ends, a waiting one is cancelled."""
        if any(not p.grant.hidden for p in self.participants.values()):
            return
        with contextlib.suppress(SignalingError):
            session = await self.hub.reviews.get(self.id)
            if session.state == "live":
                await self.hub.reviews.end(self.id, "all_left", None)
            elif session.state == "waiting":
                await self.hub.reviews.cancel(self.id, None)

    async def close(self, code: int = CLOSE_ENDED) -> None:
        if self.closed:
            return
        self.closed = True
        self.hub.sessions.pop(self.id, None)  # first: a new join makes a new LiveSession
        if self._vacancy is not None:
            self._vacancy.cancel()
        for participant in tuple(self.participants.values()):
            if participant.grace is not None:
                participant.grace.cancel()
            if participant.socket is not None:
                if code == CLOSE_RESTART:
                    await send(participant.socket, error("server_restart"))
                await participant.socket.close(code=code)
        self.participants.clear()
        await self.hub.media.close_room(self.id)
        if self.recording is not None:  # the last chunks close, are stored and converted
            await close_quietly(self.recording)
        if code == CLOSE_ENDED:  # its last events are logged now: sign over them too
            await self.hub.reviews.sign_checkpoint()
        self.hub.sessions.pop(self.id, None)
        if asyncio.current_task() is not self._watch:
            self._watch.cancel()
            await asyncio.gather(self._watch, return_exceptions=True)

    # -- messages -------------------------------------------------------------------------

    async def handle(self, participant: Participant, msg: protocol.Message) -> bool:
        """Act on one message; False when the participant hung up."""
        grant = participant.grant
        if isinstance(msg, protocol.Ping):
            await send(participant.socket, protocol.Pong())
        elif isinstance(msg, protocol.Join):
            await send(participant.socket, error("out_of_order"))
        elif isinstance(msg, protocol.Offer):
            await self._offer(participant, msg)
        elif isinstance(msg, protocol.Chat):
            if grant.hidden:
                await send(participant.socket, error("not_allowed"))
                return True
            at = self.hub.clock.now().astimezone(CHINA_TIME).isoformat(timespec="seconds")
            async with self.telling:  # a joiner finds it in its history or is told it
                await self.hub.audit.append(
                    "chat",
                    actor=grant.username,
                    case_no=self.case_no,
                    session=self.id,
                    text=msg.text,
                )
                await self.broadcast(
                    protocol.ChatPosted(grant.username, participant.display_name, msg.text, at)
                )
        elif isinstance(msg, protocol.MediaState):
            participant.media = {"audio": msg.audio, "face": msg.face, "document": msg.document}
            await self.announce_participants(participant)
        elif isinstance(msg, protocol.Hangup):
            await self.leave(participant, "hangup")  # the last to leave ends or cancels it
            return False
        elif isinstance(msg, protocol.End):
            if not await self.hub.reviews.may_end(grant.user_id, self.id):
                await send(participant.socket, error("not_allowed"))
            else:
                await self.hub.reviews.end(self.id, "ended_by_approver", grant.username)
        elif isinstance(msg, protocol.StillRequest):
            await self._request_still(participant, msg)
        elif isinstance(msg, protocol.Requeue):
            await self._requeue(participant)
        return True

    async def _requeue(self, participant: Participant) -> None:
        """The clerk puts a live session no approver is in back in the queue."""
        if participant.grant.role != "clerk" or participant.grant.hidden:
            await send(participant.socket, error("not_allowed"))
        elif (await self.hub.reviews.get(self.id)).state != "live":
            await send(participant.socket, error("not_live"))
        elif self._present("approver"):
            await send(participant.socket, error("approver_present"))
        else:
            await self.hub.reviews.requeue(self.id, participant.grant.username)

    async def _request_still(self, participant: Participant, msg: protocol.StillRequest) -> None:
        """An approver of the session (not a hidden auditor) asks for a still."""
        grant = participant.grant
        if grant.role != "approver" or grant.hidden:
            await send(participant.socket, error("not_allowed"))
            return
        session = await self.hub.reviews.get(self.id)
        if session.state != "live":
            await send(participant.socket, error("not_live"))
            return
        requested = await self.hub.stills.request(
            session, grant.username, participant.display_name, msg.material
        )
        await self.announce(requested)

    async def _offer(self, participant: Participant, msg: protocol.Offer) -> None:
        session = await self.hub.reviews.get(self.id)
        if session.state != "live":
            await send(participant.socket, error("not_live"))
            return
        participant.slots_sent = None  # a new connection, new mids: always told
        try:
            answer = await self.media_room().connect(
                participant.grant.username,
                msg.sdp,
                msg.publish,
                frozenset(participant.grant.publish),
                quiet=participant.grant.hidden,
            )
        except MediaError as exc:
            logger.info("offer refused in session %s: %s", self.id, exc)
            await send(participant.socket, error(exc.code))
            return
        await send(participant.socket, protocol.Answer(answer))
        participant.slots_sent = None  # the offerer always gets its slots after the answer
        await self.send_slots()
