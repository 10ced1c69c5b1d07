"""The steps of a bad rating's follow-up (回访核实, 整改), append-only: a follow-up row stays
as opened; where it stands is its steps.

Revision ID: 0017
"""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


# Append-only triggers, frozen as of this revision.
PG_FUNCTION = "coreview_append_only"


def refuse_changes(dialect: str, tables: Iterable[str]) -> None:
    if dialect == "sqlite":
        for table in tables:
            for action in ("UPDATE", "DELETE"):
                op.execute(
                    f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table} "
                    "BEGIN SELECT RAISE(ABORT, 'append-only'); END"
                )
    elif dialect == "postgresql":
        op.execute(
            f"CREATE OR REPLACE FUNCTION {PG_FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'append-only: % on %', TG_OP, TG_TABLE_NAME; END $$"
        )
        for table in tables:
            op.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                f"FOR EACH ROW EXECUTE FUNCTION {PG_FUNCTION}()"
            )
            op.execute(
                f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                f"FOR EACH STATEMENT EXECUTE FUNCTION {PG_FUNCTION}()"
            )
    else:
        raise NotImplementedError(f"append-only triggers for {dialect}")


def allow_changes(dialect: str, tables: Iterable[str]) -> None:
    """Drop what ``refuse_changes`` created (a downgrade)."""
    for table in tables:
        if dialect == "sqlite":
            for action in ("update", "delete"):
                op.execute(f"DROP TRIGGER IF EXISTS {table}_no_{action}")
        else:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")


def upgrade() -> None:
    op.create_table(
        "followup_steps",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("followup_id", sa.Integer, sa.ForeignKey("followups.id"), nullable=False),
        sa.Column("stage", sa.String(16), nullable=False),
        sa.Column("upheld", sa.Boolean, nullable=True),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("next_due_date", sa.Date, nullable=True),
        sa.Column("taken_by", sa.Integer, sa.ForeignKey("users.id"), nullable=False),
        sa.Column("taken_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("followup_id", "stage"),
    )
    refuse_changes(op.get_bind().dialect.name, ("followup_steps",))


def downgrade() -> None:
    allow_changes(op.get_bind().dialect.name, ("followup_steps",))
    op.drop_table("followup_steps")
