"""The working-day calendar of time limits (办理时限, follow-ups): Monday to Friday, China
time. coreview knows no public holidays or make-up working days (调休): they count as
ordinary days of their weekday."""

from __future__ import annotations

import datetime as dt

ONE_DAY = dt.timedelta(days=1)


def add_working_days(start: dt.date, days: int) -> dt.date:
    """The date ``days`` working days (Monday to Friday) after ``start``."""
    current = start
    while days > 0:
        current += ONE_DAY
        if current.weekday() < 5:
            days -= 1
    return current


def limit_ends(accepted_at: dt.datetime, days: int, tz: dt.tzinfo) -> dt.datetime:
    """When a time limit of ``days`` working days, counted from the day after acceptance,
    runs out: midnight (in ``tz``) after its last day, as a UTC instant."""
    last = add_working_days(accepted_at.astimezone(tz).date(), days)
    return dt.datetime.combine(last + ONE_DAY, dt.time(), tz).astimezone(dt.UTC)


def last_day(ends: dt.datetime) -> dt.date:
    """The last day of a time limit that runs out at ``ends`` (see ``limit_ends``), a
    time on the calendar's wall clock."""
    return ends.date() - ONE_DAY


def working_days_after(start: dt.date, end: dt.date) -> int:
    """Working days d with start < d <= end (0 when end <= start)."""
    if end <= start:
        return 0
    weeks, rest = divmod((end - start).days, 7)
    tail = (start + dt.timedelta(days=7 * weeks + i) for i in range(1, rest + 1))
    return 5 * weeks + sum(1 for day in tail if day.weekday() < 5)
