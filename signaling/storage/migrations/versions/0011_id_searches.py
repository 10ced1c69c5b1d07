"""Searches by ID number counted per user (every node sees the same count).

Revision ID: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "id_searches",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id"), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("id_searches_by_user", "id_searches", ["user_id", "at"])


def downgrade() -> None:
    op.drop_index("id_searches_by_user", "id_searches")
    op.drop_table("id_searches")
