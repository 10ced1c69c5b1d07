"""Evidence files: capture chunks, playable files, stills and snapshots of each case.

Revision ID: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "evidence_files",
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
        sa.UniqueConstraint("case_id", "sha256"),
    )
    op.create_index("evidence_files_by_session", "evidence_files", ["session_id"])


def downgrade() -> None:
    op.drop_index("evidence_files_by_session", "evidence_files")
    op.drop_table("evidence_files")
