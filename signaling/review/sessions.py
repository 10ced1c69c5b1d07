"""Review sessions (远程审办会话): the department queue and the session state machine.

    waiting ──accept──▶ live ──end / all left──▶ ended
     ▲ │ └─cancel──▶ cancelled   │
     │ └──timeout──▶ timed_out   │
     └──requeue (no approver)────┘

Every transition is one conditional UPDATE (``WHERE state = 'waiting'``), so of many
approvers accepting at once exactly one wins, and a cancel racing an accept has exactly
one outcome. Each change is published on the bus: ``department:<id>`` (queues) and
``session:<id>`` (participants).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Row, and_, exists, or_, select, true, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from recorder.auditlog import AuditLog
from recorder.clock import Clock, as_utc
from signaling.storage.bus import Bus
from signaling.storage.models import User
from signaling.storage.tables import (
    QUEUED_AT,
    cases,
    departments,
    matters,
    outlets,
    review_consents,
    review_sessions,
    session_invitations,
    users,
)
from signaling.web.errors import Conflict, Forbidden, InvalidInput, NotFound

logger = logging.getLogger(__name__)

OPEN_STATES = ("waiting", "live")
FINAL_STATES = ("ended", "cancelled", "timed_out")
ALWAYS = true()
CONSENTED = exists().where(review_consents.c.session_id == review_sessions.c.id)
"""A session is queued (listed, acceptable) only once its consent is recorded."""
STATE_CODES = {
    "live": "already_taken",
    "cancelled": "session_cancelled",
    "timed_out": "session_timed_out",
    "ended": "session_ended",
}

TRANSITION_WORDS = {
    "waiting": "requeued",
    "live": "accepted",
    "ended": "ended",
    "cancelled": "cancelled",
    "timed_out": "timed out",
}
"""How the INFO log names a move into each state (ids only, no personal data)."""


@dataclass(frozen=True)
class ReviewSession:
    id: str
    case_id: int
    case_no: str
    outlet_id: int
    department_id: int
    state: str
    created_by: int
    accepted_by: int | None
    created_at: dt.datetime
    end_reason: str | None
    interrupted: bool = False
    """The server stopped (crashed) while it was live: its recording has a gap."""


def department_topic(department_id: int) -> str:
    return f"department:{department_id}"


def session_topic(session_id: str) -> str:
    return f"session:{session_id}"


class Reviews:
    def __init__(
        self, engine: AsyncEngine, clock: Clock, audit: AuditLog, bus: Bus, timeout_seconds: int
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._audit = audit
        self._bus = bus
        self._timeout = timeout_seconds
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    # -- reads ---------------------------------------------------------------------------

    _columns = (
        review_sessions,
        cases.c.case_no,
        cases.c.outlet_id,
    )

    def _session(self, row: Row[Any]) -> ReviewSession:
        return ReviewSession(
            id=row.id,
            case_id=row.case_id,
            case_no=row.case_no,
            outlet_id=row.outlet_id,
            department_id=row.department_id,
            state=row.state,
            created_by=row.created_by,
            accepted_by=row.accepted_by,
            created_at=as_utc(row.created_at),
            end_reason=row.end_reason,
            interrupted=bool(row.interrupted),
        )

    async def get(self, session_id: str) -> ReviewSession:
        query = (
            select(*self._columns)
            .join(cases, cases.c.id == review_sessions.c.case_id)
            .where(review_sessions.c.id == session_id)
        )
        async with self._engine.connect() as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            raise NotFound("session_not_found")
        return self._session(row)

    async def for_case(self, case_id: int) -> list[ReviewSession]:
        query = (
            select(*self._columns)
            .join(cases, cases.c.id == review_sessions.c.case_id)
            .where(review_sessions.c.case_id == case_id)
            .order_by(review_sessions.c.created_at.desc())
        )
        async with self._engine.connect() as conn:
            return [self._session(r) for r in (await conn.execute(query)).all()]

    async def live_sessions(self) -> list[ReviewSession]:
        query = (
            select(*self._columns)
            .join(cases, cases.c.id == review_sessions.c.case_id)
            .where(review_sessions.c.state == "live")
        )
        async with self._engine.connect() as conn:
            return [self._session(r) for r in (await conn.execute(query)).all()]

    async def taking_part(self, user: User) -> list[ReviewSession]:
        """Open sessions the user is in: the clerk's own (waiting or live), the live ones
        an approver accepted or joined by invitation (联审). Newest first."""
        joined = select(session_invitations.c.session_id).where(
            session_invitations.c.state == "accepted",
            session_invitations.c.accepted_by == user.id,
        )
        if user.role == "clerk":
            mine = and_(
                review_sessions.c.created_by == user.id,
                review_sessions.c.state.in_(OPEN_STATES),
            )
        elif user.role == "approver":
            mine = and_(
                review_sessions.c.state == "live",
                or_(review_sessions.c.accepted_by == user.id, review_sessions.c.id.in_(joined)),
            )
        else:
            return []
        query = (
            select(*self._columns)
            .join(cases, cases.c.id == review_sessions.c.case_id)
            .where(mine)
            .order_by(review_sessions.c.created_at.desc())
        )
        async with self._engine.connect() as conn:
            return [self._session(r) for r in (await conn.execute(query)).all()]

    async def mark_interrupted(self, session_id: str, **gap: Any) -> ReviewSession:
        """The server was killed while the session was open (中断): mark it and log the
        recording's gap."""
        async with self._engine.begin() as conn:
            await conn.execute(
                update(review_sessions)
                .where(review_sessions.c.id == session_id)
                .values(interrupted=True)
            )
        session = await self.get(session_id)
        await self._audit.append(
            "session_interrupted", actor=None, case_no=session.case_no, session=session_id, **gap
        )
        return session

    async def co_approvers(self, session_id: str) -> list[int]:
        query = select(session_invitations.c.accepted_by).where(
            session_invitations.c.session_id == session_id,
            session_invitations.c.state == "accepted",
        )
        async with self._engine.connect() as conn:
            return [int(v) for v in (await conn.execute(query)).scalars() if v is not None]

    async def queue(self, approver: User) -> list[dict[str, Any]]:
        """Waiting sessions of the approver's department, oldest first, then invitations
        to it (or to the approver by name) of live sessions."""
        now = self._clock.now()
        base = (
            select(
                review_sessions.c.id,
                QUEUED_AT.label("queued_at"),
                cases.c.case_no,
                cases.c.applicant_name,
                matters.c.name.label("matter"),
                outlets.c.name.label("outlet"),
            )
            .join(cases, cases.c.id == review_sessions.c.case_id)
            .join(matters, matters.c.id == cases.c.matter_id)
            .join(outlets, outlets.c.id == cases.c.outlet_id)
        )
        waiting = base.where(
            review_sessions.c.state == "waiting",
            review_sessions.c.department_id == approver.department_id,
            CONSENTED,
        ).order_by(review_sessions.c.created_at)
        invited = (
            base.add_columns(departments.c.name.label("inviting_department"))
            .join(session_invitations, session_invitations.c.session_id == review_sessions.c.id)
            .join(departments, departments.c.id == review_sessions.c.department_id)
            .where(
                review_sessions.c.state == "live",
                session_invitations.c.state == "pending",
                session_invitations.c.department_id == approver.department_id,
                or_(
                    session_invitations.c.approver_id.is_(None),
                    session_invitations.c.approver_id == approver.id,
                ),
            )
            .order_by(session_invitations.c.created_at)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(waiting)).all()
            invitations = (await conn.execute(invited)).all()
        items = []
        for position, row in enumerate(rows, start=1):
            items.append(self._queue_item(row, now, position, None))
        for row in invitations:
            items.append(self._queue_item(row, now, None, row.inviting_department))
        return items

    @staticmethod
    def _queue_item(
        row: Any, now: dt.datetime, position: int | None, invited_by: str | None
    ) -> dict[str, Any]:
        return {
            "session_id": row.id,
            "case_no": row.case_no,
            "applicant_name": row.applicant_name,
            "matter": row.matter,
            "outlet": row.outlet,
            "position": position,
            "waiting_seconds": int((now - as_utc(row.queued_at)).total_seconds()),
            "invitation_from": invited_by,
        }

    # -- transitions ---------------------------------------------------------------------

    async def start(
        self,
        clerk: User,
        case_id: int,
        case_no: str,
        department_id: int,
        before_queue: Callable[[ReviewSession], Awaitable[object]],
    ) -> ReviewSession:
        """Put a case in its department's queue. One open session per case (a unique
        index on open sessions decides between concurrent starts). ``before_queue``
        records the consent; until it has, no approver can see or accept the session
        (``CONSENTED``). If it fails, the session is cancelled (``not_started``) and the
        error raised."""
        session_id = str(uuid.uuid4())
        try:
            async with self._engine.begin() as conn:
                await conn.execute(
                    review_sessions.insert().values(
                        id=session_id,
                        case_id=case_id,
                        department_id=department_id,
                        state="waiting",
                        created_by=clerk.id,
                        created_at=self._clock.now(),
                    )
                )
        except IntegrityError as exc:
            async with self._engine.connect() as conn:
                existing = await conn.scalar(
                    select(review_sessions.c.id).where(
                        review_sessions.c.case_id == case_id,
                        review_sessions.c.state.in_(OPEN_STATES),
                    )
                )
            raise Conflict("session_exists", session_id=existing) from exc
        await self._audit.append(
            "session_started", actor=clerk.username, case_no=case_no, session=session_id
        )
        session = await self.get(session_id)
        try:
            await before_queue(session)
        except BaseException:
            values = {"ended_at": self._clock.now(), "end_reason": "not_started"}
            await self._transition(session_id, "cancelled", values, "session_cancelled", None)
            raise
        logger.info(
            "session %s started: case %s, department %s", session_id, case_no, department_id
        )
        self._schedule_timeout(session_id, self._timeout)
        await self._bus.publish(department_topic(department_id), {"event": "queue_changed"})
        return session

    async def _transition(
        self,
        session_id: str,
        to_state: str,
        values: dict[str, Any],
        event: str,
        actor: str | None,
        from_state: str = "waiting",
        only_if: ColumnElement[bool] = ALWAYS,
        **detail: Any,
    ) -> ReviewSession:
        """Move from ``from_state`` to ``to_state`` atomically (and ``only_if`` holds),
        or explain why not; log ``event`` and tell the queue and the session."""
        async with self._engine.begin() as conn:
            result = await conn.execute(
                update(review_sessions)
                .where(
                    review_sessions.c.id == session_id,
                    review_sessions.c.state == from_state,
                    only_if,
                )
                .values(state=to_state, **values)
            )
        session = await self.get(session_id)
        if result.rowcount != 1:
            if session.state == from_state:
                raise Conflict("session_not_ready", state=session.state)
            raise Conflict(STATE_CODES.get(session.state, "session_state"), state=session.state)
        self._cancel_timer(session_id)  # it no longer waits (or waits anew: re-armed)
        logger.info(
            "session %s %s: %s -> %s, case %s%s",
            session_id,
            TRANSITION_WORDS.get(to_state, to_state),
            from_state,
            to_state,
            session.case_no,
            f", reason {session.end_reason}" if session.end_reason else "",
        )
        await self._audit.append(
            event, actor=actor, case_no=session.case_no, session=session_id, **detail
        )
        await self._bus.publish(department_topic(session.department_id), {"event": "queue_changed"})
        await self._bus.publish(
            session_topic(session_id),
            {"event": "state", "state": to_state, "reason": session.end_reason},
        )
        if to_state in FINAL_STATES:
            await self.sign_checkpoint()
        return session

    async def sign_checkpoint(self) -> None:
        """A session closed (and again once its live part has logged its last chunks):
        sign a log checkpoint over its events now, if the log grew."""
        try:
            await self._audit.checkpoint_if_grown()
        except Exception:  # also a database error: the session is closed all the same
            logger.exception("could not sign a log checkpoint at the end of a session")

    async def accept(self, approver: User, session_id: str) -> ReviewSession:
        session = await self.get(session_id)
        if approver.role != "approver" or approver.department_id != session.department_id:
            raise Forbidden("out_of_scope")
        return await self._transition(
            session_id,
            "live",
            {"accepted_by": approver.id, "accepted_at": self._clock.now()},
            "session_accepted",
            approver.username,
            only_if=CONSENTED,
        )

    async def cancel(self, session_id: str, clerk: User | None) -> ReviewSession:
        """The clerk who started it cancels a waiting session (None: the service does,
        for a clerk who left)."""
        session = await self.get(session_id)
        if clerk is not None and clerk.id != session.created_by:
            raise Forbidden("out_of_scope")
        values = {"ended_at": self._clock.now(), "end_reason": "cancelled_by_clerk"}
        actor = clerk.username if clerk else None
        return await self._transition(session_id, "cancelled", values, "session_cancelled", actor)

    async def may_end(self, user_id: int, session_id: str) -> bool:
        """The accepting approver, or a co-reviewing one, may end a live session."""
        session = await self.get(session_id)
        return user_id == session.accepted_by or user_id in await self.co_approvers(session_id)

    async def time_out(self, session_id: str) -> ReviewSession:
        values = {"ended_at": self._clock.now(), "end_reason": "nobody_accepted"}
        return await self._transition(session_id, "timed_out", values, "session_timed_out", None)

    async def end(self, session_id: str, reason: str, actor: str | None) -> ReviewSession:
        session = await self._transition(
            session_id,
            "ended",
            {"ended_at": self._clock.now(), "end_reason": reason},
            "session_ended",
            actor,
            from_state="live",
            reason=reason,
        )
        await self._withdraw_invitations(session_id)
        return session

    async def requeue(self, session_id: str, actor: str) -> ReviewSession:
        """A live session no approver is in any more goes back to its department's queue
        (the same session: its case, consent, stills, marks, chat and recording go on);
        any approver of the department may accept it. The caller checks that the clerk
        asks and that no approver is there."""
        now = self._clock.now()
        values = {"accepted_by": None, "accepted_at": None, "queued_at": now}
        session = await self._transition(
            session_id, "waiting", values, "session_requeued", actor, from_state="live"
        )
        self._schedule_timeout(session_id, self._timeout)
        await self._withdraw_invitations(session_id)
        return session

    async def _withdraw_invitations(self, session_id: str) -> None:
        """Pending co-review invitations of a session that ended or went back to the
        queue are withdrawn (the next accepting approver invites anew)."""
        pending = (
            session_invitations.c.session_id == session_id,
            session_invitations.c.state == "pending",
        )
        async with self._engine.begin() as conn:
            invited = (
                (await conn.execute(select(session_invitations.c.department_id).where(*pending)))
                .scalars()
                .all()
            )
            await conn.execute(
                update(session_invitations).where(*pending).values(state="withdrawn")
            )
        for department_id in set(invited):  # their queues drop the invitation
            await self._bus.publish(department_topic(department_id), {"event": "queue_changed"})

    async def invite(
        self, approver: User, session_id: str, department_code: str, approver_name: str | None
    ) -> None:
        """Invite a second approver of another department (联审), or a named one."""
        session = await self.get(session_id)
        if session.state != "live" or approver.id != session.accepted_by:
            raise Forbidden("not_session_approver")
        async with self._engine.begin() as conn:
            department_id = await conn.scalar(
                select(departments.c.id).where(departments.c.code == department_code)
            )
            if department_id is None:
                raise InvalidInput("unknown_department", field="department")
            if department_id == session.department_id:
                raise InvalidInput("same_department", field="department")
            invitee_id = None
            if approver_name:
                invitee_id = await conn.scalar(
                    select(users.c.id).where(
                        users.c.username == approver_name,
                        users.c.role == "approver",
                        users.c.department_id == department_id,
                    )
                )
                if invitee_id is None:
                    raise InvalidInput("unknown_approver", field="approver")
            await conn.execute(
                session_invitations.insert().values(
                    session_id=session_id,
                    department_id=department_id,
                    approver_id=invitee_id,
                    invited_by=approver.id,
                    state="pending",
                    created_at=self._clock.now(),
                )
            )
        await self._audit.append(
            "co_review_invited",
            actor=approver.username,
            case_no=session.case_no,
            session=session_id,
            department=department_code,
            approver=approver_name,
        )
        await self._bus.publish(department_topic(department_id), {"event": "queue_changed"})

    async def accept_invitation(self, approver: User, session_id: str) -> ReviewSession:
        session = await self.get(session_id)
        if session.state != "live":
            raise Conflict(STATE_CODES.get(session.state, "session_state"), state=session.state)
        async with self._engine.begin() as conn:
            invitation = await conn.scalar(
                select(session_invitations.c.id).where(
                    session_invitations.c.session_id == session_id,
                    session_invitations.c.state == "pending",
                    session_invitations.c.department_id == approver.department_id,
                    or_(
                        session_invitations.c.approver_id.is_(None),
                        session_invitations.c.approver_id == approver.id,
                    ),
                )
            )
            if invitation is None:
                raise Forbidden("out_of_scope")
            result = await conn.execute(
                update(session_invitations)
                .where(
                    and_(
                        session_invitations.c.id == invitation,
                        session_invitations.c.state == "pending",
                    )
                )
                .values(state="accepted", accepted_by=approver.id)
            )
        if result.rowcount != 1:
            raise Conflict("already_taken")
        await self._audit.append(
            "co_review_joined", actor=approver.username, case_no=session.case_no, session=session_id
        )
        await self._bus.publish(
            department_topic(approver.department_id or 0), {"event": "queue_changed"}
        )
        return session

    # -- timers --------------------------------------------------------------------------

    def _schedule_timeout(self, session_id: str, delay: float) -> None:
        loop = asyncio.get_running_loop()
        self._timers[session_id] = loop.call_later(max(0.0, delay), self._fire_timeout, session_id)

    def _cancel_timer(self, session_id: str) -> None:
        timer = self._timers.pop(session_id, None)
        if timer is not None:
            timer.cancel()

    def _fire_timeout(self, session_id: str) -> None:
        self._timers.pop(session_id, None)
        task = asyncio.create_task(self._run_timeout(session_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_timeout(self, session_id: str) -> None:
        try:
            await self.time_out(session_id)
        except Conflict:
            pass  # accepted or cancelled meanwhile: nothing to time out
        except Exception:
            logger.exception("timing out session %s failed", session_id)

    async def resume(self) -> None:
        """After a restart: time out sessions that waited too long, re-arm the others."""
        now = self._clock.now()
        async with self._engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(
                        review_sessions.c.id,
                        QUEUED_AT,
                    ).where(review_sessions.c.state == "waiting")
                )
            ).all()
        for session_id, queued_at in rows:
            remaining = self._timeout - (now - as_utc(queued_at)).total_seconds()
            self._schedule_timeout(session_id, remaining)

    async def close(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
