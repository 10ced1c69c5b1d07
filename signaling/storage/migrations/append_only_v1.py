"""The append-only triggers (UPDATE, DELETE and, on PostgreSQL, TRUNCATE refused) as
migrations 0005, 0014, 0016 and 0017 create them. Frozen like the migrations: never
edited; another trigger is a new module, used by a new migration."""

from __future__ import annotations

from collections.abc import Iterable

from alembic import op

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
