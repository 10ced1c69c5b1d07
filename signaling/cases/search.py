"""The case search (案件查询): filters, sorting and pages as one query, parsed from a URL's
parameters (the page and ``GET /api/v1/cases`` take the same ones) and run as SQL: the
database filters, counts, sorts and cuts the page; only that page reaches Python.

Figures per case, over its review sessions:
- waiting (等待时长): from a session's latest entry into the queue to its acceptance (or,
  never accepted, to its end, or now while it waits), summed over the sessions;
- duration (审办时长): from a session's latest acceptance to its end (or now), summed;
- gaps (录像缺口): a session was interrupted (the server stopped), or the log holds a
  ``recording_gap`` or ``session_interrupted`` event of the case;
- overdue (超期): no decision when the time limit ran out (``cases.due_at``, working
  days: signaling/workdays.py), or a decision after it.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    DateTime,
    Select,
    and_,
    bindparam,
    case,
    exists,
    func,
    literal,
    or_,
    select,
)

from signaling import id_numbers
from signaling.cases.scope import CONDITIONS, Scope
from signaling.storage.tables import (
    QUEUED_AT,
    audit_events,
    case_decisions,
    cases,
    departments,
    matters,
    outlets,
    review_sessions,
    session_invitations,
    session_ratings,
    users,
)
from signaling.web import validation
from signaling.web.errors import InvalidInput

CASE_STATUS = ("accepted", "reviewing", "approved", "rejected", "supplement")
DECISIONS = ("approve", "reject", "supplement", "none")
BAD_RATINGS = ("dissatisfied", "very_dissatisfied")
RATINGS = (
    "very_satisfied",
    "satisfied",
    "basically_satisfied",
    "dissatisfied",
    "very_dissatisfied",
    "bad",
    "none",
)
SORTS = ("created", "case_no", "waiting", "duration", "due")
ORDERS = ("desc", "asc")
PAGE_SIZES = (20, 50, 100)
GAP_EVENTS = ("recording_gap", "session_interrupted")
CASE_CHAIN = "case:"
"""The prefix of a case's chain in the log (recorder/auditlog.py ``chain_of``)."""
MAX_PAGE = 100_000
CODE_FILTERS = ("status", "matter", "outlet", "department")
"""Filters whose value is the parameter itself (bound as ``f_<name>``)."""
SHAPES = 256
"""Search statements kept built (one per shape: scope, kind of term, filters, sort)."""


def _choice(params: Mapping[str, str], name: str, allowed: tuple[str, ...], default: str) -> str:
    value = params.get(name, "").strip()
    if not value:
        return default
    if value not in allowed:
        raise InvalidInput("field_invalid", field=name)
    return value


def _number(params: Mapping[str, str], name: str, default: int, high: int) -> int:
    value = params.get(name, "").strip()
    if not value:
        return default
    if not value.isdigit() or not 1 <= int(value) <= high:
        raise InvalidInput("field_out_of_range", field=name, low=1, high=high)
    return int(value)


def _code(params: Mapping[str, str], name: str) -> str:
    value = params.get(name, "").strip()
    if len(value) > 64:
        raise InvalidInput("field_too_long", field=name, max=64)
    return value


def _flag(params: Mapping[str, str], name: str) -> bool:
    return _choice(params, name, ("1", "0"), "0") == "1"


@dataclass(frozen=True)
class CaseQuery:
    """What to look for; every field is one URL parameter (``from``/``to`` for dates)."""

    q: str = ""
    """A case number (whole or part), a full ID number (some roles; limited, logged) or
    part of the applicant's name."""
    status: str = ""
    matter: str = ""
    """Matter code."""
    outlet: str = ""
    """Outlet code."""
    department: str = ""
    """Department code."""
    approver: str = ""
    """Username of an approver who accepted, co-reviewed or decided the case."""
    date_from: dt.date | None = None
    """Accepted on or after this day (China time)."""
    date_to: dt.date | None = None
    """Accepted on or before this day (China time)."""
    decision: str = ""
    """An outcome, or ``none`` (no decision yet)."""
    rating: str = ""
    """A score, ``bad`` (不满意 or 非常不满意) or ``none`` (not rated)."""
    gaps: bool = False
    overdue: bool = False
    sort: str = "created"
    order: str = "desc"
    page: int = 1
    per_page: int = PAGE_SIZES[0]

    @classmethod
    def parse(cls, params: Mapping[str, str]) -> CaseQuery:
        """From URL parameters; a bad value is ``InvalidInput`` naming the parameter."""
        q = params.get("q", "").strip()
        if len(q) > 64:
            raise InvalidInput("field_too_long", field="q", max=64)
        date_from, date_to = validation.date(params, "from"), validation.date(params, "to")
        if date_from and date_to and date_from > date_to:
            raise InvalidInput("bad_date_range", field="from")
        per_page = _number(params, "per_page", PAGE_SIZES[0], PAGE_SIZES[-1])
        return cls(
            q=q,
            status=_choice(params, "status", CASE_STATUS, ""),
            matter=_code(params, "matter"),
            outlet=_code(params, "outlet"),
            department=_code(params, "department"),
            approver=_code(params, "approver"),
            date_from=date_from,
            date_to=date_to,
            decision=_choice(params, "decision", DECISIONS, ""),
            rating=_choice(params, "rating", RATINGS, ""),
            gaps=_flag(params, "gaps"),
            overdue=_flag(params, "overdue"),
            sort=_choice(params, "sort", SORTS, "created"),
            order=_choice(params, "order", ORDERS, "desc"),
            page=_number(params, "page", 1, MAX_PAGE),
            per_page=per_page,
        )

    def params(self, **changes: Any) -> dict[str, str]:
        """The URL parameters that say this query (defaults left out), after ``changes``
        (e.g. ``page=2``). The full ID number of a search is never put in a link."""
        query = replace(self, **changes)
        default = CaseQuery()
        found: dict[str, str] = {}
        for item in fields(CaseQuery):
            value = getattr(query, item.name)
            if value == getattr(default, item.name):
                continue
            name = {"date_from": "from", "date_to": "to"}.get(item.name, item.name)
            if isinstance(value, bool):
                found[name] = "1"
            elif isinstance(value, dt.date):
                found[name] = value.isoformat()
            else:
                found[name] = str(value)
        return found

    def shown(self) -> dict[str, Any]:
        """The query as the API answers it back (a full ID number searched for is not)."""
        values = {item.name: getattr(self, item.name) for item in fields(self)}  # no deep copy
        if id_numbers.is_valid(id_numbers.normalize(self.q)):
            values["q"] = ""
        values["from"] = values.pop("date_from")
        values["to"] = values.pop("date_to")
        for name in ("from", "to"):
            values[name] = values[name].isoformat() if values[name] else None
        return values


@dataclass(frozen=True)
class CasePage:
    rows: list[Mapping[Any, Any]]
    """Rows of ``CaseSql.select_rows``: the case's columns and its figures (presented by
    signaling/web/presenters.py ``Lookup.found``)."""
    total: int
    query: CaseQuery

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.query.per_page))


def seconds_between(later: Any, earlier: Any, dialect: str) -> ColumnElement[Any]:
    """``later - earlier`` in seconds, as SQL."""
    if dialect == "sqlite":
        return (func.julianday(later) - func.julianday(earlier)) * 86400.0
    return func.extract("epoch", later - earlier)


def _escaped(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class CaseSql:
    """The search's SQL: its parts built once per node, a statement once per shape
    (``statements``); it runs with ``values(query, now)`` (the clock's now, so tests can
    move time), the scope's, the term's and the approver's id."""

    def __init__(self, dialect: str, tz: dt.tzinfo) -> None:
        self.tz = tz
        self._built = functools.lru_cache(maxsize=SHAPES)(self._build)
        self.now = bindparam("search_now", type_=DateTime(timezone=True))
        self.dialect = dialect
        rs = review_sessions
        waited = seconds_between(
            func.coalesce(rs.c.accepted_at, rs.c.ended_at, self.now), QUEUED_AT, dialect
        )
        lived = case(
            (
                rs.c.accepted_at.is_not(None),
                seconds_between(func.coalesce(rs.c.ended_at, self.now), rs.c.accepted_at, dialect),
            ),
            else_=0.0,
        )
        of_case = rs.c.case_id == cases.c.id
        self.sessions = select(func.count()).where(of_case).scalar_subquery()
        self.waiting = select(func.coalesce(func.sum(waited), 0.0)).where(of_case).scalar_subquery()
        self.duration = select(func.coalesce(func.sum(lived), 0.0)).where(of_case).scalar_subquery()
        decider = users.alias("decider")
        self.decider = (
            select(decider.c.display_name)
            .where(decider.c.id == case_decisions.c.decided_by)
            .scalar_subquery()
        )
        accepter = users.alias("accepter")
        self.accepter = (
            select(accepter.c.display_name)
            .join(rs, rs.c.accepted_by == accepter.c.id)
            .where(of_case)
            .order_by(rs.c.created_at.desc())
            .limit(1)
            .scalar_subquery()
        )
        self.rating = (
            select(session_ratings.c.score)
            .where(session_ratings.c.case_id == cases.c.id)
            .order_by(session_ratings.c.rated_at.desc())
            .limit(1)
            .scalar_subquery()
        )
        self.gaps = or_(
            exists().where(of_case, rs.c.interrupted),
            exists().where(
                audit_events.c.kind.in_(constants(GAP_EVENTS)),
                audit_events.c.chain == literal(CASE_CHAIN) + cases.c.case_no,
            ),
        )
        self.overdue = or_(
            and_(case_decisions.c.id.is_(None), self.now >= cases.c.due_at),
            case_decisions.c.decided_at >= cases.c.due_at,
        )

    def select_rows(self, statement: Select[Any]) -> Select[Any]:
        """Add the figures to a scoped, filtered ``select(cases)``."""
        return statement.add_columns(
            self.sessions.label("sessions"),
            self.waiting.label("waiting"),
            self.duration.label("duration"),
            case_decisions.c.outcome.label("decision"),
            case_decisions.c.decided_at.label("decided_at"),
            func.coalesce(self.decider, self.accepter).label("approver"),
            self.rating.label("rating"),
            case((self.gaps, True), else_=False).label("gaps"),
            case((self.overdue, True), else_=False).label("overdue"),
        )

    def statements(self, shape: PageShape) -> tuple[Select[Any], Select[Any]]:
        """The page (with the total as a column) and the count alone, of ``shape``;
        built once per shape (building and keying a statement cost more than running it)."""
        return self._built(shape)

    def _build(self, shape: PageShape) -> tuple[Select[Any], Select[Any]]:
        statement = select(cases).outerjoin(case_decisions, case_decisions.c.case_id == cases.c.id)
        scope = CONDITIONS[shape.scope]
        if scope is not None:
            statement = statement.where(scope)
        if shape.term:
            statement = statement.where(TERMS[shape.term])
        statement = statement.where(*self._conditions(shape))
        counted = select(func.count()).select_from(
            statement.with_only_columns(cases.c.id).subquery()
        )
        # the count rides along as an uncorrelated subquery: computed once, one query
        page = self.select_rows(statement).add_columns(counted.scalar_subquery().label("total"))
        page = self._ordered(page, shape).limit(bindparam("page_limit"))
        return page.offset(bindparam("page_offset")), counted

    def _conditions(self, shape: PageShape) -> list[ColumnElement[bool]]:
        """Every filter but the search term, each value a bound parameter (``values``)."""
        conditions = [FILTERS[name] for name in shape.filters]
        if shape.decision == "none":
            conditions.append(case_decisions.c.id.is_(None))
        elif shape.decision:
            conditions.append(case_decisions.c.outcome == bindparam("f_decision"))
        if shape.rating:
            conditions.append(_rating(shape.rating))
        if shape.gaps:
            conditions.append(self.gaps)
        if shape.overdue:
            conditions.append(self.overdue)
        return conditions

    def _ordered(self, statement: Select[Any], shape: PageShape) -> Select[Any]:
        key: Any = {
            "created": cases.c.created_at,
            "case_no": cases.c.case_no,
            "waiting": self.waiting,
            "duration": self.duration,
            "due": cases.c.due_at,
        }[shape.sort]
        if shape.order == "desc":
            return statement.order_by(key.desc(), cases.c.id.desc())
        return statement.order_by(key.asc(), cases.c.id.asc())

    def values(self, query: CaseQuery, now: dt.datetime) -> dict[str, Any]:
        """The bound values of ``query``'s filters, clock and page (not the scope's, the
        term's or the approver's id: the caller adds those)."""
        values: dict[str, Any] = {
            self.now.key: now,
            "page_limit": query.per_page,
            "page_offset": (query.page - 1) * query.per_page,
        }
        for name in CODE_FILTERS:
            if getattr(query, name):
                values[f"f_{name}"] = getattr(query, name)
        if query.date_from:
            values["f_from"] = self.midnight(query.date_from)
        if query.date_to:
            values["f_before"] = self.midnight(query.date_to + dt.timedelta(days=1))
        if query.decision and query.decision != "none":
            values["f_decision"] = query.decision
        if query.rating not in ("", "none", "bad"):
            values["f_score"] = query.rating
        return values

    def midnight(self, day: dt.date) -> dt.datetime:
        return dt.datetime.combine(day, dt.time(), self.tz).astimezone(dt.UTC)


@dataclass(frozen=True)
class PageShape:
    """What a search's SQL depends on besides its values: one statement per shape."""

    scope: Scope
    term: str
    """Empty (none), "digest" (a full ID number), "case_no" (a whole one) or "part"."""
    filters: tuple[str, ...]
    """Names in ``FILTERS`` that apply."""
    decision: str
    """Empty, "none" or "outcome" (one outcome)."""
    rating: str
    """Empty, "none", "bad" or "score" (one score)."""
    gaps: bool
    overdue: bool
    sort: str
    order: str

    @classmethod
    def of(cls, query: CaseQuery, scope: Scope, term: str) -> PageShape:
        filters = [name for name in CODE_FILTERS if getattr(query, name)]
        filters += ["approver"] if query.approver else []
        filters += ["from"] if query.date_from else []
        filters += ["to"] if query.date_to else []
        decision = "outcome" if query.decision not in ("", "none") else query.decision
        rating = "score" if query.rating not in ("", "none", "bad") else query.rating
        return cls(
            scope,
            term,
            tuple(filters),
            decision,
            rating,
            query.gaps,
            query.overdue,
            query.sort,
            query.order,
        )


def constants(values: tuple[str, ...]) -> list[ColumnElement[str]]:
    """An IN list of constants as plain bound values: a list ``in_`` expands on every
    execution instead (~30 µs a case list, rewriting the SQL text)."""
    return [literal(value) for value in values]


def _in_catalog(column: Any, table: Any, name: str) -> ColumnElement[bool]:
    condition: ColumnElement[bool] = column.in_(
        select(table.c.id).where(table.c.code == bindparam(f"f_{name}"))
    )
    return condition


def _approver() -> ColumnElement[bool]:
    """Accepted, co-reviewed (联审) or decided by the approver ``approver_id``."""
    rs = review_sessions
    approver_id: BindParameter[int] = bindparam("approver_id")
    co_reviewed = select(rs.c.case_id).join(
        session_invitations, session_invitations.c.session_id == rs.c.id
    )
    return or_(
        case_decisions.c.decided_by == approver_id,
        exists().where(rs.c.case_id == cases.c.id, rs.c.accepted_by == approver_id),
        cases.c.id.in_(co_reviewed.where(session_invitations.c.accepted_by == approver_id)),
    )


FILTERS: dict[str, ColumnElement[bool]] = {
    "status": cases.c.status == bindparam("f_status"),
    "matter": _in_catalog(cases.c.matter_id, matters, "matter"),
    "outlet": _in_catalog(cases.c.outlet_id, outlets, "outlet"),
    "department": _in_catalog(cases.c.department_id, departments, "department"),
    "approver": _approver(),
    "from": cases.c.created_at >= bindparam("f_from"),
    "to": cases.c.created_at < bindparam("f_before"),
}


def _rating(rating: str) -> ColumnElement[bool]:
    rated = exists().where(session_ratings.c.case_id == cases.c.id)
    if rating == "none":
        return ~rated
    if rating == "bad":
        return rated.where(session_ratings.c.score.in_(constants(BAD_RATINGS)))
    return rated.where(session_ratings.c.score == bindparam("f_score"))


TERMS: dict[str, ColumnElement[bool]] = {
    "digest": cases.c.id_number_digest == bindparam("term_digest"),
    "case_no": cases.c.case_no == bindparam("term_case_no"),
    "part": or_(
        cases.c.applicant_name.like(bindparam("term_name"), escape="\\"),
        cases.c.case_no.like(bindparam("term_number"), escape="\\"),
    ),
}
"""The search term's condition by kind (``term_values``)."""


def term_values(kind: str, text: str) -> dict[str, Any]:
    """The bound values of ``TERMS[kind]`` for what was typed (for "digest", the digest)."""
    if kind == "part":
        pattern = f"%{_escaped(text)}%"
        return {"term_name": pattern, "term_number": pattern.upper()}
    return {"term_" + kind: text} if kind else {}
