"""At most one open (waiting or live) review session per case, enforced by the database.

Revision ID: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

OPEN = sa.text("state IN ('waiting', 'live')")


def upgrade() -> None:
    op.create_index(
        "one_open_session_per_case",
        "review_sessions",
        ["case_id"],
        unique=True,
        sqlite_where=OPEN,
        postgresql_where=OPEN,
    )


def downgrade() -> None:
    op.drop_index("one_open_session_per_case", "review_sessions")
