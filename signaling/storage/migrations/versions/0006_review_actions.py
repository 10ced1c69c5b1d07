"""Review actions: the applicant's consent, material marks, the case's decision, the
好差评 rating and the follow-up a bad rating opens.

Revision ID: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def _session(unique: bool = False) -> sa.Column[str]:
    return sa.Column(
        "session_id",
        sa.String(36),
        sa.ForeignKey("review_sessions.id"),
        nullable=False,
        unique=unique,
    )


def _user(name: str) -> sa.Column[int]:
    return sa.Column(name, sa.Integer, sa.ForeignKey("users.id"), nullable=False)


def _case(unique: bool = False) -> sa.Column[int]:
    return sa.Column(
        "case_id", sa.Integer, sa.ForeignKey("cases.id"), nullable=False, unique=unique
    )


def _at(name: str) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False)


def upgrade() -> None:
    op.create_table(
        "review_consents",
        sa.Column("id", sa.Integer, primary_key=True),
        _session(unique=True),
        sa.Column("version", sa.String(16), nullable=False),
        sa.Column("text_sha256", sa.String(64), nullable=False),
        _user("recorded_by"),
        _at("recorded_at"),
    )
    op.create_table(
        "material_marks",
        sa.Column("id", sa.Integer, primary_key=True),
        _case(),
        _session(),
        sa.Column("material_id", sa.Integer, nullable=False),
        sa.Column("material_name", sa.String(128), nullable=False),
        sa.Column("mark", sa.String(16), nullable=False),
        sa.Column("comment", sa.Text, nullable=False),
        _user("marked_by"),
        _at("marked_at"),
    )
    op.create_index("ix_material_marks_case_id", "material_marks", ["case_id"])
    op.create_table(
        "case_decisions",
        sa.Column("id", sa.Integer, primary_key=True),
        _case(unique=True),
        _session(),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        _user("decided_by"),
        _at("decided_at"),
    )
    op.create_table(
        "session_ratings",
        sa.Column("id", sa.Integer, primary_key=True),
        _session(unique=True),
        _case(),
        sa.Column("score", sa.String(24), nullable=False),
        sa.Column("comment", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        _user("rated_by"),
        _at("rated_at"),
    )
    op.create_index("ix_session_ratings_case_id", "session_ratings", ["case_id"])
    op.create_table(
        "followups",
        sa.Column("id", sa.Integer, primary_key=True),
        _case(),
        sa.Column(
            "rating_id",
            sa.Integer,
            sa.ForeignKey("session_ratings.id"),
            nullable=False,
            unique=True,
        ),
        sa.Column("stage", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("due_date", sa.Date, nullable=False),
        _at("opened_at"),
    )
    op.create_index("ix_followups_case_id", "followups", ["case_id"])


def downgrade() -> None:
    op.drop_index("ix_followups_case_id", "followups")
    op.drop_table("followups")
    op.drop_index("ix_session_ratings_case_id", "session_ratings")
    op.drop_table("session_ratings")
    op.drop_table("case_decisions")
    op.drop_index("ix_material_marks_case_id", "material_marks")
    op.drop_table("material_marks")
    op.drop_table("review_consents")
