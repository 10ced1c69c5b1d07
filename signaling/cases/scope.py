"""Which cases a user may see, as one SQL condition per kind of scope. The user's own
values (outlet, department, id, jurisdictions) are bound parameters, so a statement made
with a condition can be built once and run for every user of that kind."""

from __future__ import annotations

from typing import Any, Literal

from sqlalchemy import BindParameter, ColumnElement, bindparam, or_, select

from signaling.storage.models import User
from signaling.storage.tables import (
    cases,
    departments,
    outlets,
    review_sessions,
    session_invitations,
)
from signaling.web.errors import Forbidden

Scope = Literal["all", "outlet", "department", "jurisdiction"]


def scope_of(user: User) -> Scope:
    if user.role == "admin":  # the auditor's side open to admins (export, holds): all
        return "all"
    if user.role == "clerk":
        return "outlet"
    if user.role == "approver":  # its department's cases, and those it co-reviews (联审)
        return "department"
    if user.role == "auditor":
        return "all" if user.jurisdiction_code is None else "jurisdiction"
    raise Forbidden("wrong_role")


def _co_reviewed() -> Any:
    return (
        select(review_sessions.c.case_id)
        .join(session_invitations, session_invitations.c.session_id == review_sessions.c.id)
        .where(session_invitations.c.accepted_by == bindparam("scope_user"))
    )


def _in_jurisdictions() -> ColumnElement[bool]:
    codes: BindParameter[str] = bindparam("scope_codes", expanding=True)
    return or_(
        cases.c.outlet_id.in_(select(outlets.c.id).where(outlets.c.jurisdiction_code.in_(codes))),
        cases.c.department_id.in_(
            select(departments.c.id).where(departments.c.jurisdiction_code.in_(codes))
        ),
    )


CONDITIONS: dict[Scope, ColumnElement[bool] | None] = {
    "all": None,
    "outlet": cases.c.outlet_id == bindparam("scope_outlet"),
    "department": or_(
        cases.c.department_id == bindparam("scope_department"), cases.c.id.in_(_co_reviewed())
    ),
    "jurisdiction": _in_jurisdictions(),
}
"""The condition on ``cases`` of each scope (None: every case)."""


def scope_values(user: User, jurisdiction_codes: list[str]) -> dict[str, Any]:
    """The bound values of ``CONDITIONS[scope_of(user)]`` (``jurisdiction_codes``: the
    auditor's jurisdiction and those below it)."""
    values: dict[Scope, dict[str, Any]] = {
        "all": {},
        "outlet": {"scope_outlet": user.outlet_id},
        "department": {"scope_department": user.department_id, "scope_user": user.id},
        "jurisdiction": {"scope_codes": jurisdiction_codes},
    }
    return values[scope_of(user)]
