"""Legal holds (法律保全): each placing and lifting of a hold on a case, with its reason,
as an append-only history; a case is on hold while its latest row is ``placed``.

Revision ID: 0016
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from signaling.storage.migrations.append_only_v1 import allow_changes, refuse_changes

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "legal_holds",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("case_id", sa.Integer, sa.ForeignKey("cases.id"), nullable=False, index=True),
        sa.Column("action", sa.String(8), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("actor_id", sa.Integer, sa.ForeignKey("users.id"), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    refuse_changes(op.get_bind().dialect.name, ("legal_holds",))


def downgrade() -> None:
    allow_changes(op.get_bind().dialect.name, ("legal_holds",))
    op.drop_table("legal_holds")
