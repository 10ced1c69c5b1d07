"""A case's evidence as one record (`GET /api/v1/cases/{case_no}/evidence`, the case
page): its sessions, recordings per track, stills, consent, marks, decision, rating,
whether it was interrupted, and its event chain. Also finds one stored file for a user
who may see it (`GET /api/v1/evidence/{sha256}`).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row, select
from sqlalchemy.ext.asyncio import AsyncEngine

from recorder.auditlog import AuditEvent, AuditLog, chain_of
from recorder.integrity import tombstones
from signaling.cases.cases import Cases, case_materials
from signaling.china_time import china_iso
from signaling.review.actions import ReviewActions
from signaling.storage.models import Case, User
from signaling.storage.tables import evidence_files, review_sessions, users
from signaling.web.messages import SESSION_STATE_NAMES

RECORDING_ROLES = ("capture", "playable")
SUPERVISORS = ("auditor", "admin")
"""Roles that see a case's supervision (auditors' events and snapshots)."""
GAP_EVENT = "recording_gap"
INTERRUPTED_EVENT = "session_interrupted"


def recordings(rows: list[Row[Any]], events: list[AuditEvent]) -> list[dict[str, Any]]:
    """Capture chunks and playable files grouped per published track, in the order the
    tracks started; gaps from the files' meta (lost packets, outages), then the
    ``recording_gap`` events not already there, then the crash (``session_interrupted``)
    on each track of its session that it cut."""
    tracks: dict[str, dict[str, Any]] = {}
    for row in rows:
        if row.role not in RECORDING_ROLES:
            continue
        meta = row.meta or {}
        key = row.track or row.sha256
        track = tracks.setdefault(
            key,
            {
                "track": key,
                "session": row.session_id,
                "participant": row.participant,
                "source": row.source,
                "kind": meta.get("kind") or ("audio" if row.source == "audio" else "video"),
                "codec": meta.get("codec"),
                "files": [],
                "gaps": [],
            },
        )
        track["codec"] = track["codec"] or meta.get("codec")
        track["files"].append(
            {
                "sha256": row.sha256,
                "bytes": row.bytes,
                "seconds": row.seconds,
                "role": row.role,
                "derived_from": row.derived_from,
                "created_at": china_iso(row.created_at),
            }
        )
        track["gaps"].extend(meta.get("gaps") or [])
    ended = {e.detail.get("track") for e in events if e.kind == "track_ended"}
    for event in events:
        detail = event.detail
        if event.kind == GAP_EVENT and detail.get("track") in tracks:
            gaps = tracks[detail["track"]]["gaps"]
            if not any(_same_gap(gap, detail) for gap in gaps):  # an outage in both
                gaps.append({"at": event.at, **detail})
        elif event.kind == INTERRUPTED_EVENT:
            for key, track in tracks.items():  # the tracks the crash cut (never ended)
                if track["session"] == detail.get("session") and key not in ended:
                    track["gaps"].append(
                        {
                            "at": event.at,
                            "reason": "interrupted",
                            "from": detail.get("last_packet_at", detail.get("last_seen_at")),
                            "to": detail.get("restarted_at"),
                            "seconds": detail.get("gap_seconds"),
                        }
                    )
    return list(tracks.values())


def _same_gap(gap: dict[str, Any], detail: dict[str, Any]) -> bool:
    return all(gap.get(k) == detail.get(k) for k in ("reason", "from", "to"))


def images(rows: list[Row[Any]], role: str) -> list[dict[str, Any]]:
    found = []
    for row in rows:
        if row.role != role:
            continue
        meta = row.meta or {}
        material = meta.get("material") or {}  # {id, name}, as the still upload files it
        found.append(
            {
                "sha256": row.sha256,
                "bytes": row.bytes,
                "width": meta.get("width"),
                "height": meta.get("height"),
                "material": material.get("id"),
                "material_name": material.get("name"),
                "participant": row.participant,
                "session": row.session_id,
                "created_at": china_iso(row.created_at),
            }
        )
    return found


async def case_files(engine: AsyncEngine, case_id: int) -> list[Row[Any]]:
    """The case's evidence_files rows, in filing order."""
    query = select(evidence_files).where(evidence_files.c.case_id == case_id)
    async with engine.connect() as conn:
        return list((await conn.execute(query.order_by(evidence_files.c.id))).all())


def _log(events: list[AuditEvent], supervised: bool) -> dict[str, Any]:
    """The chain whole with its head for supervisors; for reviewers only what happened
    (a chain with the supervision left out would show its gaps)."""
    if supervised:
        return {
            "events": [e.to_dict() for e in events],
            "head": events[-1].hash if events else None,
        }
    return {"events": [{k: e.to_dict()[k] for k in REVIEWER_FIELDS} for e in events]}


REVIEWER_FIELDS = ("at", "kind", "actor", "detail")


class CaseEvidence:
    def __init__(
        self, engine: AsyncEngine, audit: AuditLog, cases: Cases, actions: ReviewActions
    ) -> None:
        self._engine = engine
        self._audit = audit
        self._cases = cases
        self._actions = actions

    async def _sessions(self, case_id: int) -> list[Row[Any]]:
        accepter = users.alias("accepter")
        query = (
            select(review_sessions, accepter.c.username.label("accepted_by_name"))
            .outerjoin(accepter, accepter.c.id == review_sessions.c.accepted_by)
            .where(review_sessions.c.case_id == case_id)
            .order_by(review_sessions.c.created_at)
        )
        async with self._engine.connect() as conn:
            return list((await conn.execute(query)).all())

    async def _supervisors(self) -> set[str]:
        async with self._engine.connect() as conn:
            found = await conn.execute(select(users.c.username).where(users.c.role == "auditor"))
            return set(found.scalars())

    async def build(self, case: Case, viewer: User) -> dict[str, Any]:
        """The case's evidence as ``viewer`` may see it: supervision is not observable
        by the reviewers, so clerks and approvers get neither the auditors' events nor
        their snapshots, nor the chain's numbering and hashes (which move with them)."""
        events = await self._audit.events(chain_of(case.case_no))
        supervised = viewer.role in SUPERVISORS
        hidden = set() if supervised else await self._supervisors()
        events = [e for e in events if e.actor not in hidden]
        rows = await case_files(self._engine, case.id)
        rows = [r for r in rows if supervised or not (r.meta or {}).get("hidden")]
        actions = await self._actions.of_case(case.id)
        materials = await case_materials(self._engine, case.id)
        sessions = [
            {
                "id": s.id,
                "state": s.state,
                "state_name": SESSION_STATE_NAMES.get(s.state, s.state),
                "created_at": china_iso(s.created_at),
                "accepted_at": china_iso(s.accepted_at) if s.accepted_at else None,
                "ended_at": china_iso(s.ended_at) if s.ended_at else None,
                "end_reason": s.end_reason,
                "accepted_by": s.accepted_by_name,
                "interrupted": bool(s.interrupted),
                "consent": actions["consents"].get(s.id),
                "rating": actions["ratings"].get(s.id),
            }
            for s in await self._sessions(case.id)
        ]
        purged = set(tombstones(events))
        tracks = recordings(rows, events)
        stills, snapshots = images(rows, "still"), images(rows, "snapshot")
        for item in [*(f for t in tracks for f in t["files"]), *stills, *snapshots]:
            item["purged"] = item["sha256"] in purged  # deleted by the retention run
        return {
            "case_no": case.case_no,
            "status": case.status,
            "materials": materials,
            "sessions": sessions,
            "recordings": tracks,
            "stills": stills,
            "snapshots": snapshots,
            "consent": next((s["consent"] for s in reversed(sessions) if s["consent"]), None),
            "marks": actions["marks"],
            "decision": actions["decision"],
            "rating": next((s["rating"] for s in reversed(sessions) if s["rating"]), None),
            "interrupted": any(s["interrupted"] for s in sessions),
            "log": _log(events, supervised),
        }

    async def find_file(self, user: User, sha256: str) -> tuple[Row[Any], str] | None:
        """An evidence file row of a case the user may see, with that case's number, or
        None (also when the file belongs only to cases out of the user's scope)."""
        async with self._engine.connect() as conn:
            rows = list(
                (
                    await conn.execute(
                        select(evidence_files)
                        .where(evidence_files.c.sha256 == sha256)
                        .order_by(evidence_files.c.id)
                    )
                ).all()
            )
        if not rows:
            return None
        visible = await self._cases.visible(user, {r.case_id for r in rows})
        return next(((r, visible[r.case_id]) for r in rows if r.case_id in visible), None)
