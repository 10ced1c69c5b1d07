"""Case search: each case's time limit fixed at acceptance (``due_at``: when its 办理时限
runs out, so a later change of the matter's limit does not move it), and indexes for
the auditor's search (by time, by a session's case, log events by kind).

Revision ID: 0015
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

CHINA_TIME = dt.timezone(dt.timedelta(hours=8), "CST")
ONE_DAY = dt.timedelta(days=1)


def limit_ends(accepted_at: dt.datetime, days: int, tz: dt.tzinfo) -> dt.datetime:
    """When a time limit runs out (signaling's working-day calendar, frozen): midnight
    after ``days`` working days (Monday to Friday) from the day after acceptance."""
    current = accepted_at.astimezone(tz).date()
    while days > 0:
        current += ONE_DAY
        if current.weekday() < 5:
            days -= 1
    return dt.datetime.combine(current + ONE_DAY, dt.time(), tz).astimezone(dt.UTC)


def upgrade() -> None:
    with op.batch_alter_table("cases") as batch:
        batch.add_column(sa.Column("due_at", sa.DateTime(timezone=True), nullable=True))
    bind = op.get_bind()
    cases = sa.table(
        "cases",
        sa.column("id", sa.Integer),
        sa.column("matter_id", sa.Integer),
        sa.column("created_at", sa.DateTime(timezone=True)),
        sa.column("due_at", sa.DateTime(timezone=True)),
    )
    matters = sa.table("matters", sa.column("id"), sa.column("time_limit_days"))
    rows = bind.execute(
        sa.select(cases.c.id, cases.c.created_at, matters.c.time_limit_days).join(
            matters, matters.c.id == cases.c.matter_id
        )
    ).all()
    for case_id, created_at, days in rows:
        accepted = created_at if created_at.tzinfo else created_at.replace(tzinfo=dt.UTC)
        bind.execute(
            sa.update(cases)
            .where(cases.c.id == case_id)
            .values(due_at=limit_ends(accepted, days, CHINA_TIME))
        )
    op.create_index("cases_by_created", "cases", ["created_at"])
    op.create_index("cases_by_due", "cases", ["due_at"])
    op.create_index("review_sessions_by_case", "review_sessions", ["case_id"])
    op.create_index("audit_events_by_kind", "audit_events", ["kind", "chain"])


def downgrade() -> None:
    op.drop_index("audit_events_by_kind", "audit_events")
    op.drop_index("review_sessions_by_case", "review_sessions")
    op.drop_index("cases_by_due", "cases")
    op.drop_index("cases_by_created", "cases")
    with op.batch_alter_table("cases") as batch:
        batch.drop_column("due_at")
