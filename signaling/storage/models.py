"""Plain records the store returns."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

Role = Literal["clerk", "approver", "auditor", "admin"]
ROLES: tuple[Role, ...] = ("clerk", "approver", "auditor", "admin")
MatterMode = Literal["remote_approval", "local_approval"]
MATTER_MODES: tuple[MatterMode, ...] = ("remote_approval", "local_approval")


@dataclass(frozen=True)
class Jurisdiction:
    code: str
    name: str
    parent_code: str | None


@dataclass(frozen=True)
class Unit:
    """An outlet (通办网点) or a department (审批部门)."""

    id: int
    code: str
    name: str
    jurisdiction_code: str


@dataclass(frozen=True)
class User:
    id: int
    username: str
    display_name: str
    role: Role
    outlet_id: int | None
    department_id: int | None
    jurisdiction_code: str | None
    must_change_password: bool
    disabled: bool


@dataclass(frozen=True)
class Material:
    position: int
    name: str
    required: bool
    id: int
    """``matter_materials.id``: stills are filed against it."""


@dataclass(frozen=True)
class Matter:
    id: int
    code: str
    name: str
    department_id: int
    time_limit_days: int
    mode: MatterMode
    retention_years: int
    active: bool
    materials: tuple[Material, ...]


@dataclass(frozen=True)
class Case:
    id: int
    case_no: str
    matter_id: int
    outlet_id: int
    department_id: int
    clerk_id: int
    applicant_name: str
    id_number_masked: str
    phone: str
    notes: str
    status: str
    created_at: dt.datetime
    due_at: dt.datetime | None = None
    """When the matter's 办理时限 runs out (fixed at acceptance)."""
