"""Retention (保存期限) and legal hold (法律保全) of a case's media.

A case *ends* at the latest of its sessions' ends and its decision; it has not ended
while a session of it is waiting or live, or if it never had a session end nor a
decision. Its media are kept through ``retention_until`` = the end's date (China time)
plus the ``retention_years`` its matter had when the case was accepted (kept on the
case; 29 February → 28 February), and may be deleted
from the day after, unless the case is on legal hold. Only media files go (capture
chunks, playable files, stills, snapshots); every row and the whole log stay.

Holds are an append-only history (table ``legal_holds``, events ``legal_hold_placed`` /
``legal_hold_lifted``): a case is on hold while its latest row is ``placed``.

A retention run (another process: ``coreview retention run``) holds a lease while it
deletes; no hold is placed meanwhile (409 ``retention_running``), so none can appear
between the run's check of a case and the deletion of its files.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import case, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from recorder.auditlog import AuditLog
from recorder.clock import Clock, as_utc
from signaling.china_time import CHINA_TIME, china_iso
from signaling.review.sessions import OPEN_STATES
from signaling.storage.db import ensure_counter
from signaling.storage.models import Case, User
from signaling.storage.tables import (
    case_decisions,
    cases,
    counters,
    legal_holds,
    review_sessions,
    users,
)
from signaling.web import validation
from signaling.web.errors import Conflict

REASON_MAX = 500
LEASE = "retention_lease"
"""The ``counters`` row of the run's lease: until when it holds, in minutes since 1970."""
LEASE_MINUTES = 5
"""A run holds the lease this long, renewed as it goes; one that died lets it lapse."""


def retention_until(ended: dt.datetime, years: int) -> dt.date:
    """The last day the media of a case that ended at ``ended`` must be kept."""
    day = as_utc(ended).astimezone(CHINA_TIME).date()
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February into a common year
        return day.replace(year=day.year + years, day=28)


def china_today(clock: Clock) -> dt.date:
    return clock.now().astimezone(CHINA_TIME).date()


@dataclass(frozen=True)
class CaseRetention:
    case_id: int
    case_no: str
    retention_years: int
    ended_at: dt.datetime | None
    """None while a session is open, or if the case never ended."""
    on_hold: bool

    @property
    def until(self) -> dt.date | None:
        return (
            None if self.ended_at is None else retention_until(self.ended_at, self.retention_years)
        )

    def due(self, today: dt.date) -> bool:
        """Past retention and not on hold: its media may be deleted."""
        until = self.until
        return until is not None and today > until and not self.on_hold

    def to_dict(self, today: dt.date) -> dict[str, Any]:
        until = self.until
        return {
            "retention_years": self.retention_years,
            "ended_at": china_iso(self.ended_at) if self.ended_at else None,
            "retention_until": until.isoformat() if until else None,
            "expired": until is not None and today > until,
            "on_hold": self.on_hold,
        }


async def held_cases(engine: AsyncEngine, case_ids: Iterable[int] | None = None) -> set[int]:
    """Of the given cases (all if None), those on hold now."""
    latest = select(func.max(legal_holds.c.id)).group_by(legal_holds.c.case_id)
    query = select(legal_holds.c.case_id).where(
        legal_holds.c.id.in_(latest), legal_holds.c.action == "placed"
    )
    if case_ids is not None:
        query = query.where(legal_holds.c.case_id.in_(list(case_ids)))
    async with engine.connect() as conn:
        return {int(r) for r in (await conn.execute(query)).scalars()}


async def case_retention(
    engine: AsyncEngine, case_ids: Iterable[int] | None = None
) -> list[CaseRetention]:
    """Retention of the given cases (all if None), in case order."""
    ids = None if case_ids is None else list(case_ids)
    ended = (
        select(
            review_sessions.c.case_id,
            func.max(review_sessions.c.ended_at).label("ended_at"),
            func.sum(case((review_sessions.c.state.in_(OPEN_STATES), 1), else_=0)).label("open"),
        )
        .group_by(review_sessions.c.case_id)
        .subquery()
    )
    query = (
        select(
            cases.c.id,
            cases.c.case_no,
            cases.c.retention_years,
            ended.c.ended_at,
            ended.c.open,
            case_decisions.c.decided_at,
        )
        .outerjoin(ended, ended.c.case_id == cases.c.id)
        .outerjoin(case_decisions, case_decisions.c.case_id == cases.c.id)
        .order_by(cases.c.id)
    )
    if ids is not None:
        query = query.where(cases.c.id.in_(ids))
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    held = await held_cases(engine, ids)
    found = []
    for row in rows:
        ends = [as_utc(t) for t in (row.ended_at, row.decided_at) if t is not None]
        end = None if row.open or not ends else max(ends)
        found.append(CaseRetention(row.id, row.case_no, row.retention_years, end, row.id in held))
    return found


def _minutes(clock: Clock) -> int:
    return int(clock.now().timestamp() // 60)


async def _lease_held(conn: AsyncConnection, now: int) -> bool:
    """Lock the lease row inside the caller's transaction (a write that changes nothing:
    SQLite's write lock, PostgreSQL's row lock) and say whether a run holds it."""
    await ensure_counter(conn, LEASE)
    until = await conn.scalar(
        update(counters)
        .where(counters.c.name == LEASE)
        .values(value=counters.c.value)
        .returning(counters.c.value)
    )
    return int(until) > now


class RetentionLease:
    """``async with RetentionLease(...)``: one retention run at a time, and no hold placed
    while it runs; 409 ``retention_running`` if another run holds it."""

    def __init__(self, engine: AsyncEngine, clock: Clock) -> None:
        self._engine = engine
        self._clock = clock
        self._until = 0

    async def __aenter__(self) -> RetentionLease:
        now = _minutes(self._clock)
        async with self._engine.begin() as conn:
            if await _lease_held(conn, now):
                raise Conflict("retention_running")
            await self._set(conn, now + LEASE_MINUTES)
        return self

    async def renew(self) -> None:
        """Keep holding it (cheap: writes only once a minute has gone)."""
        now = _minutes(self._clock)
        if self._until - now < LEASE_MINUTES - 1:
            async with self._engine.begin() as conn:
                await self._set(conn, now + LEASE_MINUTES)

    async def __aexit__(self, *_exc: object) -> None:
        async with self._engine.begin() as conn:
            await self._set(conn, 0)

    async def _set(self, conn: AsyncConnection, until: int) -> None:
        self._until = until
        await conn.execute(update(counters).where(counters.c.name == LEASE).values(value=until))


class LegalHolds:
    """Places and lifts holds; one at a time per process, so two placings cannot both
    pass the check."""

    def __init__(self, engine: AsyncEngine, clock: Clock, audit: AuditLog) -> None:
        self._engine = engine
        self._clock = clock
        self._audit = audit
        self._lock = asyncio.Lock()

    async def history(self, case_id: int) -> list[dict[str, Any]]:
        query = (
            select(legal_holds, users.c.username, users.c.display_name)
            .join(users, users.c.id == legal_holds.c.actor_id)
            .where(legal_holds.c.case_id == case_id)
            .order_by(legal_holds.c.id)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [
            {
                "action": r.action,
                "reason": r.reason,
                "by": r.username,
                "by_name": r.display_name,
                "at": china_iso(r.at),
            }
            for r in rows
        ]

    async def status(self, case: Case) -> dict[str, Any]:
        """The case's retention, hold and hold history, as the API and the page show it."""
        [found] = await case_retention(self._engine, [case.id])
        return {
            **found.to_dict(china_today(self._clock)),
            "holds": await self.history(case.id),
        }

    async def place(self, user: User, case: Case, data: dict[str, Any]) -> dict[str, Any]:
        return await self._change(user, case, data, "placed")

    async def lift(self, user: User, case: Case, data: dict[str, Any]) -> dict[str, Any]:
        return await self._change(user, case, data, "lifted")

    async def _change(
        self, user: User, case: Case, data: dict[str, Any], action: str
    ) -> dict[str, Any]:
        reason = validation.text(data, "reason", REASON_MAX, multiline=True)
        async with self._lock:
            on_hold = case.id in await held_cases(self._engine, [case.id])
            if on_hold == (action == "placed"):
                raise Conflict("hold_exists" if on_hold else "not_on_hold")
            async with self._engine.begin() as conn:
                if action == "placed" and await _lease_held(conn, _minutes(self._clock)):
                    raise Conflict("retention_running")
                await conn.execute(
                    legal_holds.insert().values(
                        case_id=case.id,
                        action=action,
                        reason=reason,
                        actor_id=user.id,
                        at=self._clock.now(),
                    )
                )
            await self._audit.append(
                f"legal_hold_{action}", actor=user.username, case_no=case.case_no, reason=reason
            )
        return await self.status(case)
