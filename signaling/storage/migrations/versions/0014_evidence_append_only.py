"""The evidence record is append-only like the log: stored files, consents, material
marks, decisions, ratings and follow-ups are never changed or removed by any code path,
and the database now refuses it.

Revision ID: 0014
"""

from __future__ import annotations

from alembic import op

from signaling.storage.migrations.append_only_v1 import allow_changes, refuse_changes

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

EVIDENCE_TABLES = (
    "evidence_files",
    "review_consents",
    "material_marks",
    "case_decisions",
    "session_ratings",
    "followups",
)


def upgrade() -> None:
    refuse_changes(op.get_bind().dialect.name, EVIDENCE_TABLES)


def downgrade() -> None:
    allow_changes(op.get_bind().dialect.name, EVIDENCE_TABLES)
