"""The audit log becomes one append-only Merkle log: global ``log_index``, per-chain
``case_seq``, RFC 8785 entries hashed as RFC 6962 leaves; signed checkpoints and the
key registry; the database refuses UPDATE and DELETE on all three.

Existing events are re-sealed in the new form, in their order, and a ``log_resealed``
event records that. There is no downgrade: the old form cannot hold the new hashes.

Revision ID: 0005
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

import rfc8785
import sqlalchemy as sa
from alembic import op

from signaling.storage.migrations.append_only_v1 import refuse_changes

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

APPEND_ONLY = ("audit_events", "log_checkpoints", "log_keys")
GENESIS = "0" * 64
SYSTEM_CHAIN = "system"


def seal(
    log_index: int,
    chain: str,
    case_seq: int,
    prev_hash: str,
    at: dt.datetime,
    kind: str,
    actor: str | None,
    detail: dict[str, Any],
) -> dict[str, Any]:
    """An event sealed in the log's form of this revision (recorder/auditlog.py's ``seal``,
    frozen): its entry as RFC 8785 JSON, hashed as an RFC 6962 leaf; ``detail`` read back
    from that JSON."""
    aware = at if at.tzinfo else at.replace(tzinfo=dt.UTC)
    entry: dict[str, Any] = {
        "log_index": log_index,
        "chain": chain,
        "case_seq": case_seq,
        "prev_hash": prev_hash,
        "at": aware.astimezone(dt.UTC).isoformat(),
        "kind": kind,
        "actor": actor,
        "detail": detail,
    }
    raw = rfc8785.dumps(entry)
    normal = json.loads(raw)["detail"]
    return {**entry, "detail": normal, "hash": hashlib.sha256(b"\x00" + raw).hexdigest()}


def _at(name: str) -> sa.Column[dt.datetime]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False)


def _reseal(rows: list[Any]) -> list[dict[str, Any]]:
    heads: dict[str, tuple[int, str]] = {}
    sealed: list[dict[str, Any]] = []

    def add(chain: str, at: dt.datetime, kind: str, actor: str | None, detail: Any) -> None:
        seq, prev = heads.get(chain, (0, GENESIS))
        event = seal(len(sealed), chain, seq + 1, prev, at, kind, actor, detail)
        heads[chain] = (seq + 1, event["hash"])
        sealed.append({**event, "at": at})

    for row in rows:
        at = row.at if row.at.tzinfo else row.at.replace(tzinfo=dt.UTC)
        add(row.chain, at, row.kind, row.actor, row.detail)
    if rows:
        add(SYSTEM_CHAIN, dt.datetime.now(dt.UTC), "log_resealed", None, {"events": len(rows)})
    return sealed


def upgrade() -> None:
    bind = op.get_bind()
    old = sa.table(
        "audit_events",
        sa.column("id", sa.Integer),
        sa.column("chain", sa.String),
        sa.column("at", sa.DateTime(timezone=True)),
        sa.column("kind", sa.String),
        sa.column("actor", sa.String),
        sa.column("detail", sa.JSON),
    )
    rows = list(bind.execute(sa.select(old).order_by(old.c.id)))
    op.drop_table("audit_events")
    events = op.create_table(
        "audit_events",
        sa.Column("log_index", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("chain", sa.String(64), nullable=False),
        sa.Column("case_seq", sa.Integer, nullable=False),
        _at("at"),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("actor", sa.String(32), nullable=True),
        sa.Column("detail", sa.JSON, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.UniqueConstraint("chain", "case_seq"),
    )
    sealed = _reseal(rows)
    if sealed:
        op.bulk_insert(events, sealed)
    op.create_table(
        "log_checkpoints",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("tree_size", sa.Integer, nullable=False),
        sa.Column("root", sa.String(64), nullable=False),
        _at("time"),
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("signature", sa.String(128), nullable=False),
    )
    op.create_table(
        "log_keys",
        sa.Column("key_id", sa.String(64), primary_key=True),
        sa.Column("public_key", sa.String(64), nullable=False),
        _at("valid_from"),
    )
    refuse_changes(bind.dialect.name, APPEND_ONLY)


def downgrade() -> None:
    raise NotImplementedError("0005 re-seals the audit log; the old form cannot hold it")
