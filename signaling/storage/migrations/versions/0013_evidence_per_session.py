"""Evidence files are unique per (case, session, role, hash), not per (case, hash): the
same bytes filed in a second session of the case (a still taken again) get a row, an
event and a place in that session's gallery of their own.

Revision ID: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0011"
branch_labels = None
depends_on = None

OLD = "evidence_files_case_sha256"
NEW = "evidence_files_case_session_role_sha256"


def _table(unique: str, columns: tuple[str, ...]) -> sa.Table:
    """evidence_files as it stands, its unique constraint named (0004 left it unnamed)."""
    return sa.Table(
        "evidence_files",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("case_id", sa.Integer, sa.ForeignKey("cases.id"), nullable=False),
        sa.Column("session_id", sa.String(36), sa.ForeignKey("review_sessions.id"), nullable=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("track", sa.String(96), nullable=True),
        sa.Column("participant", sa.String(32), nullable=True),
        sa.Column("source", sa.String(16), nullable=True),
        sa.Column("bytes", sa.Integer, nullable=False),
        sa.Column("seconds", sa.Float, nullable=True),
        sa.Column("derived_from", sa.String(64), nullable=True),
        sa.Column("meta", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint(*columns, name=unique),
        sa.Index("evidence_files_by_session", "session_id"),
    )


def upgrade() -> None:
    old = _table(OLD, ("case_id", "sha256"))
    with op.batch_alter_table("evidence_files", copy_from=old, recreate="always") as batch:
        batch.drop_constraint(OLD, type_="unique")
        batch.create_unique_constraint(NEW, ["case_id", "session_id", "role", "sha256"])


def downgrade() -> None:
    new = _table(NEW, ("case_id", "session_id", "role", "sha256"))
    with op.batch_alter_table("evidence_files", copy_from=new, recreate="always") as batch:
        batch.drop_constraint(NEW, type_="unique")
        batch.create_unique_constraint(OLD, ["case_id", "sha256"])
