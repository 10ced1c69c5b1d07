"""Plain dicts of records for the API and the templates (one shape for both)."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from aiohttp import web

from signaling.china_time import china_iso, china_wall
from signaling.storage.models import Case, Matter, Unit, User
from signaling.web.appkeys import CATALOG
from signaling.web.messages import (
    CASE_STATUS_NAMES,
    MODE_NAMES,
    OUTCOME_NAMES,
    ROLE_NAMES,
    SCORE_NAMES,
    SESSION_STATE_NAMES,
    span_text,
)
from signaling.workdays import last_day

if TYPE_CHECKING:  # the domains' records, typed only: web sits below the domains
    from signaling.cases.catalog import CatalogSnapshot
    from signaling.cases.search import CasePage
    from signaling.review.sessions import ReviewSession


def _unit(unit: Unit | None) -> dict[str, Any] | None:
    return {"code": unit.code, "name": unit.name} if unit else None


def mask_phone(phone: str) -> str:
    return phone[:3] + "*" * (len(phone) - 7) + phone[-4:]


class Lookup:
    """The catalogue by id: the node's current snapshot (signaling/cases/catalog.py). One per
    snapshot (``load``), so the views of its units and matters are built once, not once
    per case listed; they are shared: read, never changed."""

    def __init__(self, catalog: CatalogSnapshot) -> None:
        self.catalog = catalog
        self.outlets = catalog.outlet_by_id
        self.departments = catalog.department_by_id
        self.matters = catalog.matter_by_id
        self._outlet_views = {id_: _unit(unit) for id_, unit in self.outlets.items()}
        self._department_views = {id_: _unit(unit) for id_, unit in self.departments.items()}
        self._matter_views: dict[int, dict[str, Any]] = {}

    @classmethod
    async def load(cls, app: web.Application) -> Lookup:
        return _lookup(await app[CATALOG].snapshot())

    def user(self, user: User) -> dict[str, Any]:
        return {
            "id": user.id,
            "username": user.username,
            "display_name": user.display_name,
            "role": user.role,
            "role_name": ROLE_NAMES[user.role],
            "outlet": self._outlet_views.get(user.outlet_id or 0),
            "department": self._department_views.get(user.department_id or 0),
            "jurisdiction": user.jurisdiction_code,
            "must_change_password": user.must_change_password,
            "disabled": user.disabled,
        }

    def matter(self, matter: Matter) -> dict[str, Any]:
        return {
            "code": matter.code,
            "name": matter.name,
            "department": self._department_views.get(matter.department_id),
            "time_limit_days": matter.time_limit_days,
            "mode": matter.mode,
            "mode_name": MODE_NAMES[matter.mode],
            "retention_years": matter.retention_years,
            "active": matter.active,
            "materials": [
                {"id": m.id, "name": m.name, "required": m.required} for m in matter.materials
            ],
        }

    def case(self, case: Case) -> dict[str, Any]:
        return self._case(vars(case))

    def _case(self, case: Mapping[Any, Any]) -> dict[str, Any]:
        """A case's fields (a ``Case``'s, or a row's of the cases table) as users read them."""
        matter_id, due_at = case["matter_id"], case["due_at"]
        matter = self._matter_views.get(matter_id)
        if matter is None:
            matter = self._matter_views[matter_id] = self.matter(self.matters[matter_id])
        return {
            "case_no": case["case_no"],
            "matter": matter,
            "outlet": self._outlet_views.get(case["outlet_id"]),
            "department": self._department_views.get(case["department_id"]),
            "applicant_name": case["applicant_name"],
            "id_number_masked": case["id_number_masked"],
            "phone_masked": mask_phone(case["phone"]),
            "notes": case["notes"],
            "status": case["status"],
            "status_name": CASE_STATUS_NAMES.get(case["status"], case["status"]),
            "created_at": china_iso(case["created_at"]),
            "due_date": last_day(china_wall(due_at)).isoformat() if due_at else None,
        }

    def found(self, row: Mapping[Any, Any]) -> dict[str, Any]:
        """A case as the search lists it: a row of the search (signaling/cases/search.py
        ``CaseSql.select_rows``), the case and its figures."""
        waiting = round(row["waiting"] or 0)  # julianday is a float: 59.99… s
        duration = round(row["duration"] or 0)
        decision, decided_at, rating = row["decision"], row["decided_at"], row["rating"]
        return {
            **self._case(row),
            "sessions": int(row["sessions"] or 0),
            "waiting_seconds": waiting,
            "waiting_text": span_text(waiting),
            "duration_seconds": duration,
            "duration_text": span_text(duration),
            "decision": decision,
            "decision_name": OUTCOME_NAMES.get(decision or "", None),
            "decided_at": china_iso(decided_at) if decided_at else None,
            "approver": row["approver"],
            "rating": rating,
            "rating_name": SCORE_NAMES.get(rating or "", None),
            "gaps": bool(row["gaps"]),
            "overdue": bool(row["overdue"]),
        }

    def page(self, page: CasePage) -> dict[str, Any]:
        """A page of search results, with what was asked and how many there are."""
        return {
            "cases": [self.found(row) for row in page.rows],
            "total": page.total,
            "page": page.query.page,
            "per_page": page.query.per_page,
            "pages": page.pages,
            "query": page.query.shown(),
        }


@functools.lru_cache(maxsize=2)
def _lookup(catalog: CatalogSnapshot) -> Lookup:
    """The presenter of a snapshot (snapshots hash by identity)."""
    return Lookup(catalog)


def review(session: ReviewSession, user: User) -> dict[str, Any]:
    """A review session as a case page lists it; ``can_enter``: the user may open its
    live screen now (the clerk who started it, the approver who accepted it, or an
    auditor while it is live)."""
    open_now = session.state in ("waiting", "live")
    can_enter = (
        (user.role == "clerk" and user.id == session.created_by and open_now)
        or (user.role == "approver" and user.id == session.accepted_by and session.state == "live")
        or (user.role == "auditor" and session.state == "live")
    )
    return {
        "id": session.id,
        "case_no": session.case_no,
        "state": session.state,
        "state_name": SESSION_STATE_NAMES.get(session.state, session.state),
        "open": open_now,
        "created_at": china_iso(session.created_at),
        "can_enter": can_enter,
    }
