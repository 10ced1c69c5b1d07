"""Live review sessions in this process: participants' sockets, reconnect grace, chat,
and the media room — driven by the signalling protocol (signaling/protocol.py)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from media.forwarder import PublishedTrack
from media.room import MediaError, MediaRoom, MediaServer
from recorder.auditlog import AuditLog, chain_of
from recorder.clock import Clock
from recorder.recording import Recorder, SessionRecording
from signaling import protocol
from signaling.accounts import Accounts
from signaling.bus import Bus
from signaling.cases import CHINA_TIME
from signaling.errors import Conflict, SignalingError
from signaling.messages import RECORDING_FAILURES, message
from signaling.recordings import attach, close_quietly
from signaling.reviews import Reviews, ReviewSession, session_topic
from signaling.settings import Settings
from signaling.stills import Stills
from signaling.tokens import Grant, JoinTokens

logger = logging.getLogger(__name__)

JOIN_TIMEOUT = 10.0
RATE_CAPACITY = 40
RATE_PER_SECOND = 10.0
RATE_CLOSE_AFTER = 400
"""Messages dropped for flooding before the socket is closed."""
CLOSE_REPLACED = 4000
CLOSE_ENDED = 4001
CLOSE_POLICY = 1008
CLOSE_RESTART = 1012
"""The server is going down: reconnect (the session goes on)."""


class RateLimit:
    """Token bucket per socket."""

    def __init__(self) -> None:
        self.tokens = float(RATE_CAPACITY)
        self.stamp = time.monotonic()
        self.dropped = 0

    def allow(self) -> bool:
        now = time.monotonic()
        self.tokens = min(RATE_CAPACITY, self.tokens + (now - self.stamp) * RATE_PER_SECOND)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        self.dropped += 1
        return False


@dataclass
class Participant:
    grant: Grant
    display_name: str
    socket: web.WebSocketResponse | None = None
    state: str = "connected"  # connected | reconnecting
    media: dict[str, bool] = field(default_factory=lambda: dict.fromkeys(protocol.SOURCES, True))
    grace: asyncio.TimerHandle | None = None

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


class LiveSession:
    def __init__(self, hub: LiveHub, session: ReviewSession) -> None:
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
        self._vacancy: asyncio.TimerHandle | None = None
        self._watch = asyncio.create_task(self._watch_state())

    async def _watch_state(self) -> None:
        async with self.hub.bus.subscribe(session_topic(self.id)) as queue:
            self.watching.set()
            while True:
                event = await queue.get()
                kind = event.get("event")
                if kind == "material_marked":
                    await self.broadcast(protocol.MaterialMarked(event["mark"]))
                elif kind == "decision_recorded":
                    await self.broadcast(protocol.DecisionRecorded(event["decision"]))
                elif kind == "still_added":
                    await self.broadcast(protocol.StillAdded(event["still"]))
                if kind != "state":
                    continue
                state = str(event["state"])
                reason = str(event.get("reason") or "")
                await self.broadcast(protocol.State(state, reason, message(f"state_{state}")))
                if state in ("ended", "cancelled", "timed_out"):
                    await self.close()
                    return

    async def broadcast(self, msg: protocol.Message) -> None:
        for participant in tuple(self.participants.values()):
            await send(participant.socket, msg)

    async def send_participants(self) -> None:
        listed = [p.describe() for p in self.participants.values()]
        visible = [p for p in listed if not p["hidden"]]
        for participant in tuple(self.participants.values()):
            shown = listed if participant.grant.hidden else visible
            await send(participant.socket, protocol.Participants(shown))

    async def send_slots(self) -> None:
        if self.room is None:
            return
        for name, participant in tuple(self.participants.items()):
            await send(participant.socket, protocol.Slots(self.room.slots(name)))

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
            attach(self.recording, track, self.hub.spawn)

    def on_recording_failed(self, code: str) -> None:
        """Tell everyone once per cause; forwarding goes on."""
        if code in self._recording_failures:
            return
        self._recording_failures.add(code)
        reason = RECORDING_FAILURES.get(code, RECORDING_FAILURES["write_failed"])
        self.hub.spawn(self.broadcast(error("recording_failed", reason=reason)))

    # -- joining and leaving --------------------------------------------------------------

    def expect_rejoin(self) -> None:
        """End the session if nobody is in it after the grace period."""
        if self._vacancy is not None:
            self._vacancy.cancel()
        loop = asyncio.get_running_loop()
        self._vacancy = loop.call_later(
            self.hub.settings.reconnect_grace_seconds, self.hub.spawn_end_if_empty, self
        )

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
        kind = (
            "auditor_joined"
            if grant.hidden
            else ("participant_rejoined" if rejoin else "participant_joined")
        )
        await self.hub.audit.append(
            kind, actor=grant.username, case_no=self.case_no, session=self.id, role=grant.role
        )
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
        await self.send_participants()

    def _grace_expired(self, participant: Participant) -> None:
        participant.grace = None
        if participant.socket is None:  # not back in time
            self.hub.spawn(self.leave(participant, "grace_expired"))

    async def leave(self, participant: Participant, reason: str) -> None:
        name = participant.grant.username
        if self.participants.get(name) is not participant:
            return
        del self.participants[name]
        if participant.grace is not None:
            participant.grace.cancel()
        if self.room is not None:
            await self.room.disconnect(name)
        await self.hub.audit.append(
            "participant_left", actor=name, case_no=self.case_no, session=self.id, reason=reason
        )
        await self.send_participants()
        await self.end_if_empty()

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
            await self.hub.audit.append(
                "chat", actor=grant.username, case_no=self.case_no, session=self.id, text=msg.text
            )
            await self.broadcast(
                protocol.ChatPosted(grant.username, participant.display_name, msg.text, at)
            )
        elif isinstance(msg, protocol.MediaState):
            participant.media = {"audio": msg.audio, "face": msg.face, "document": msg.document}
            await self.send_participants()
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
        return True

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
        await self.broadcast(requested)

    async def _offer(self, participant: Participant, msg: protocol.Offer) -> None:
        session = await self.hub.reviews.get(self.id)
        if session.state != "live":
            await send(participant.socket, error("not_live"))
            return
        try:
            answer = await self.media_room().connect(
                participant.grant.username,
                msg.sdp,
                msg.publish,
                frozenset(participant.grant.publish),
            )
        except MediaError as exc:
            logger.info("offer refused in session %s: %s", self.id, exc)
            await send(participant.socket, error(exc.code))
            return
        await send(participant.socket, protocol.Answer(answer))
        await self.send_slots()


class LiveHub:
    def __init__(
        self,
        settings: Settings,
        clock: Clock,
        reviews: Reviews,
        accounts: Accounts,
        media: MediaServer,
        tokens: JoinTokens,
        audit: AuditLog,
        bus: Bus,
        stills: Stills,
        recorder: Recorder | None = None,
    ) -> None:
        self.settings = settings
        self.recorder = recorder
        self.clock = clock
        self.reviews = reviews
        self.accounts = accounts
        self.media = media
        self.tokens = tokens
        self.audit = audit
        self.bus = bus
        self.stills = stills
        self.sessions: dict[str, LiveSession] = {}
        self.queue_sockets: set[web.WebSocketResponse] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    def spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("live task failed", exc_info=task.exception())

    def ice_servers(self) -> list[dict[str, Any]]:
        return [{"urls": url} for url in self.settings.ice_servers]

    async def _first_message(self, socket: web.WebSocketResponse) -> protocol.Join | None:
        try:
            raw = await asyncio.wait_for(socket.receive(), JOIN_TIMEOUT)
        except TimeoutError:
            await send(socket, error("join_timeout"))
            return None
        if raw.type != WSMsgType.TEXT:
            return None
        try:
            msg = protocol.parse(raw.data)
        except protocol.ProtocolError as exc:
            await send(socket, error(f"protocol_{exc.code}"))
            return None
        if not isinstance(msg, protocol.Join):
            await send(socket, error("out_of_order"))
            return None
        return msg

    async def serve(
        self, request: web.Request, user_id: int, session_id: str
    ) -> web.WebSocketResponse:
        socket = web.WebSocketResponse(heartbeat=15.0, max_msg_size=protocol.MAX_MESSAGE_BYTES)
        await socket.prepare(request)
        join = await self._first_message(socket)
        if join is None:
            await socket.close(code=CLOSE_POLICY)
            return socket
        try:
            grant = await self.tokens.verify(join.token, session_id, user_id)
            session = await self.reviews.get(session_id)
        except SignalingError as exc:
            await send(socket, error(exc.code))
            await socket.close(code=CLOSE_POLICY)
            return socket
        if not self._may_join(session, grant):
            return await self._closed(socket, session)
        live = self.sessions.get(session_id)
        if live is None:
            live = self.sessions[session_id] = LiveSession(self, session)
        await live.watching.wait()
        # read again: a change before the subscription (an accept) was not broadcast to us
        try:
            session = await self.reviews.get(session_id)
            if not self._may_join(session, grant):  # cancelled or ended meanwhile
                return await self._closed(socket, session)
            user = await self.accounts.get(grant.user_id)
            participant = await live.attach(grant, user.display_name, socket)
        except Conflict:  # the session closed while this join was on its way
            return await self._closed(socket, await self.reviews.get(session_id))
        except SignalingError as exc:
            await send(socket, error(exc.code))
            await socket.close(code=CLOSE_POLICY)
            return socket
        hung_up = False
        try:
            await send(
                socket,
                protocol.Joined(
                    grant.username,
                    grant.role,
                    grant.hidden,
                    list(grant.publish),
                    {"id": session_id, "case_no": session.case_no, "state": session.state},
                    self.ice_servers(),
                ),
            )
            await live.send_participants()
            state = protocol.State(session.state, "", message(f"state_{session.state}"))
            await send(socket, state)
            await send(socket, protocol.ChatHistory(await self.chat_history(session)))
            hung_up = await self._read(live, participant, socket)
        finally:
            if not hung_up:
                # a task of its own: the handler may be cancelled as the connection goes
                self.spawn(live.detach(participant, socket))
        return socket

    async def chat_history(self, session: ReviewSession) -> list[dict[str, Any]]:
        """The session's chat, from the log, as ``chat_posted`` carries it."""
        events = await self.audit.events(chain_of(session.case_no), kind="chat")
        names: dict[str, str] = {}
        history = []
        for event in events:
            if event.detail.get("session") != session.id or event.actor is None:
                continue
            if event.actor not in names:
                account = await self.accounts.find(event.actor)
                names[event.actor] = account.display_name if account else event.actor
            at = dt.datetime.fromisoformat(event.at).astimezone(CHINA_TIME)
            history.append(
                {
                    "sender": event.actor,
                    "display_name": names[event.actor],
                    "text": event.detail.get("text", ""),
                    "at": at.isoformat(timespec="seconds"),
                }
            )
        return history

    @staticmethod
    def _may_join(session: ReviewSession, grant: Grant) -> bool:
        """Open sessions only; before it is accepted, only the clerk is in it."""
        return session.state == "live" or (session.state == "waiting" and grant.role == "clerk")

    async def _closed(
        self, socket: web.WebSocketResponse, session: ReviewSession
    ) -> web.WebSocketResponse:
        """Tell a joiner the session is over (its final state), and close."""
        reason = session.end_reason or ""
        await send(socket, protocol.State(session.state, reason, message(f"state_{session.state}")))
        await socket.close(code=CLOSE_ENDED)
        return socket

    async def _read(
        self, live: LiveSession, participant: Participant, socket: web.WebSocketResponse
    ) -> bool:
        """Handle messages until the socket closes; True if the participant hung up."""
        limit = RateLimit()
        async for raw in socket:
            if raw.type != WSMsgType.TEXT:
                await send(socket, error("protocol_bad_json"))
                continue
            if not limit.allow():
                if limit.dropped == 1 or limit.dropped % 50 == 0:
                    await send(socket, error("rate_limited"))
                if limit.dropped > RATE_CLOSE_AFTER:
                    await socket.close(code=CLOSE_POLICY, message=b"flood")
                    break
                continue
            try:
                msg = protocol.parse(raw.data)
            except protocol.ProtocolError as exc:
                await send(socket, error(f"protocol_{exc.code}"))
                continue
            try:
                if not await live.handle(participant, msg):
                    return True
            except SignalingError as exc:
                await send(socket, error(exc.code))
            except Exception:
                logger.exception("session %s: %s failed", live.id, msg.type)
                await send(socket, error("internal_error"))
        return False

    def spawn_end_if_empty(self, live: LiveSession) -> None:
        self.spawn(live.end_if_empty())

    def expect(self, session: ReviewSession) -> None:
        """A session went live (or survived a restart): it ends if nobody is in it
        within the grace period."""
        live = self.sessions.get(session.id)
        if live is None:
            live = self.sessions[session.id] = LiveSession(self, session)
        live.expect_rejoin()

    async def resume(self) -> None:
        """After a restart, live sessions wait for their participants to rejoin."""
        for session in await self.reviews.live_sessions():
            self.expect(session)

    async def close(self) -> None:
        for socket in tuple(self.queue_sockets):
            await socket.close(code=CLOSE_RESTART)
        for live in list(self.sessions.values()):
            await live.close(CLOSE_RESTART)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
