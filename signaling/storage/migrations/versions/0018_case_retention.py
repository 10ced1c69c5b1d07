"""Each case's retention period (保存期限, years) fixed at acceptance, so a later change
of its matter's period neither shortens nor lengthens how long its media are kept.
Existing cases take their matter's current period.

Revision ID: 0018
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("cases") as batch:
        batch.add_column(sa.Column("retention_years", sa.Integer(), nullable=True))
    cases = sa.table("cases", sa.column("matter_id"), sa.column("retention_years"))
    matters = sa.table("matters", sa.column("id"), sa.column("retention_years"))
    period = (
        sa.select(matters.c.retention_years)
        .where(matters.c.id == cases.c.matter_id)
        .scalar_subquery()
    )
    op.get_bind().execute(sa.update(cases).values(retention_years=period))


def downgrade() -> None:
    with op.batch_alter_table("cases") as batch:
        batch.drop_column("retention_years")
