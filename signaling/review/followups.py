"""The follow-up of a bad rating (差评): opened with the rating as 回访核实 (verify), due in
``FOLLOWUP_WORKING_DAYS``; an auditor records the call back with a note and whether the
complaint holds. If it holds, 整改 (rectify) opens, due in ``RECTIFY_WORKING_DAYS``, and
is closed when the auditor records what was put right; if not, the follow-up closes.
The follow-up row stays as opened (append-only); each step is a ``followup_steps`` row
and an event on the case's chain."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from recorder.auditlog import AuditLog
from recorder.clock import Clock, as_utc
from signaling.china_time import CHINA_TIME
from signaling.review.sessions import ReviewSession
from signaling.storage.models import User
from signaling.storage.tables import followup_steps, followups, session_ratings
from signaling.web import validation
from signaling.web.errors import Conflict, InvalidInput, NotFound
from signaling.workdays import add_working_days

RECTIFY_WORKING_DAYS = 10
MAX_NOTE = 500
STEP_EVENTS = {"verify": "followup_verified", "rectify": "followup_rectified"}


@dataclass(frozen=True)
class Standing:
    """Where a follow-up stands: the stage open or last done, open or closed, due when."""

    stage: str
    state: str
    due_date: dt.date


def standing(opened_due: dt.date, steps: Iterable[Row[Any]]) -> Standing:
    """From the follow-up's first due date and its steps (rows of followup_steps)."""
    done = {step.stage: step for step in steps}
    verify = done.get("verify")
    if verify is None:
        return Standing("verify", "open", opened_due)
    if not verify.upheld:
        return Standing("verify", "closed", opened_due)
    return Standing("rectify", "closed" if "rectify" in done else "open", verify.next_due_date)


class Followups:
    def __init__(self, engine: AsyncEngine, clock: Clock, audit: AuditLog) -> None:
        self._engine = engine
        self._clock = clock
        self._audit = audit

    async def advance(
        self, auditor: User, session: ReviewSession, data: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Record the open stage of the session's follow-up as done (``stage`` must name
        it: a step taken twice, or after another auditor's, is a conflict)."""
        stage = validation.choice(data, "stage", tuple(STEP_EVENTS))
        note = validation.text(data, "note", MAX_NOTE, multiline=True)
        upheld = data.get("upheld")
        if stage == "verify" and not isinstance(upheld, bool):
            raise InvalidInput("field_invalid", field="upheld")
        now = self._clock.now()
        due = None
        if stage == "verify" and upheld:
            today = as_utc(now).astimezone(CHINA_TIME).date()
            due = add_working_days(today, RECTIFY_WORKING_DAYS)
        try:
            async with self._engine.begin() as conn:
                found = (
                    await conn.execute(
                        select(followups.c.id, followups.c.due_date)
                        .join(session_ratings, session_ratings.c.id == followups.c.rating_id)
                        .where(session_ratings.c.session_id == session.id)
                    )
                ).first()
                if found is None:
                    raise NotFound("followup_not_found")
                steps = await conn.execute(
                    select(followup_steps).where(followup_steps.c.followup_id == found.id)
                )
                now_standing = standing(found.due_date, steps.all())
                if (now_standing.stage, now_standing.state) != (stage, "open"):
                    raise Conflict("followup_not_open")
                await conn.execute(
                    followup_steps.insert().values(
                        followup_id=found.id,
                        stage=stage,
                        upheld=upheld if stage == "verify" else None,
                        note=note,
                        next_due_date=due,
                        taken_by=auditor.id,
                        taken_at=now,
                    )
                )
        except IntegrityError as exc:  # the same step at the same time
            raise Conflict("followup_not_open") from exc
        detail: dict[str, Any] = {"session": session.id, "note": note}
        if stage == "verify":
            detail |= {"upheld": upheld, "due_date": due.isoformat() if due else None}
        await self._audit.append(
            STEP_EVENTS[stage], actor=auditor.username, case_no=session.case_no, **detail
        )
        rectify = due is not None
        return {
            "stage": "rectify" if rectify else stage,
            "state": "open" if rectify else "closed",
            "due_date": due.isoformat() if due else None,
        }
