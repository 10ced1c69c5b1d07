"""Initial schema: catalogue, accounts, cases, review sessions, audit events.

Revision ID: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

ROLES = [
    ("clerk", "窗口人员"),
    ("approver", "审批人员"),
    ("auditor", "监察人员"),
    ("admin", "管理员"),
]


def _at(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _ref(name: str, target: str, nullable: bool = False) -> sa.Column[object]:
    kind = sa.String(12) if target.startswith("jurisdictions") else sa.Integer()
    return sa.Column(name, kind, sa.ForeignKey(target), nullable=nullable)


def upgrade() -> None:
    roles = op.create_table(
        "roles",
        sa.Column("code", sa.String(16), primary_key=True),
        sa.Column("name", sa.String(32), nullable=False),
    )
    op.bulk_insert(roles, [{"code": code, "name": name} for code, name in ROLES])
    op.create_table(
        "jurisdictions",
        sa.Column("code", sa.String(12), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False),
        _ref("parent_code", "jurisdictions.code", nullable=True),
    )
    for unit in ("outlets", "departments"):
        op.create_table(
            unit,
            sa.Column("id", sa.Integer(), primary_key=True),
            sa.Column("code", sa.String(32), nullable=False, unique=True),
            sa.Column("name", sa.String(128), nullable=False),
            _ref("jurisdiction_code", "jurisdictions.code"),
        )
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("username", sa.String(32), nullable=False, unique=True),
        sa.Column("display_name", sa.String(64), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("role", sa.String(16), sa.ForeignKey("roles.code"), nullable=False),
        _ref("outlet_id", "outlets.id", nullable=True),
        _ref("department_id", "departments.id", nullable=True),
        _ref("jurisdiction_code", "jurisdictions.code", nullable=True),
        sa.Column("must_change_password", sa.Boolean(), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("failed_logins", sa.Integer(), nullable=False),
        _at("first_failure_at", nullable=True),
        _at("locked_until", nullable=True),
        _at("created_at"),
    )
    op.create_table(
        "login_sessions",
        sa.Column("id", sa.String(64), primary_key=True),
        _ref("user_id", "users.id"),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        _at("created_at"),
        _at("expires_at"),
        sa.Column("address", sa.String(64), nullable=False),
    )
    op.create_table(
        "matters",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("code", sa.String(64), nullable=False, unique=True),
        sa.Column("name", sa.String(128), nullable=False),
        _ref("department_id", "departments.id"),
        sa.Column("time_limit_days", sa.Integer(), nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("retention_years", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
    )
    op.create_table(
        "matter_materials",
        sa.Column("id", sa.Integer(), primary_key=True),
        _ref("matter_id", "matters.id"),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("required", sa.Boolean(), nullable=False),
        sa.UniqueConstraint("matter_id", "position"),
    )
    op.create_table(
        "counters",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("value", sa.Integer(), nullable=False),
    )
    op.create_table(
        "cases",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("case_no", sa.String(32), nullable=False, unique=True),
        _ref("matter_id", "matters.id"),
        _ref("outlet_id", "outlets.id"),
        _ref("department_id", "departments.id"),
        _ref("clerk_id", "users.id"),
        sa.Column("applicant_name", sa.String(64), nullable=False),
        sa.Column("id_number_digest", sa.String(64), nullable=False, index=True),
        sa.Column("id_number_masked", sa.String(18), nullable=False),
        sa.Column("phone", sa.String(20), nullable=False),
        sa.Column("notes", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        _at("created_at"),
    )
    op.create_table(
        "review_sessions",
        sa.Column("id", sa.String(36), primary_key=True),
        _ref("case_id", "cases.id"),
        _ref("department_id", "departments.id"),
        sa.Column("state", sa.String(16), nullable=False),
        _ref("created_by", "users.id"),
        _ref("accepted_by", "users.id", nullable=True),
        _at("created_at"),
        _at("accepted_at", nullable=True),
        _at("ended_at", nullable=True),
        sa.Column("end_reason", sa.String(32), nullable=True),
    )
    op.create_table(
        "audit_events",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("chain", sa.String(32), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        _at("at"),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("actor", sa.String(32), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.UniqueConstraint("chain", "seq"),
    )


def downgrade() -> None:
    for table in (
        "audit_events",
        "review_sessions",
        "cases",
        "counters",
        "matter_materials",
        "matters",
        "login_sessions",
        "users",
        "departments",
        "outlets",
        "jurisdictions",
        "roles",
    ):
        op.drop_table(table)
