"""Tables the evidence plane owns: the audit log and the evidence files.

They share one ``MetaData`` with the control plane's tables (signaling/tables.py adds
its own to it); the recorder refers to those only by name in foreign keys.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
)

metadata = MetaData()

audit_events = Table(
    "audit_events",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("chain", String(32), nullable=False),  # "case:<case_no>" or "system"
    Column("seq", Integer, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("actor", String(32), nullable=True),
    Column("detail", JSON, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    UniqueConstraint("chain", "seq"),
)


evidence_files = Table(
    "evidence_files",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("sha256", String(64), nullable=False),
    Column("case_id", Integer, ForeignKey("cases.id"), nullable=False),
    Column("session_id", String(36), ForeignKey("review_sessions.id"), nullable=True),
    Column("role", String(16), nullable=False),  # capture | playable | still | snapshot
    Column("track", String(96), nullable=True),  # one published track instance (recordings)
    Column("participant", String(32), nullable=True),  # username of who published/took it
    Column("source", String(16), nullable=True),  # face | document | audio
    Column("bytes", Integer, nullable=False),
    Column("seconds", Float, nullable=True),
    Column("derived_from", String(64), nullable=True),  # a playable file's capture chunk
    Column("meta", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("case_id", "sha256"),
    Index("evidence_files_by_session", "session_id"),
)
