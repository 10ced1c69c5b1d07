"""Statutory time limits (办理时限) of open cases, with 黄牌 / 红牌 warnings (电子监察).

A case's limit is its matter's ``time_limit_days`` working days, counted from the day
after the case was accepted (受理, its creation day, China time); it is due by the end
of that working day (``cases.due_at``, fixed at acceptance: signaling/workdays.py).
Working days are Monday to Friday: coreview has no holiday calendar, so public holidays
count as working days and adjusted weekends (调休) do not.

- 红牌 (red card): the due day has passed.
- 黄牌 (yellow card): not yet past, and at most ``warn_days`` working days are left
  after today (``time_limit_warn_days``, default 1: due today or on the next working day).

Open cases are those accepted or under review (status ``accepted`` or ``reviewing``); a
case sent back for 补正 (supplement) waits for the applicant, the clock is stopped.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from recorder.clock import Clock
from signaling.cases.cases import Cases
from signaling.china_time import CHINA_TIME, china_iso, china_wall
from signaling.storage.models import User
from signaling.storage.tables import cases, departments, matters, outlets
from signaling.workdays import last_day, working_days_after

OPEN_CASE_STATUS = ("accepted", "reviewing")
Card = Literal["red", "yellow"]
CARD_NAMES: dict[Card, str] = {"red": "红牌", "yellow": "黄牌"}


@dataclass(frozen=True)
class Deadline:
    due: dt.date
    card: Card | None
    days_left: int
    """Working days left after today up to the due day (0 when due today or past)."""
    days_over: int
    """Working days past the due day (0 unless red; 0 also on the weekend after a
    Friday due day)."""


def deadline(due: dt.date, today: dt.date, warn_days: int) -> Deadline:
    """The card of a case due on ``due`` (its last day) as of ``today``."""
    if today > due:
        return Deadline(due, "red", 0, working_days_after(due, today))
    left = working_days_after(today, due)
    return Deadline(due, "yellow" if left <= warn_days else None, left, 0)


class TimeLimits:
    def __init__(self, engine: AsyncEngine, clock: Clock, cases_: Cases, warn_days: int) -> None:
        self._engine = engine
        self._clock = clock
        self._cases = cases_
        self.warn_days = warn_days

    async def cards(self, user: User) -> dict[str, Any]:
        """Every open case in scope with a red or yellow card, red first (most overdue
        first), then yellow (least time left first); and how many open cases there are."""
        query = (
            select(
                cases.c.case_no,
                cases.c.status,
                cases.c.created_at,
                cases.c.due_at,
                matters.c.name.label("matter"),
                matters.c.time_limit_days,
                outlets.c.name.label("outlet"),
                departments.c.name.label("department"),
            )
            .join(matters, matters.c.id == cases.c.matter_id)
            .join(outlets, outlets.c.id == cases.c.outlet_id)
            .join(departments, departments.c.id == cases.c.department_id)
            .where(cases.c.status.in_(OPEN_CASE_STATUS))
        )
        query = await self._cases.scoped(user, query)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        today = self._clock.now().astimezone(CHINA_TIME).date()
        cards = []
        for row in rows:
            found = deadline(last_day(china_wall(row.due_at)), today, self.warn_days)
            if found.card is None:
                continue
            cards.append(
                {
                    "case_no": row.case_no,
                    "status": row.status,
                    "matter": row.matter,
                    "outlet": row.outlet,
                    "department": row.department,
                    "accepted_at": china_iso(row.created_at),
                    "time_limit_days": row.time_limit_days,
                    "due_date": found.due.isoformat(),
                    "card": found.card,
                    "card_name": CARD_NAMES[found.card],
                    "days_left": found.days_left,
                    "days_over": found.days_over,
                }
            )
        cards.sort(key=lambda c: (c["card"] != "red", -c["days_over"], c["days_left"]))
        return {
            "today": today.isoformat(),
            "warn_days": self.warn_days,
            "open_cases": len(rows),
            "red": sum(1 for c in cards if c["card"] == "red"),
            "yellow": sum(1 for c in cards if c["card"] == "yellow"),
            "cards": cards,
        }
