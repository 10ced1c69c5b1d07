"""Tables the evidence plane owns: the audit log, its checkpoints and signing keys, and
the evidence files.

They share one ``MetaData`` with the control plane's tables (signaling/storage/tables.py adds
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
    # Position in the global log: gapless from 0, the event's leaf index in the Merkle tree.
    Column("log_index", Integer, primary_key=True, autoincrement=False),
    Column("chain", String(64), nullable=False),  # "case:<case_no>" or "system"
    Column("case_seq", Integer, nullable=False),  # position in its chain, from 1
    Column("at", DateTime(timezone=True), nullable=False),
    Column("kind", String(64), nullable=False),
    Column("actor", String(32), nullable=True),
    Column("detail", JSON, nullable=False),
    Column("prev_hash", String(64), nullable=False),  # hash of the chain's previous event
    Column("hash", String(64), nullable=False),  # RFC 6962 leaf hash of the entry
    UniqueConstraint("chain", "case_seq"),
    Index("audit_events_by_kind", "kind", "chain"),  # e.g. which cases have a recording gap
)

log_checkpoints = Table(
    "log_checkpoints",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("tree_size", Integer, nullable=False),
    Column("root", String(64), nullable=False),
    Column("time", DateTime(timezone=True), nullable=False),
    Column("key_id", String(64), nullable=False),
    Column("signature", String(128), nullable=False),  # Ed25519, hex
)

log_keys = Table(
    "log_keys",
    metadata,
    Column("key_id", String(64), primary_key=True),  # hex SHA-256 of the raw public key
    Column("public_key", String(64), nullable=False),  # raw Ed25519 public key, hex
    Column("valid_from", DateTime(timezone=True), nullable=False),  # until the next key's
)

APPEND_ONLY_TABLES = ("audit_events", "log_checkpoints", "log_keys")
"""The database refuses UPDATE and DELETE on these (triggers of migration 0005)."""


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
    # the same bytes may be filed again in another session, or in another role
    UniqueConstraint(
        "case_id", "session_id", "role", "sha256", name="evidence_files_case_session_role_sha256"
    ),
    Index("evidence_files_by_session", "session_id"),
)
