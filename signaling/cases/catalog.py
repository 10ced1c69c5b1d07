"""The catalogue: jurisdictions (行政区划), outlets (通办网点), departments (审批部门) and
matters (事项) with their required materials (申请材料清单)."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from sqlalchemy import Row, Table, delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from recorder.auditlog import AuditLog
from signaling.storage.db import next_value
from signaling.storage.models import MATTER_MODES, Jurisdiction, Material, Matter, Unit
from signaling.storage.tables import (
    counters,
    departments,
    jurisdictions,
    matter_materials,
    matters,
    outlets,
)
from signaling.web import validation
from signaling.web.errors import InvalidInput, NotFound

logger = logging.getLogger(__name__)

CODE_PATTERN = r"[A-Za-z0-9_.-]{1,32}"
UNIT_TABLES: dict[str, Table] = {"outlet": outlets, "department": departments}
GENERATION = "catalog"
"""The ``counters`` row every catalogue write moves on, in its own transaction."""
CATALOG_TOPIC = "catalog"
"""The bus topic a node announces its catalogue writes on: ``{"generation": n}``."""


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


@dataclass(frozen=True, eq=False)
class CatalogSnapshot:
    """The whole catalogue as read at one generation (each part ordered by code). Equal
    and hashed by identity: presenters keep what they derive per snapshot."""

    generation: int
    jurisdictions: tuple[Jurisdiction, ...]
    outlets: tuple[Unit, ...]
    departments: tuple[Unit, ...]
    matters: tuple[Matter, ...]
    outlet_by_id: Mapping[int, Unit] = field(init=False)
    department_by_id: Mapping[int, Unit] = field(init=False)
    matter_by_id: Mapping[int, Matter] = field(init=False)

    def __post_init__(self) -> None:
        for name, items in (
            ("outlet_by_id", self.outlets),
            ("department_by_id", self.departments),
            ("matter_by_id", self.matters),
        ):
            object.__setattr__(self, name, MappingProxyType({i.id: i for i in items}))

    def active_matters(self) -> tuple[Matter, ...]:
        return tuple(m for m in self.matters if m.active)

    def matter(self, code: str) -> Matter:
        for matter in self.matters:
            if matter.code == code:
                return matter
        raise NotFound("matter_not_found")

    def subtree(self, root: str) -> frozenset[str]:
        """``root`` and every jurisdiction below it."""
        children: dict[str | None, list[str]] = {}
        for jurisdiction in self.jurisdictions:
            children.setdefault(jurisdiction.parent_code, []).append(jurisdiction.code)
        found, pending = {root}, [root]
        while pending:
            for child in children.get(pending.pop(), []):
                if child not in found:  # a cycle in the data must not loop forever
                    found.add(child)
                    pending.append(child)
        return frozenset(found)


async def _generation(conn: AsyncConnection) -> int:
    return int(
        await conn.scalar(select(counters.c.value).where(counters.c.name == GENERATION)) or 0
    )


async def _read(conn: AsyncConnection, generation: int) -> CatalogSnapshot:
    """Everything, read after ``generation`` (so at least as new as it)."""
    places = (await conn.execute(select(jurisdictions).order_by(jurisdictions.c.code))).all()
    units = {
        kind: tuple(_unit(r) for r in await conn.execute(select(table).order_by(table.c.code)))
        for kind, table in UNIT_TABLES.items()
    }
    rows = (await conn.execute(select(matters).order_by(matters.c.code))).all()
    items = (
        await conn.execute(select(matter_materials).order_by(matter_materials.c.position))
    ).all()
    by_matter: dict[int, list[Material]] = {}
    for item in items:
        by_matter.setdefault(item.matter_id, []).append(
            Material(item.position, item.name, item.required, item.id)
        )
    return CatalogSnapshot(
        generation,
        tuple(Jurisdiction(r.code, r.name, r.parent_code) for r in places),
        units["outlet"],
        units["department"],
        tuple(
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
        ),
    )


class Catalog:
    """Reads go through ``snapshot()``: an immutable copy, kept until the catalogue's
    generation (``counters`` row "catalog", bumped by every write in its own
    transaction) moves. The generation is read at most every ``recheck_seconds`` (one
    read in flight), so a write by another node or the CLI shows within that; this
    node's writes, and those another node announces on the bus (``invalidate``), show
    on the next call."""

    def __init__(
        self,
        engine: AsyncEngine,
        audit: AuditLog,
        on_change: Callable[[int], Awaitable[None]] | None = None,
        recheck_seconds: float = 1.0,
    ) -> None:
        self._engine = engine
        self._audit = audit
        self.on_change = on_change
        """Told the new generation after each write (the app announces it on the bus)."""
        self.recheck_seconds = recheck_seconds
        self._snapshot: CatalogSnapshot | None = None
        self._fresh_until = -math.inf  # monotonic: no generation read needed before it
        self._epoch = 0  # moved by invalidate(): a read begun before it is not fresh
        self._lock = asyncio.Lock()

    # -- reads ---------------------------------------------------------------------------

    async def snapshot(self) -> CatalogSnapshot:
        if self._snapshot is not None and time.monotonic() < self._fresh_until:
            return self._snapshot
        async with self._lock:
            if self._snapshot is not None and time.monotonic() < self._fresh_until:
                return self._snapshot  # read by the call this one waited for
            epoch = self._epoch
            async with self._engine.connect() as conn:
                generation = await _generation(conn)
                if self._snapshot is None or self._snapshot.generation != generation:
                    self._snapshot = await _read(conn, generation)
            if epoch == self._epoch:
                self._fresh_until = time.monotonic() + self.recheck_seconds
            return self._snapshot

    def invalidate(self, generation: int | None = None) -> None:
        """Read the generation again on the next call (unless ``generation`` is known
        to be held already)."""
        if generation is not None and self._snapshot is not None:
            if self._snapshot.generation >= generation:
                return
        self._epoch += 1
        self._fresh_until = -math.inf

    async def _changed(self, generation: int) -> None:
        self.invalidate()
        if self.on_change is not None:
            try:
                await self.on_change(generation)
            except Exception:  # the write stands: other nodes see it within a second
                logger.exception("could not announce catalogue generation %d", generation)

    async def follow(self, announced: asyncio.Queue[dict[str, Any]]) -> None:
        """Invalidate on each generation announced on the bus (runs until cancelled)."""
        while True:
            generation = (await announced.get()).get("generation")
            self.invalidate(generation if isinstance(generation, int) else None)

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
            generation = await next_value(conn, GENERATION)
        await self._changed(generation)
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
            generation = await next_value(conn, GENERATION)
        await self._changed(generation)
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
