"""Supervision figures (电子监察 / 数据可视化 / 好差评) over review sessions in scope.

Every figure belongs to the session: its start day (China time) gives the day or the
week (Monday to Sunday), its case gives the outlet, department and matter. The decision
recorded in the session, its rating and the rating's follow-up count with it.

- sessions: every session started (waiting, live, ended, cancelled or timed out)
- accepted, timed_out (nobody accepted it in time), cancelled (by the clerk)
- wait: from entering the queue (created, or requeued) to acceptance; duration: from
  acceptance to the end; both p50 and p90 in seconds, nearest-rank, over the sessions
  that have them (None when none does)
- approved / rejected / supplement: decisions by outcome
- ratings, satisfied (满意 or 非常满意), satisfaction_rate = satisfied / ratings
- awaiting_verify (差评 awaiting 回访核实), awaiting_rectify (awaiting 整改): open
  follow-ups by stage; followups_overdue: open ones past their due day

Counts are SQL aggregates grouped by (period, group); percentiles are computed here
over one query's durations.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import ColumnElement, and_, case, func, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from recorder.clock import Clock, as_utc
from signaling.cases.cases import Cases
from signaling.china_time import CHINA_TIME
from signaling.storage.models import User
from signaling.storage.tables import (
    case_decisions,
    cases,
    departments,
    followup_steps,
    followups,
    matters,
    outlets,
    review_sessions,
    session_ratings,
)
from signaling.web import validation
from signaling.web.errors import InvalidInput

Period = Literal["day", "week"]
Group = Literal["outlet", "department", "matter"]
PERIODS: tuple[Period, ...] = ("day", "week")
GROUPS: tuple[Group, ...] = ("outlet", "department", "matter")
GOOD_SCORES = ("very_satisfied", "satisfied")
MAX_RANGE_DAYS = 366
DEFAULT_DAYS: dict[Period, int] = {"day": 30, "week": 7 * 12}
COUNTS = (
    "sessions",
    "accepted",
    "timed_out",
    "cancelled",
    "approved",
    "rejected",
    "supplement",
    "ratings",
    "satisfied",
    "awaiting_verify",
    "awaiting_rectify",
    "followups_overdue",
)


@dataclass(frozen=True)
class StatsQuery:
    period: Period
    group: Group
    start: dt.date
    end: dt.date
    """Inclusive, China time."""

    @classmethod
    def parse(cls, query: Mapping[str, str], today: dt.date) -> StatsQuery:
        period = query.get("period") or "day"
        group = query.get("group") or "outlet"
        if period not in PERIODS:
            raise InvalidInput("field_invalid", field="period")
        if group not in GROUPS:
            raise InvalidInput("field_invalid", field="group")
        end = validation.date(query, "to") or today
        start = validation.date(query, "from") or end - dt.timedelta(days=DEFAULT_DAYS[period] - 1)
        if start > end:
            raise InvalidInput("date_range_reversed")
        if (end - start).days + 1 > MAX_RANGE_DAYS:
            raise InvalidInput("date_range_too_long", max=MAX_RANGE_DAYS)
        return cls(period, group, start, end)

    def buckets(self) -> list[str]:
        """Every day, or the Monday of every week, of the range."""
        step = 1 if self.period == "day" else 7
        first = self.start if self.period == "day" else monday(self.start)
        count = (self.end - first).days // step + 1
        return [(first + dt.timedelta(days=step * i)).isoformat() for i in range(count)]


def monday(day: dt.date) -> dt.date:
    return day - dt.timedelta(days=day.weekday())


def nearest_rank(values: Sequence[float], share: float) -> float | None:
    """The smallest value with at least ``share`` of the values at or below it."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def china_midnight(day: dt.date) -> dt.datetime:
    """The start of a China-time day, in UTC (how times are stored)."""
    return dt.datetime.combine(day, dt.time(), CHINA_TIME).astimezone(dt.UTC)


def _bucket(dialect: str, period: Period) -> ColumnElement[Any]:
    """The session's China-time day, or its week's Monday, as YYYY-MM-DD."""
    column = review_sessions.c.created_at
    if dialect == "postgresql":
        local = func.timezone("Asia/Shanghai", column)
        return func.to_char(func.date_trunc(period, local), "YYYY-MM-DD")
    if period == "day":
        return func.date(column, "+8 hours")
    return func.date(column, "+8 hours", "weekday 0", "-6 days")


GROUP_COLUMNS = {
    "outlet": (cases.c.outlet_id, outlets.c.name, outlets, outlets.c.id == cases.c.outlet_id),
    "department": (
        review_sessions.c.department_id,
        departments.c.name,
        departments,
        departments.c.id == review_sessions.c.department_id,
    ),
    "matter": (cases.c.matter_id, matters.c.name, matters, matters.c.id == cases.c.matter_id),
}


def _count(condition: ColumnElement[bool]) -> ColumnElement[Any]:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


class Supervision:
    def __init__(self, engine: AsyncEngine, clock: Clock, cases_: Cases) -> None:
        self._engine = engine
        self._clock = clock
        self._cases = cases_

    def today(self) -> dt.date:
        return self._clock.now().astimezone(CHINA_TIME).date()

    async def stats(self, user: User, query: StatsQuery) -> dict[str, Any]:
        today = self.today()
        bucket = _bucket(self._engine.dialect.name, query.period).label("bucket")
        group_id, group_name, group_table, group_on = GROUP_COLUMNS[query.group]
        joined = review_sessions.join(cases, cases.c.id == review_sessions.c.case_id).join(
            group_table, group_on
        )
        window = and_(
            review_sessions.c.created_at >= china_midnight(query.start),
            review_sessions.c.created_at < china_midnight(query.end + dt.timedelta(days=1)),
        )
        state, outcome = review_sessions.c.state, case_decisions.c.outcome
        # where a follow-up stands is its steps (signaling/review/followups.py)
        verified = followup_steps.alias("verified")
        rectified = followup_steps.alias("rectified")
        awaiting_verify = and_(followups.c.id.is_not(None), verified.c.id.is_(None))
        awaiting_rectify = and_(verified.c.upheld.is_(True), rectified.c.id.is_(None))
        counts = (
            select(
                bucket,
                group_id.label("group_id"),
                group_name.label("group_name"),
                func.count(review_sessions.c.id).label("sessions"),
                func.count(review_sessions.c.accepted_at).label("accepted"),
                _count(state == "timed_out").label("timed_out"),
                _count(state == "cancelled").label("cancelled"),
                _count(outcome == "approve").label("approved"),
                _count(outcome == "reject").label("rejected"),
                _count(outcome == "supplement").label("supplement"),
                func.count(session_ratings.c.id).label("ratings"),
                _count(session_ratings.c.score.in_(GOOD_SCORES)).label("satisfied"),
                _count(awaiting_verify).label("awaiting_verify"),
                _count(awaiting_rectify).label("awaiting_rectify"),
                _count(
                    or_(
                        and_(awaiting_verify, followups.c.due_date < today),
                        and_(awaiting_rectify, verified.c.next_due_date < today),
                    )
                ).label("followups_overdue"),
            )
            .select_from(
                joined.outerjoin(
                    case_decisions, case_decisions.c.session_id == review_sessions.c.id
                )
                .outerjoin(session_ratings, session_ratings.c.session_id == review_sessions.c.id)
                .outerjoin(followups, followups.c.rating_id == session_ratings.c.id)
                .outerjoin(
                    verified,
                    and_(verified.c.followup_id == followups.c.id, verified.c.stage == "verify"),
                )
                .outerjoin(
                    rectified,
                    and_(rectified.c.followup_id == followups.c.id, rectified.c.stage == "rectify"),
                )
            )
            .where(window)
            .group_by(bucket, group_id, group_name)
        )
        times = (
            select(
                bucket,
                group_id.label("group_id"),
                review_sessions.c.created_at,
                review_sessions.c.queued_at,
                review_sessions.c.accepted_at,
                review_sessions.c.ended_at,
            )
            .select_from(joined)
            .where(window, review_sessions.c.accepted_at.is_not(None))
        )
        counts, times = (
            await self._cases.scoped(user, counts),
            await self._cases.scoped(user, times),
        )
        async with self._engine.connect() as conn:
            count_rows = (await conn.execute(counts)).all()
            time_rows = (await conn.execute(times)).all()
        # one row per session of the window (a year's can be many): off the event loop
        return await asyncio.to_thread(_assemble, query, count_rows, time_rows)


Key = tuple[str | None, int | None]
"""(bucket, group id); None for "all"."""


def _levels(bucket: str, group_id: int) -> tuple[Key, ...]:
    """Where a session counts: its period and group, its period, its group, the total."""
    return ((bucket, group_id), (bucket, None), (None, group_id), (None, None))


def _assemble(
    query: StatsQuery, count_rows: Sequence[Any], time_rows: Sequence[Any]
) -> dict[str, Any]:
    counts: dict[Key, dict[str, int]] = defaultdict(lambda: dict.fromkeys(COUNTS, 0))
    names: dict[int, str] = {}
    for row in count_rows:
        names[row.group_id] = row.group_name
        for key in _levels(row.bucket, row.group_id):
            for name in COUNTS:
                counts[key][name] += int(getattr(row, name))
    waits: dict[Key, list[float]] = defaultdict(list)
    durations: dict[Key, list[float]] = defaultdict(list)
    for row in time_rows:
        accepted = as_utc(row.accepted_at)
        wait = (accepted - as_utc(row.queued_at or row.created_at)).total_seconds()
        ended = as_utc(row.ended_at) if row.ended_at is not None else None
        for key in _levels(row.bucket, row.group_id):
            waits[key].append(max(0.0, wait))
            if ended is not None:
                durations[key].append((ended - accepted).total_seconds())

    def figures(key: Key) -> dict[str, Any]:
        found: dict[str, Any] = dict(counts[key]) if key in counts else dict.fromkeys(COUNTS, 0)
        found["wait_p50"] = _seconds(nearest_rank(waits[key], 0.5))
        found["wait_p90"] = _seconds(nearest_rank(waits[key], 0.9))
        found["duration_p50"] = _seconds(nearest_rank(durations[key], 0.5))
        found["duration_p90"] = _seconds(nearest_rank(durations[key], 0.9))
        found["satisfaction_rate"] = (
            round(found["satisfied"] / found["ratings"], 4) if found["ratings"] else None
        )
        return found

    group_ids = sorted(names, key=lambda gid: names[gid])
    return {
        "period": query.period,
        "group": query.group,
        "from": query.start.isoformat(),
        "to": query.end.isoformat(),
        "groups": [{"id": gid, "name": names[gid]} for gid in group_ids],
        "rows": [
            {"bucket": b, "group_id": gid, "group_name": names[gid], **figures((b, gid))}
            for b in query.buckets()
            for gid in group_ids
            if (b, gid) in counts
        ],
        "by_bucket": [{"bucket": b, **figures((b, None))} for b in query.buckets()],
        "by_group": [
            {"group_id": gid, "group_name": names[gid], **figures((None, gid))} for gid in group_ids
        ],
        "total": figures((None, None)),
    }


def _seconds(value: float | None) -> float | None:
    return None if value is None else round(value, 1)
