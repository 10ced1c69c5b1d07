"""The evidence record is append-only like the log: stored files, consents, material
marks, decisions, ratings and follow-ups are never changed or removed by any code path,
and the database now refuses it.

Revision ID: 0014
"""

from __future__ import annotations

from collections.abc import Iterable

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

EVIDENCE_TABLES = (
    "evidence_files",
    "review_consents",
    "material_marks",
    "case_decisions",
    "session_ratings",
    "followups",
)


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
    refuse_changes(op.get_bind().dialect.name, EVIDENCE_TABLES)


def downgrade() -> None:
    allow_changes(op.get_bind().dialect.name, EVIDENCE_TABLES)
