"""Live review sessions in this process: the hub owns the sessions
(signaling/review/live_session.py) and serves the signalling sockets: the join
handshake, reading with a rate limit."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from typing import Any

from aiohttp import WSMsgType, web

from media.room import MediaServer
from recorder.auditlog import AuditLog, chain_of
from recorder.clock import Clock
from recorder.recording import Recorder
from signaling.accounts.accounts import Accounts
from signaling.china_time import CHINA_TIME
from signaling.review import protocol
from signaling.review.join_tokens import Grant, JoinTokens
from signaling.review.live_session import (
    CLOSE_ENDED,
    CLOSE_POLICY,
    CLOSE_RESTART,
    LiveSession,
    Participant,
    error,
    send,
)
from signaling.review.login_sockets import LoginSockets
from signaling.review.sessions import Reviews, ReviewSession
from signaling.review.stills import Stills
from signaling.settings import Settings
from signaling.storage.bus import Bus
from signaling.web.errors import Conflict, SignalingError
from signaling.web.messages import message

logger = logging.getLogger(__name__)

JOIN_TIMEOUT = 10.0
RATE_CAPACITY = 40
RATE_PER_SECOND = 10.0
RATE_CLOSE_AFTER = 400
"""Messages dropped for flooding before the socket is closed."""


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
        self.logins = LoginSockets(accounts, bus, clock)
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
        self, request: web.Request, user_id: int, session_id: str, login_token: str
    ) -> web.WebSocketResponse:
        """The signalling socket of one participant, open while its login session lasts."""
        socket = web.WebSocketResponse(heartbeat=15.0, max_msg_size=protocol.MAX_MESSAGE_BYTES)
        await socket.prepare(request)
        async with self.logins.hold(login_token, socket):
            return await self._serve(socket, user_id, session_id)

    async def _serve(
        self, socket: web.WebSocketResponse, user_id: int, session_id: str
    ) -> web.WebSocketResponse:
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
        participant: Participant | None = None
        hung_up = False
        try:
            user = await self.accounts.get(grant.user_id)
            # read again: a change before the subscription (an accept) was not broadcast
            # to us; one after it is told once we are attached and told this state
            async with live.telling:  # not held while a refused joiner's socket closes
                session = await self.reviews.get(session_id)
                if self._may_join(session, grant):
                    participant = await live.attach(grant, user.display_name, socket)
                    await self._welcome(live, participant, session)
                    await send(socket, protocol.ChatHistory(await self.chat_history(session)))
            if participant is None:  # cancelled or ended meanwhile
                return await self._closed(socket, session)
            await live.tell_absence(participant)
            hung_up = await self._read(live, participant, socket)
        except Conflict:  # the session closed while this join was on its way
            await self._closed(socket, await self.reviews.get(session_id))
        except SignalingError as exc:
            await send(socket, error(exc.code))
            await socket.close(code=CLOSE_POLICY)
        finally:
            if participant is not None and not hung_up:
                # a task of its own: the handler may be cancelled as the connection goes
                self.spawn(live.detach(participant, socket))
        return socket

    async def _welcome(
        self, live: LiveSession, participant: Participant, session: ReviewSession
    ) -> None:
        """The joiner's first messages: who it is, who is there, the session's state."""
        grant = participant.grant
        joined = protocol.Joined(
            grant.username,
            grant.role,
            grant.hidden,
            list(grant.publish),
            {"id": session.id, "case_no": session.case_no, "state": session.state},
            self.ice_servers(),
        )
        await send(participant.socket, joined)
        await live.send_participants(participant)
        state = protocol.State(session.state, "", message(f"state_{session.state}"))
        await send(participant.socket, state)

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

    def expect(self, session: ReviewSession) -> None:
        """A session went live (or survived a restart): it ends if nobody is in it
        within the grace period."""
        live = self.sessions.get(session.id)
        if live is None:
            live = self.sessions[session.id] = LiveSession(self, session)
        live.expect_rejoin()

    def open_session_ids(self) -> list[str]:
        return [session_id for session_id, live in self.sessions.items() if not live.closed]

    async def resume(self) -> None:
        """After a restart, live sessions wait for their participants to rejoin."""
        for session in await self.reviews.live_sessions():
            self.expect(session)

    async def close(self) -> None:
        await self.logins.close()
        for socket in tuple(self.queue_sockets):
            await socket.close(code=CLOSE_RESTART)
        for live in list(self.sessions.values()):
            await live.close(CLOSE_RESTART)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
