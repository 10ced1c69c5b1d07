"""Review actions (审办操作): the applicant's consent to recording, the approver's marks
on each required material, the case's one decision, and the applicant's 好差评 rating
with the follow-up a bad rating opens.

Each action is a row and an audit event; marks and the decision are also published on
the session's bus topic so that live participants see them at once.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Row, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from recorder.auditlog import AuditLog
from recorder.clock import Clock, as_utc
from signaling.cases.cases import case_material
from signaling.china_time import CHINA_TIME, china_iso
from signaling.review.consent import CONSENT_SHA256, CONSENT_TEXT, CONSENT_VERSION
from signaling.review.followups import standing
from signaling.review.sessions import STATE_CODES, Reviews, ReviewSession, session_topic
from signaling.storage.bus import Bus
from signaling.storage.models import User
from signaling.storage.tables import (
    case_decisions,
    cases,
    followup_steps,
    followups,
    material_marks,
    review_consents,
    review_sessions,
    session_ratings,
    users,
)
from signaling.web import validation
from signaling.web.errors import Conflict, Forbidden, InvalidInput
from signaling.web.messages import FOLLOWUP_STAGE_NAMES, MARK_NAMES, OUTCOME_NAMES, SCORE_NAMES
from signaling.workdays import add_working_days

OUTCOME_STATUS = {"approve": "approved", "reject": "rejected", "supplement": "supplement"}
REASON_REQUIRED = frozenset({"reject", "supplement"})
BAD_SCORES = frozenset({"dissatisfied", "very_dissatisfied"})
FOLLOWUP_WORKING_DAYS = 3
"""A bad rating's 回访核实 is due by the end of the third working day (Monday to Friday,
China time; public holidays are not known to coreview and count as working days)."""
MAX_COMMENT = 500
RATING_STATES = ("live", "ended")


class ReviewActions:
    def __init__(
        self, engine: AsyncEngine, clock: Clock, audit: AuditLog, bus: Bus, reviews: Reviews
    ):
        self._engine = engine
        self._clock = clock
        self._audit = audit
        self._bus = bus
        self._reviews = reviews

    @staticmethod
    def _new_id(result: Any) -> int:
        return int(result.inserted_primary_key[0])

    # -- consent --------------------------------------------------------------------------

    async def record_consent(self, clerk: User, session: ReviewSession) -> dict[str, Any]:
        """Logged first, then stored: the stored row opens the queue to the session
        (``reviews.CONSENTED``), so no accept can come before the consent in the log."""
        now = self._clock.now()
        await self._audit.append(
            "consent_recorded",
            actor=clerk.username,
            case_no=session.case_no,
            session=session.id,
            version=CONSENT_VERSION,
            text=CONSENT_TEXT,  # what the applicant was shown, in the signed log itself
            text_sha256=CONSENT_SHA256,
        )
        async with self._engine.begin() as conn:
            await conn.execute(
                review_consents.insert().values(
                    session_id=session.id,
                    version=CONSENT_VERSION,
                    text_sha256=CONSENT_SHA256,
                    recorded_by=clerk.id,
                    recorded_at=now,
                )
            )
        return self._consent(session.id, clerk.username, now)

    @staticmethod
    def _consent(session_id: str, by: str, at: dt.datetime) -> dict[str, Any]:
        return {
            "session": session_id,
            "version": CONSENT_VERSION,
            "text_sha256": CONSENT_SHA256,
            "recorded_by": by,
            "recorded_at": china_iso(at),
        }

    # -- who may act ----------------------------------------------------------------------

    async def _live_approver(
        self, user: User, session_id: str, accepting_only: bool = False
    ) -> ReviewSession:
        session = await self._reviews.get(session_id)
        allowed = user.id == session.accepted_by or (
            not accepting_only and user.id in await self._reviews.co_approvers(session_id)
        )
        if not allowed:
            raise Forbidden("not_session_approver")
        if session.state != "live":
            raise Conflict(STATE_CODES.get(session.state, "session_state"), state=session.state)
        return session

    # -- materials and marks --------------------------------------------------------------

    async def mark(
        self, approver: User, session_id: str, data: Mapping[str, Any]
    ) -> dict[str, Any]:
        material_id = data.get("material")
        mark = validation.choice(data, "mark", tuple(MARK_NAMES))
        comment = validation.text(data, "comment", MAX_COMMENT, required=False, multiline=True)
        if not isinstance(material_id, int) or isinstance(material_id, bool):
            raise InvalidInput("field_invalid", field="material")
        session = await self._live_approver(approver, session_id)
        material = await case_material(self._engine, session.case_id, material_id)
        now = self._clock.now()
        async with self._engine.begin() as conn:
            result = await conn.execute(
                material_marks.insert().values(
                    case_id=session.case_id,
                    session_id=session.id,
                    material_id=material_id,
                    material_name=material["name"],
                    mark=mark,
                    comment=comment,
                    marked_by=approver.id,
                    marked_at=now,
                )
            )
        mark_id = self._new_id(result)
        await self._audit.append(
            "material_marked",
            actor=approver.username,
            case_no=session.case_no,
            session=session.id,
            mark_id=mark_id,
            material=material_id,
            material_name=material["name"],
            mark=mark,
            comment=comment,
        )
        marked = {
            "id": mark_id,
            "session": session.id,
            "material": material_id,
            "material_name": material["name"],
            "mark": mark,
            "mark_name": MARK_NAMES[mark],
            "comment": comment,
            "marked_by": approver.username,
            "marked_at": china_iso(now),
            "superseded": False,
        }
        await self._bus.publish(
            session_topic(session.id), {"event": "material_marked", "mark": marked}
        )
        return marked

    # -- decision -------------------------------------------------------------------------

    async def decide(
        self, approver: User, session_id: str, data: Mapping[str, Any]
    ) -> dict[str, Any]:
        outcome = validation.choice(data, "outcome", tuple(OUTCOME_NAMES))
        reason = validation.text(
            data, "reason", MAX_COMMENT, required=outcome in REASON_REQUIRED, multiline=True
        )
        session = await self._live_approver(approver, session_id, accepting_only=True)
        now = self._clock.now()
        try:
            async with self._engine.begin() as conn:
                await conn.execute(
                    case_decisions.insert().values(
                        case_id=session.case_id,
                        session_id=session.id,
                        outcome=outcome,
                        reason=reason,
                        decided_by=approver.id,
                        decided_at=now,
                    )
                )
                await conn.execute(
                    update(cases)
                    .where(cases.c.id == session.case_id)
                    .values(status=OUTCOME_STATUS[outcome])
                )
        except IntegrityError as exc:
            raise Conflict("decision_exists") from exc
        await self._audit.append(
            "decision_recorded",
            actor=approver.username,
            case_no=session.case_no,
            session=session.id,
            outcome=outcome,
            reason=reason,
        )
        decision = self._decision(session.id, outcome, reason, approver.username, now)
        await self._bus.publish(
            session_topic(session.id), {"event": "decision_recorded", "decision": decision}
        )
        return decision

    @staticmethod
    def _decision(
        session_id: str, outcome: str, reason: str, by: str, at: dt.datetime
    ) -> dict[str, Any]:
        return {
            "session": session_id,
            "outcome": outcome,
            "outcome_name": OUTCOME_NAMES[outcome],
            "reason": reason,
            "decided_by": by,
            "decided_at": china_iso(at),
        }

    # -- rating and follow-up -------------------------------------------------------------

    async def rate(self, clerk: User, session_id: str, data: Mapping[str, Any]) -> dict[str, Any]:
        score = validation.choice(data, "score", tuple(SCORE_NAMES))
        comment = validation.text(data, "comment", MAX_COMMENT, required=False, multiline=True)
        reason = validation.text(
            data, "reason", MAX_COMMENT, required=score in BAD_SCORES, multiline=True
        )
        session = await self._reviews.get(session_id)
        if clerk.id != session.created_by:
            raise Forbidden("not_session_clerk")
        if session.state not in RATING_STATES:
            raise Conflict("session_state", state=session.state)
        now = self._clock.now()
        due: dt.date | None = None
        try:
            async with self._engine.begin() as conn:
                result = await conn.execute(
                    session_ratings.insert().values(
                        session_id=session.id,
                        case_id=session.case_id,
                        score=score,
                        comment=comment,
                        reason=reason,
                        rated_by=clerk.id,
                        rated_at=now,
                    )
                )
                rating_id = self._new_id(result)
                if score in BAD_SCORES:
                    today = as_utc(now).astimezone(CHINA_TIME).date()
                    due = add_working_days(today, FOLLOWUP_WORKING_DAYS)
                    await conn.execute(
                        followups.insert().values(
                            case_id=session.case_id,
                            rating_id=rating_id,
                            stage="verify",
                            state="open",
                            due_date=due,
                            opened_at=now,
                        )
                    )
        except IntegrityError as exc:
            raise Conflict("rating_exists") from exc
        await self._audit.append(
            "rating_recorded",
            actor=clerk.username,
            case_no=session.case_no,
            session=session.id,
            score=score,
            comment=comment,
            reason=reason,
        )
        followup = None
        if due is not None:
            await self._audit.append(
                "followup_opened",
                actor=None,
                case_no=session.case_no,
                session=session.id,
                stage="verify",
                due_date=due.isoformat(),
            )
            followup = self._followup("verify", "open", due, now)
        return self._rating(session.id, score, comment, reason, clerk.username, now, followup)

    @staticmethod
    def _followup(stage: str, state: str, due: dt.date, at: dt.datetime) -> dict[str, Any]:
        return {
            "stage": stage,
            "stage_name": FOLLOWUP_STAGE_NAMES[stage],
            "next_stage": "rectify" if stage == "verify" and state == "open" else None,
            "next_stage_name": (
                FOLLOWUP_STAGE_NAMES["rectify"] if stage == "verify" and state == "open" else None
            ),
            "state": state,
            "due_date": due.isoformat(),
            "opened_at": china_iso(at),
        }

    @staticmethod
    def _rating(
        session_id: str,
        score: str,
        comment: str,
        reason: str,
        by: str,
        at: dt.datetime,
        followup: dict[str, Any] | None,
    ) -> dict[str, Any]:
        return {
            "session": session_id,
            "score": score,
            "score_name": SCORE_NAMES[score],
            "comment": comment,
            "reason": reason,
            "rated_by": by,
            "rated_at": china_iso(at),
            "followup": followup,
        }

    # -- reading everything of a case -----------------------------------------------------

    async def of_case(self, case_id: int) -> dict[str, Any]:
        """Consents and ratings by session, all marks in order (later marks of a
        material supersede earlier ones), the decision or None."""
        by_user = users.alias("by_user")

        def who(column: Any) -> Any:
            return select(by_user.c.username).where(by_user.c.id == column).scalar_subquery()

        async with self._engine.connect() as conn:
            consents = (
                await conn.execute(
                    select(review_consents, who(review_consents.c.recorded_by).label("by"))
                    .join(review_sessions, review_sessions.c.id == review_consents.c.session_id)
                    .where(review_sessions.c.case_id == case_id)
                    .order_by(review_consents.c.id)
                )
            ).all()
            marks = (
                await conn.execute(
                    select(material_marks, who(material_marks.c.marked_by).label("by"))
                    .where(material_marks.c.case_id == case_id)
                    .order_by(material_marks.c.id)
                )
            ).all()
            decision = (
                await conn.execute(
                    select(case_decisions, who(case_decisions.c.decided_by).label("by")).where(
                        case_decisions.c.case_id == case_id
                    )
                )
            ).first()
            ratings = (
                await conn.execute(
                    select(
                        session_ratings,
                        who(session_ratings.c.rated_by).label("by"),
                        followups.c.id.label("followup_id"),
                        followups.c.due_date,
                        followups.c.opened_at,
                    )
                    .outerjoin(followups, followups.c.rating_id == session_ratings.c.id)
                    .where(session_ratings.c.case_id == case_id)
                    .order_by(session_ratings.c.id)
                )
            ).all()
            steps = (
                await conn.execute(
                    select(followup_steps)
                    .join(followups, followups.c.id == followup_steps.c.followup_id)
                    .where(followups.c.case_id == case_id)
                )
            ).all()
        return {
            "consents": {
                r.session_id: self._consent(r.session_id, r.by, r.recorded_at) for r in consents
            },
            "marks": self._marks(marks),
            "decision": self._decision(
                decision.session_id,
                decision.outcome,
                decision.reason,
                decision.by,
                decision.decided_at,
            )
            if decision
            else None,
            "ratings": {r.session_id: self._rating_row(r, steps) for r in ratings},
        }

    @classmethod
    def _rating_row(cls, row: Row[Any], steps: Sequence[Row[Any]]) -> dict[str, Any]:
        followup = None
        if row.followup_id is not None:
            now = standing(row.due_date, (s for s in steps if s.followup_id == row.followup_id))
            followup = cls._followup(now.stage, now.state, now.due_date, row.opened_at)
        return cls._rating(
            row.session_id, row.score, row.comment, row.reason, row.by, row.rated_at, followup
        )

    @staticmethod
    def _marks(rows: Sequence[Row[Any]]) -> list[dict[str, Any]]:
        latest = {r.material_id: r.id for r in rows}
        return [
            {
                "id": r.id,
                "session": r.session_id,
                "material": r.material_id,
                "material_name": r.material_name,
                "mark": r.mark,
                "mark_name": MARK_NAMES[r.mark],
                "comment": r.comment,
                "marked_by": r.by,
                "marked_at": china_iso(r.marked_at),
                "superseded": latest[r.material_id] != r.id,
            }
            for r in rows
        ]
