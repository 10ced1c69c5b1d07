"""The catalogue: jurisdictions (行政区划), outlets (通办网点), departments (审批部门) and
matters (事项) with their required materials (申请材料清单)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Row, Table, delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from recorder.auditlog import AuditLog
from signaling import validation
from signaling.errors import InvalidInput, NotFound
from signaling.models import MATTER_MODES, Jurisdiction, Material, Matter, Unit
from signaling.tables import departments, jurisdictions, matter_materials, matters, outlets

CODE_PATTERN = r"[A-Za-z0-9_.-]{1,32}"
UNIT_TABLES: dict[str, Table] = {"outlet": outlets, "department": departments}


def _jurisdiction_fields(data: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "code": validation.pattern(data, "code", r"\d{6,12}", 12),
        "name": validation.text(data, "name", 64),
        "parent_code": validation.text(data, "parent", 12, required=False) or None,
    }


def _unit_fields(data: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "code": validation.pattern(data, "code", CODE_PATTERN, 32),
        "name": validation.text(data, "name", 128),
        "jurisdiction_code": validation.text(data, "jurisdiction", 12),
    }


def _materials(data: Mapping[str, Any]) -> list[dict[str, Any]]:
    raw = data.get("materials", [])
    if isinstance(raw, str):  # one material a line, from the admin form
        raw = [line for line in raw.splitlines() if line.strip()]
    if not isinstance(raw, list) or not raw or len(raw) > 50:
        raise InvalidInput("field_invalid", field="materials")
    result = []
    for position, item in enumerate(raw, start=1):
        entry = {"name": item} if isinstance(item, str) else item
        if not isinstance(entry, Mapping):
            raise InvalidInput("field_invalid", field="materials")
        required = entry.get("required", True)
        if not isinstance(required, bool):
            raise InvalidInput("field_invalid", field="materials")
        name = validation.text(entry, "name", 128)
        result.append({"position": position, "name": name, "required": required})
    return result


def _matter_fields(data: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "code": validation.pattern(data, "code", r"[A-Za-z0-9_.-]{1,64}", 64),
        "name": validation.text(data, "name", 128),
        "department": validation.text(data, "department", 32),
        "time_limit_days": validation.integer(data, "time_limit_days", 1, 365),
        "mode": validation.choice(data, "mode", MATTER_MODES),
        "retention_years": validation.integer(data, "retention_years", 1, 100),
        "materials": _materials(data),
    }


def _ancestors(parents: Mapping[str, str | None], code: str | None) -> set[str]:
    """``code`` and the codes above it (stops at a cycle, should one exist)."""
    found: set[str] = set()
    while code is not None and code not in found:
        found.add(code)
        code = parents.get(code)
    return found


def _unit(row: Row[Any]) -> Unit:
    return Unit(row.id, row.code, row.name, row.jurisdiction_code)


class Catalog:
    def __init__(self, engine: AsyncEngine, audit: AuditLog) -> None:
        self._engine = engine
        self._audit = audit

    # -- reads ---------------------------------------------------------------------------

    async def jurisdictions(self) -> list[Jurisdiction]:
        async with self._engine.connect() as conn:
            rows = (await conn.execute(select(jurisdictions).order_by(jurisdictions.c.code))).all()
        return [Jurisdiction(r.code, r.name, r.parent_code) for r in rows]

    async def units(self, kind: str) -> list[Unit]:
        table = UNIT_TABLES[kind]
        async with self._engine.connect() as conn:
            rows = (await conn.execute(select(table).order_by(table.c.code))).all()
        return [_unit(r) for r in rows]

    async def unit(self, kind: str, unit_id: int) -> Unit:
        table = UNIT_TABLES[kind]
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(table).where(table.c.id == unit_id))).first()
        if row is None:
            raise NotFound(f"{kind}_not_found")
        return _unit(row)

    async def matters(self, *, active_only: bool = False) -> list[Matter]:
        query = select(matters).order_by(matters.c.code)
        if active_only:
            query = query.where(matters.c.active.is_(True))
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
            items = (
                await conn.execute(select(matter_materials).order_by(matter_materials.c.position))
            ).all()
        by_matter: dict[int, list[Material]] = {}
        for item in items:
            by_matter.setdefault(item.matter_id, []).append(
                Material(item.position, item.name, item.required, item.id)
            )
        return [
            Matter(
                r.id,
                r.code,
                r.name,
                r.department_id,
                r.time_limit_days,
                r.mode,
                r.retention_years,
                r.active,
                tuple(by_matter.get(r.id, ())),
            )
            for r in rows
        ]

    async def matter(self, code: str) -> Matter:
        for matter in await self.matters():
            if matter.code == code:
                return matter
        raise NotFound("matter_not_found")

    # -- writes --------------------------------------------------------------------------

    async def add_matter(self, data: Mapping[str, Any], *, actor: str) -> None:
        await self.import_catalog({"matters": [data]}, actor=actor)

    async def set_matter_active(self, code: str, active: bool, *, actor: str) -> None:
        async with self._engine.begin() as conn:
            result = await conn.execute(
                update(matters).where(matters.c.code == code).values(active=active)
            )
        if result.rowcount == 0:
            raise NotFound("matter_not_found")
        await self._audit.append(
            "matter_enabled" if active else "matter_disabled", actor=actor, matter=code
        )

    async def import_catalog(self, data: Mapping[str, Any], *, actor: str) -> dict[str, int]:
        """Insert or update every entry by code, all in one transaction: a bad entry
        anywhere leaves the catalogue as it was."""
        if not isinstance(data, Mapping):
            raise InvalidInput("field_invalid", field="catalog")
        sections = {
            name: data.get(name, [])
            for name in ("jurisdictions", "outlets", "departments", "matters")
        }
        for name, entries in sections.items():
            if not isinstance(entries, list) or not all(isinstance(e, Mapping) for e in entries):
                raise InvalidInput("field_invalid", field=name)
        counts = {name: len(entries) for name, entries in sections.items()}
        async with self._engine.begin() as conn:
            rows = await conn.execute(select(jurisdictions.c.code, jurisdictions.c.parent_code))
            parents: dict[str, str | None] = {code: parent for code, parent in rows}
            for entry in sections["jurisdictions"]:  # parents before their children
                fields = _jurisdiction_fields(entry)
                if fields["parent_code"] and fields["parent_code"] not in parents:
                    raise InvalidInput("unknown_jurisdiction", field="parent")
                if fields["code"] in _ancestors(parents, fields["parent_code"]):
                    raise InvalidInput("jurisdiction_cycle", field="parent")
                await self._upsert(conn, jurisdictions, jurisdictions.c.code, fields)
                parents[fields["code"]] = fields["parent_code"]
            for kind, table in UNIT_TABLES.items():
                for entry in sections[f"{kind}s"]:
                    fields = _unit_fields(entry)
                    if fields["jurisdiction_code"] not in parents:
                        raise InvalidInput("unknown_jurisdiction", field="jurisdiction")
                    await self._upsert(conn, table, table.c.code, fields)
            for entry in sections["matters"]:
                await self._upsert_matter(conn, _matter_fields(entry))
        await self._audit.append("catalog_imported", actor=actor, counts=counts)
        return counts

    async def _upsert(
        self, conn: AsyncConnection, table: Table, key: Any, fields: dict[str, Any]
    ) -> Any:
        """Insert or update by code; returns the row's primary key."""
        existing = await conn.scalar(
            select(table.primary_key.columns[0]).where(key == fields["code"])
        )
        if existing is None:
            return await conn.scalar(
                table.insert().values(**fields).returning(table.primary_key.columns[0])
            )
        await conn.execute(update(table).where(key == fields["code"]).values(**fields))
        return existing

    async def _upsert_matter(self, conn: AsyncConnection, fields: dict[str, Any]) -> None:
        department_id = await conn.scalar(
            select(departments.c.id).where(departments.c.code == fields.pop("department"))
        )
        if department_id is None:
            raise InvalidInput("unknown_department", field="department")
        materials: Sequence[dict[str, Any]] = fields.pop("materials")
        fields.update(department_id=department_id, active=True)
        matter_id = await self._upsert(conn, matters, matters.c.code, fields)
        await conn.execute(
            delete(matter_materials).where(matter_materials.c.matter_id == matter_id)
        )
        await conn.execute(
            matter_materials.insert(), [{"matter_id": matter_id, **item} for item in materials]
        )
