"""The steps of a bad rating's follow-up (回访核实, 整改), append-only: a follow-up row stays
as opened; where it stands is its steps.

Revision ID: 0017
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from signaling.storage.migrations.append_only_v1 import allow_changes, refuse_changes

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


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
