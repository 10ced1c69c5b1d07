"""Live supervision (实时监察): the waiting and live review sessions in an auditor's scope,
with their waiting time, duration, visible participants and recording state.

Sessions and times come from the database; participants and recording from this node's
live hub (a session served by another node shows none: ``on_this_node`` is false).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from recorder.clock import Clock, as_utc
from signaling.cases.cases import Cases
from signaling.china_time import china_iso
from signaling.review.live_hub import LiveHub
from signaling.review.sessions import OPEN_STATES
from signaling.storage.models import User
from signaling.storage.tables import (
    QUEUED_AT,
    cases,
    departments,
    matters,
    outlets,
    review_sessions,
    users,
)
from signaling.web.messages import ROLE_NAMES, SESSION_STATE_NAMES, span_text

RECORDING_NAMES = {
    "recording": "录制中",
    "idle": "等待音视频",
    "failed": "录制异常",
    "off": "未开启录制",
    "unknown": "不在本节点",
}


def _seconds(later: dt.datetime, earlier: dt.datetime) -> int:
    return max(0, int((later - earlier).total_seconds()))


class Supervision:
    def __init__(self, engine: AsyncEngine, clock: Clock, cases_: Cases, hub: LiveHub) -> None:
        self._engine = engine
        self._clock = clock
        self._cases = cases_
        self._hub = hub

    async def open_sessions(self, user: User) -> list[dict[str, Any]]:
        """Waiting and live sessions of cases in the user's scope: live ones first, each
        group longest waiting (or running) first."""
        rs = review_sessions
        query = (
            select(
                rs.c.id,
                rs.c.state,
                rs.c.created_at,
                QUEUED_AT.label("queued_at"),
                rs.c.accepted_at,
                cases.c.case_no,
                matters.c.name.label("matter"),
                outlets.c.name.label("outlet"),
                departments.c.name.label("department"),
                users.c.display_name.label("approver"),
            )
            .join(cases, cases.c.id == rs.c.case_id)
            .join(matters, matters.c.id == cases.c.matter_id)
            .join(outlets, outlets.c.id == cases.c.outlet_id)
            .join(departments, departments.c.id == rs.c.department_id)
            .outerjoin(users, users.c.id == rs.c.accepted_by)
            .where(rs.c.state.in_(OPEN_STATES))
            .order_by(rs.c.state, rs.c.accepted_at, rs.c.created_at)
        )
        query = await self._cases.scoped(user, query)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        now = self._clock.now()
        return [self._describe(row, now) for row in rows]

    def _describe(self, row: Any, now: dt.datetime) -> dict[str, Any]:
        queued = as_utc(row.queued_at)
        accepted = as_utc(row.accepted_at) if row.accepted_at is not None else None
        waiting = _seconds(accepted or now, queued)
        duration = _seconds(now, accepted) if accepted else 0
        live = self._hub.sessions.get(row.id)
        participants: list[dict[str, Any]] = []
        recording, tracks = "unknown", 0
        if live is not None and not live.closed:
            recording, tracks = live.recording_state()
            for participant in live.participants.values():
                if not participant.grant.hidden:
                    described = participant.describe()
                    described.pop("hidden")
                    participants.append(
                        {**described, "role_name": ROLE_NAMES[participant.grant.role]}
                    )
        return {
            "id": row.id,
            "case_no": row.case_no,
            "matter": row.matter,
            "outlet": row.outlet,
            "department": row.department,
            "state": row.state,
            "state_name": SESSION_STATE_NAMES[row.state],
            "started_at": china_iso(row.created_at),
            "waiting_seconds": waiting,
            "waiting_text": span_text(waiting),
            "duration_seconds": duration,
            "duration_text": span_text(duration) if accepted else "—",
            "approver": row.approver,
            "participants": participants,
            "on_this_node": live is not None,
            "recording": {
                "state": recording,
                "name": RECORDING_NAMES[recording],
                "tracks": tracks,
            },
            "can_watch": row.state == "live",
        }
