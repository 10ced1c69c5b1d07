"""Cases (案件): creation by a clerk, readable numbers, scoped listing and search."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import Connection, Select, select
from sqlalchemy.ext.asyncio import AsyncEngine

from recorder.auditlog import AuditLog
from recorder.clock import Clock, as_utc
from signaling import id_numbers
from signaling.cases.catalog import Catalog
from signaling.cases.id_search import IdSearches
from signaling.cases.scope import CONDITIONS, Scope, scope_of, scope_values
from signaling.cases.search import (
    CASE_STATUS,
    CasePage,
    CaseQuery,
    CaseSql,
    PageShape,
    term_values,
)
from signaling.china_time import CHINA_TIME
from signaling.storage.compiled_select import mappings
from signaling.storage.db import next_value
from signaling.storage.models import Case, User
from signaling.storage.reads import Reads
from signaling.storage.tables import (
    cases,
    matter_materials,
    matters,
    users,
)
from signaling.web import validation
from signaling.web.errors import Forbidden, InvalidInput, NotFound
from signaling.workdays import limit_ends

PHONE_PATTERN = r"1[3-9]\d{9}|0\d{2,3}-?\d{7,8}"
PAGE_SIZE = 50


CASE_FIELDS = tuple(f.name for f in dataclasses.fields(Case))


def case_of(row: Mapping[Any, Any]) -> Case:
    """A case from a row's mapping (``row._mapping``: ~6x faster than its attributes)."""
    fields = {name: row[name] for name in CASE_FIELDS}
    fields["created_at"] = as_utc(fields["created_at"])
    if fields["due_at"] is not None:
        fields["due_at"] = as_utc(fields["due_at"])
    return Case(**fields)


def _approver_id(conn: Connection, username: str) -> int:
    found = conn.scalar(
        select(users.c.id).where(users.c.username == username, users.c.role == "approver")
    )
    if found is None:
        raise InvalidInput("no_such_approver", field="approver")
    return int(found)


class Cases:
    def __init__(
        self,
        engine: AsyncEngine,
        reads: Reads,
        clock: Clock,
        audit: AuditLog,
        id_key: bytes,
        prefix: str,
        id_searches: IdSearches,
        catalog: Catalog,
    ) -> None:
        self._engine = engine
        self._reads = reads
        self._catalog = catalog
        self._clock = clock
        self._audit = audit
        self._id_key = id_key
        self._id_searches = id_searches
        self._prefix = prefix
        self._case_no = re.compile(rf"{re.escape(prefix)}-\d{{4}}-\d{{6,}}")
        self._sql = CaseSql(engine.dialect.name, CHINA_TIME)

    async def create(self, clerk: User, data: Mapping[str, Any]) -> Case:
        if clerk.role != "clerk" or clerk.outlet_id is None:
            raise Forbidden("wrong_role")
        matter_code = validation.text(data, "matter", 64)
        applicant_name = validation.text(data, "applicant_name", 64)
        id_number = id_numbers.normalize(validation.text(data, "id_number", 32))
        if not id_numbers.is_valid(id_number, self._clock.now().astimezone(CHINA_TIME).date()):
            raise InvalidInput("invalid_id_number", field="id_number")
        phone = validation.pattern(data, "phone", PHONE_PATTERN, 20)
        notes = validation.text(data, "notes", 2000, required=False, multiline=True)
        now = self._clock.now()
        async with self._engine.begin() as conn:
            matter = (
                await conn.execute(
                    select(
                        matters.c.id,
                        matters.c.department_id,
                        matters.c.active,
                        matters.c.time_limit_days,
                        matters.c.retention_years,
                    ).where(matters.c.code == matter_code)
                )
            ).first()
            if matter is None or not matter.active:
                raise InvalidInput("unknown_matter", field="matter")
            year = now.astimezone(CHINA_TIME).year
            number = await next_value(conn, f"case-{year}")
            case_no = f"{self._prefix}-{year}-{number:06d}"
            await conn.execute(
                cases.insert().values(
                    case_no=case_no,
                    matter_id=matter.id,
                    outlet_id=clerk.outlet_id,
                    department_id=matter.department_id,
                    clerk_id=clerk.id,
                    applicant_name=applicant_name,
                    id_number_digest=id_numbers.digest(id_number, self._id_key),
                    id_number_masked=id_numbers.mask(id_number),
                    phone=phone,
                    notes=notes,
                    status="accepted",
                    created_at=now,
                    due_at=limit_ends(now, matter.time_limit_days, CHINA_TIME),
                    retention_years=matter.retention_years,
                )
            )
        await self._audit.append(
            "case_created",
            actor=clerk.username,
            case_no=case_no,
            matter=matter_code,
            retention_years=matter.retention_years,
        )
        return await self._get(case_no)

    async def _get(self, case_no: str) -> Case:
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(cases).where(cases.c.case_no == case_no))).first()
        if row is None:
            raise NotFound("case_not_found")
        return case_of(row._mapping)

    async def get(self, user: User, case_no: str, *, log_view: bool = True) -> Case:
        """The case if it is in the user's scope; Forbidden if it exists outside it. An
        auditor's view is logged (``case_viewed``) unless the caller logs its own."""
        case = await self._get(case_no)
        statement = await self.scoped(user, select(cases.c.id))
        async with self._engine.connect() as conn:
            visible = await conn.scalar(statement.where(cases.c.id == case.id))
        if visible is None:
            raise Forbidden("out_of_scope")
        if user.role in ("auditor", "admin") and log_view:
            await self._audit.append("case_viewed", actor=user.username, case_no=case_no)
        return case

    async def visible(self, user: User, case_ids: Iterable[int]) -> dict[int, str]:
        """Of the given cases, those in the user's scope: id → case number. Nothing is
        logged (callers that answer "not found" for the others use it)."""
        statement = await self.scoped(user, select(cases.c.id, cases.c.case_no))
        async with self._engine.connect() as conn:
            rows = await conn.execute(statement.where(cases.c.id.in_(list(case_ids))))
            return {int(row.id): str(row.case_no) for row in rows}

    async def search(self, user: User, query: str = "", status: str = "") -> list[Case]:
        """The newest cases in scope matching ``query`` (see ``find``) and ``status``."""
        status = status if status in CASE_STATUS else ""
        found = await self.find(user, CaseQuery(q=query.strip(), status=status, per_page=PAGE_SIZE))
        return [case_of(row) for row in found.rows]

    async def find(self, user: User, query: CaseQuery) -> CasePage:
        """One page of the cases in scope that match (signaling/cases/search.py). ``q`` is
        a case number (whole or part), part of the applicant's name, or a full ID number
        (only some roles, limited and logged: signaling/cases/id_search.py). One read on a
        reader thread (signaling/storage/reads.py) with a statement built once per shape."""
        term, typed = "", query.q
        if id_numbers.is_valid(id_numbers.normalize(query.q)):
            await self._id_searches.admit(user)
            term, typed = "digest", id_numbers.digest(id_numbers.normalize(query.q), self._id_key)
        elif query.q:
            whole = self._case_no.fullmatch(query.q.upper())
            term, typed = ("case_no", query.q.upper()) if whole else ("part", query.q)
        scope, values = await self._scope(user)
        page, counted = self._sql.statements(PageShape.of(query, scope, term))
        values |= self._sql.values(query, self._clock.now()) | term_values(term, typed)

        def read(conn: Connection) -> tuple[list[Mapping[Any, Any]], int]:
            if query.approver:
                values["approver_id"] = _approver_id(conn, query.approver)
            rows = mappings(conn, page, values)
            if rows:
                return rows, int(rows[0]["total"])
            # past the end (or nothing): counted on its own
            return rows, int(conn.scalar(counted, values) or 0) if values["page_offset"] else 0

        rows, total = await self._reads.run(read)
        if term == "digest":
            await self._id_searches.record(user, typed, total)
        return CasePage(rows, total, query)

    async def _scope(self, user: User) -> tuple[Scope, dict[str, Any]]:
        """The user's scope and its bound values (signaling/cases/scope.py)."""
        scope = scope_of(user)
        codes: list[str] = []
        if scope == "jurisdiction" and user.jurisdiction_code is not None:
            codes = sorted((await self._catalog.snapshot()).subtree(user.jurisdiction_code))
        return scope, scope_values(user, codes)

    async def scoped(self, user: User, statement: Select[Any]) -> Select[Any]:
        """Restrict a query on cases to what the user may see."""
        scope, values = await self._scope(user)
        condition = CONDITIONS[scope]
        return statement if condition is None else statement.where(condition).params(values)


async def case_materials(engine: AsyncEngine, case_id: int) -> list[dict[str, Any]]:
    """The materials of the case's matter, in order, with their ids."""
    query = (
        select(matter_materials.c.id, matter_materials.c.name, matter_materials.c.required)
        .join(cases, cases.c.matter_id == matter_materials.c.matter_id)
        .where(cases.c.id == case_id)
        .order_by(matter_materials.c.position)
    )
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    return [{"id": r.id, "name": r.name, "required": r.required} for r in rows]


async def case_material(engine: AsyncEngine, case_id: int, material_id: int) -> dict[str, Any]:
    """{id, name, required} of a material of the case's matter, or ``unknown_material``."""
    for material in await case_materials(engine, case_id):
        if material["id"] == material_id:
            return material
    raise InvalidInput("unknown_material", field="material")
