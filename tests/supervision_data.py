"""Known review sessions, decisions, ratings and follow-ups written straight into the
tables, for the supervision dashboard's tests (figures worked out by hand below)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from signaling.china_time import CHINA_TIME
from signaling.storage.tables import (
    case_decisions,
    cases,
    followups,
    matters,
    outlets,
    review_sessions,
    session_ratings,
    users,
)
from signaling.workdays import limit_ends

_TODAY = dt.datetime.now(CHINA_TIME).date()
MONDAY = _TODAY + dt.timedelta(days=14 - _TODAY.weekday())
"""The Monday of the week after next: the tests' days lie ahead of the node's signing
key (registered when the demo data was seeded), so checkpoints can be signed."""


def day(n: int) -> dt.date:
    """Day ``n`` of the tests' calendar: 9 is a Monday (as 9 March 2026 was), 10 the
    Tuesday after it, … 16 the next Monday."""
    return MONDAY + dt.timedelta(days=n - 9)


def cst(n: int, hour: int, minute: int = 0) -> dt.datetime:
    """A time of day ``n`` in China time, as UTC (how the tables keep times)."""
    return dt.datetime.combine(day(n), dt.time(hour, minute), CHINA_TIME).astimezone(dt.UTC)


NOW = cst(11, 10)
"""The tests' clock: Wednesday (day 11), 10:00 China time."""


async def _id(conn: AsyncConnection, table: Any, column: Any, value: str) -> int:
    found = await conn.scalar(select(table.c.id).where(column == value))
    assert found is not None, value
    return int(found)


async def add_case(
    conn: AsyncConnection, case_no: str, outlet: str, matter: str, created: dt.datetime
) -> int:
    matter_row = (
        await conn.execute(
            select(matters.c.id, matters.c.department_id, matters.c.time_limit_days).where(
                matters.c.code == matter
            )
        )
    ).one()
    result = await conn.execute(
        cases.insert().values(
            case_no=case_no,
            matter_id=matter_row.id,
            outlet_id=await _id(conn, outlets, outlets.c.code, outlet),
            department_id=matter_row.department_id,
            clerk_id=await _id(conn, users, users.c.username, "chuangkou"),
            applicant_name="测试",
            id_number_digest=uuid.uuid4().hex,
            id_number_masked="4502**********123X",
            phone="13800000000",
            notes="",
            status="reviewing",
            created_at=created,
            due_at=limit_ends(created, matter_row.time_limit_days, CHINA_TIME),
        )
    )
    return int(result.inserted_primary_key[0])


async def add_session(
    conn: AsyncConnection,
    case_id: int,
    created: dt.datetime,
    state: str,
    accepted: dt.datetime | None = None,
    ended: dt.datetime | None = None,
    queued: dt.datetime | None = None,
    outcome: str | None = None,
    score: str | None = None,
    followup_due: dt.date | None = None,
) -> str:
    """A session with, optionally, its decision, rating and the rating's follow-up
    (stage, state, due date)."""
    session_id = str(uuid.uuid4())
    department = await conn.scalar(select(cases.c.department_id).where(cases.c.id == case_id))
    clerk = await _id(conn, users, users.c.username, "chuangkou")
    approver = await _id(conn, users, users.c.username, "shenpi")
    await conn.execute(
        review_sessions.insert().values(
            id=session_id,
            case_id=case_id,
            department_id=department,
            state=state,
            created_by=clerk,
            accepted_by=approver if accepted else None,
            created_at=created,
            accepted_at=accepted,
            ended_at=ended,
            queued_at=queued,
        )
    )
    if outcome is not None:
        await conn.execute(
            case_decisions.insert().values(
                case_id=case_id,
                session_id=session_id,
                outcome=outcome,
                reason="",
                decided_by=approver,
                decided_at=ended or created,
            )
        )
    if score is not None:
        rated = await conn.execute(
            session_ratings.insert().values(
                session_id=session_id,
                case_id=case_id,
                score=score,
                comment="",
                reason="",
                rated_by=clerk,
                rated_at=ended or created,
            )
        )
        if followup_due is not None:  # a 回访核实 opened with the rating, no step taken yet
            await conn.execute(
                followups.insert().values(
                    case_id=case_id,
                    rating_id=rated.inserted_primary_key[0],
                    stage="verify",
                    state="open",
                    due_date=followup_due,
                    opened_at=ended or created,
                )
            )
    return session_id


async def close_demo_cases(engine: AsyncEngine) -> None:
    """The demo cases (made when the template was seeded, at the real time) leave the
    open cases, so only the test's own cases carry time-limit cards."""
    async with engine.begin() as conn:
        await conn.execute(update(cases).values(status="approved"))


async def seed_known_sessions(engine: AsyncEngine) -> None:
    """Five sessions over two days and two outlets:

    Monday (day 9), outlet BH-HC-01 (北海市海城区…):
      A1  matter LZ-SCJG-0101; waited 120 s, lasted 600 s; approved; 非常满意
      B1  matter LZ-RSJ-0201; nobody accepted: timed out
      B2  matter LZ-RSJ-0201; waited 600 s, lasted 1800 s; rejected; 不满意 → 回访核实
          open, due Thursday (day 12)
    Tuesday (day 10), outlet LZ-CZ-01 (柳州市城中区…), matter LZ-SCJG-0101:
      C1  00:30 China time (still Monday in UTC); requeued at 00:40, accepted 00:45
          (waited 300 s), lasted 1200 s; 补正; 满意
      C2  23:30; waited 60 s, still live; 基本满意
    """
    async with engine.begin() as conn:
        case_a = await add_case(conn, "GX-2026-900001", "BH-HC-01", "LZ-SCJG-0101", cst(9, 9))
        case_b = await add_case(conn, "GX-2026-900002", "BH-HC-01", "LZ-RSJ-0201", cst(9, 10))
        case_c1 = await add_case(conn, "GX-2026-900003", "LZ-CZ-01", "LZ-SCJG-0101", cst(10, 0, 30))
        case_c2 = await add_case(
            conn, "GX-2026-900004", "LZ-CZ-01", "LZ-SCJG-0101", cst(10, 23, 30)
        )
        await add_session(
            conn, case_a, cst(9, 9), "ended", cst(9, 9, 2), cst(9, 9, 12),
            outcome="approve", score="very_satisfied",
        )  # fmt: skip
        await add_session(conn, case_b, cst(9, 10), "timed_out", ended=cst(9, 10, 10))
        await add_session(
            conn, case_b, cst(9, 11), "ended", cst(9, 11, 10), cst(9, 11, 40),
            outcome="reject", score="dissatisfied",
            followup_due=day(12),
        )  # fmt: skip
        await add_session(
            conn, case_c1, cst(10, 0, 30), "ended", cst(10, 0, 45), cst(10, 1, 5),
            queued=cst(10, 0, 40), outcome="supplement", score="satisfied",
        )  # fmt: skip
        await add_session(
            conn, case_c2, cst(10, 23, 30), "live", cst(10, 23, 31), score="basically_satisfied"
        )
