"""Table definitions (SQLAlchemy Core) used by the store's queries.

The schema itself is created and changed only by the migrations in
``signaling/storage/migrations/versions``; a test checks the two agree.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    func,
    text,
)

# the evidence plane owns the log and evidence tables; the control plane adds its own
from recorder.schema import audit_events as audit_events
from recorder.schema import evidence_files as evidence_files
from recorder.schema import metadata

roles = Table(
    "roles",
    metadata,
    Column("code", String(16), primary_key=True),
    Column("name", String(32), nullable=False),
)

jurisdictions = Table(
    "jurisdictions",
    metadata,
    Column("code", String(12), primary_key=True),  # 行政区划代码, e.g. 450202
    Column("name", String(64), nullable=False),
    Column("parent_code", String(12), ForeignKey("jurisdictions.code"), nullable=True),
)

outlets = Table(
    "outlets",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("code", String(32), nullable=False, unique=True),
    Column("name", String(128), nullable=False),
    Column("jurisdiction_code", String(12), ForeignKey("jurisdictions.code"), nullable=False),
)

departments = Table(
    "departments",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("code", String(32), nullable=False, unique=True),
    Column("name", String(128), nullable=False),
    Column("jurisdiction_code", String(12), ForeignKey("jurisdictions.code"), nullable=False),
)

users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("username", String(32), nullable=False, unique=True),
    Column("display_name", String(64), nullable=False),
    Column("password_hash", String(255), nullable=False),
    Column("role", String(16), ForeignKey("roles.code"), nullable=False),
    Column("outlet_id", Integer, ForeignKey("outlets.id"), nullable=True),
    Column("department_id", Integer, ForeignKey("departments.id"), nullable=True),
    Column("jurisdiction_code", String(12), ForeignKey("jurisdictions.code"), nullable=True),
    Column("must_change_password", Boolean, nullable=False),
    Column("disabled", Boolean, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

login_failures = Table(
    "login_failures",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("username", String(64), nullable=False),  # as typed: known or not
    Column("address", String(64), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Index("login_failures_by_name", "username", "at"),
    Index("login_failures_by_address", "address", "at"),
)

id_searches = Table(  # searches by ID number, counted per user (signaling/cases/id_search.py)
    "id_searches",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Index("id_searches_by_user", "user_id", "at"),
)

login_sessions = Table(
    "login_sessions",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("address", String(64), nullable=False),
)

matters = Table(
    "matters",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("code", String(64), nullable=False, unique=True),
    Column("name", String(128), nullable=False),
    Column("department_id", Integer, ForeignKey("departments.id"), nullable=False),
    Column("time_limit_days", Integer, nullable=False),  # 办理时限, working days
    Column("mode", String(16), nullable=False),  # remote_approval | local_approval
    Column("retention_years", Integer, nullable=False),
    Column("active", Boolean, nullable=False),
)

matter_materials = Table(
    "matter_materials",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("matter_id", Integer, ForeignKey("matters.id"), nullable=False),
    Column("position", Integer, nullable=False),
    Column("name", String(128), nullable=False),
    Column("required", Boolean, nullable=False),
    UniqueConstraint("matter_id", "position"),
)

counters = Table(
    "counters",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("value", Integer, nullable=False),
)

cases = Table(
    "cases",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("case_no", String(32), nullable=False, unique=True),
    Column("matter_id", Integer, ForeignKey("matters.id"), nullable=False),
    Column("outlet_id", Integer, ForeignKey("outlets.id"), nullable=False),
    Column("department_id", Integer, ForeignKey("departments.id"), nullable=False),
    Column("clerk_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("applicant_name", String(64), nullable=False),
    Column("id_number_digest", String(64), nullable=False, index=True),  # keyed HMAC
    Column("id_number_masked", String(18), nullable=False),
    Column("phone", String(20), nullable=False),
    Column("notes", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # when the matter's 办理时限 runs out, fixed at acceptance (signaling/workdays.py);
    # nullable only because migration 0015 added it (it fills every row)
    Column("due_at", DateTime(timezone=True), nullable=True),
    # the matter's 保存期限 in years, fixed at acceptance (signaling/custody/retention.py);
    # nullable only because migration 0018 added it (it fills every row)
    Column("retention_years", Integer, nullable=True),
    Index("cases_by_created", "created_at"),
    Index("cases_by_due", "due_at"),
)

review_sessions = Table(
    "review_sessions",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("case_id", Integer, ForeignKey("cases.id"), nullable=False),
    Column("department_id", Integer, ForeignKey("departments.id"), nullable=False),
    Column("state", String(16), nullable=False),
    Column("created_by", Integer, ForeignKey("users.id"), nullable=False),
    Column("accepted_by", Integer, ForeignKey("users.id"), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("accepted_at", DateTime(timezone=True), nullable=True),
    Column("ended_at", DateTime(timezone=True), nullable=True),
    Column("end_reason", String(32), nullable=True),
    Column("interrupted", Boolean, nullable=False, server_default=false()),
    Column(
        "queued_at", DateTime(timezone=True), nullable=True
    ),  # back in the queue; null: created_at
    Index(
        "one_open_session_per_case",
        "case_id",
        unique=True,
        sqlite_where=text("state IN ('waiting', 'live')"),
        postgresql_where=text("state IN ('waiting', 'live')"),
    ),
    Index("review_sessions_by_case", "case_id"),
)
QUEUED_AT = func.coalesce(review_sessions.c.queued_at, review_sessions.c.created_at)
"""When a session last entered its queue (its start, or its requeue)."""


session_invitations = Table(
    "session_invitations",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("session_id", String(36), ForeignKey("review_sessions.id"), nullable=False),
    Column("department_id", Integer, ForeignKey("departments.id"), nullable=False),
    Column("approver_id", Integer, ForeignKey("users.id"), nullable=True),  # a named approver
    Column("invited_by", Integer, ForeignKey("users.id"), nullable=False),
    Column("state", String(16), nullable=False),  # pending | accepted | withdrawn
    Column("accepted_by", Integer, ForeignKey("users.id"), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)


# -- review actions: consent, material marks, decision, rating and its follow-up ----------

review_consents = Table(
    "review_consents",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("session_id", String(36), ForeignKey("review_sessions.id"), nullable=False, unique=True),
    Column("version", String(16), nullable=False),  # of the consent text shown
    Column("text_sha256", String(64), nullable=False),
    Column("recorded_by", Integer, ForeignKey("users.id"), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
)

material_marks = Table(
    "material_marks",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("case_id", Integer, ForeignKey("cases.id"), nullable=False, index=True),
    Column("session_id", String(36), ForeignKey("review_sessions.id"), nullable=False),
    # no foreign key: a catalogue import replaces matter_materials, marks stay as made
    Column("material_id", Integer, nullable=False),
    Column("material_name", String(128), nullable=False),
    Column("mark", String(16), nullable=False),  # complete | missing | unclear
    Column("comment", Text, nullable=False),
    Column("marked_by", Integer, ForeignKey("users.id"), nullable=False),
    Column("marked_at", DateTime(timezone=True), nullable=False),
)

case_decisions = Table(
    "case_decisions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("case_id", Integer, ForeignKey("cases.id"), nullable=False, unique=True),
    Column("session_id", String(36), ForeignKey("review_sessions.id"), nullable=False),
    Column("outcome", String(16), nullable=False),  # approve | reject | supplement
    Column("reason", Text, nullable=False),
    Column("decided_by", Integer, ForeignKey("users.id"), nullable=False),
    Column("decided_at", DateTime(timezone=True), nullable=False),
)

session_ratings = Table(
    "session_ratings",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("session_id", String(36), ForeignKey("review_sessions.id"), nullable=False, unique=True),
    Column("case_id", Integer, ForeignKey("cases.id"), nullable=False, index=True),
    Column("score", String(24), nullable=False),  # very_satisfied … very_dissatisfied
    Column("comment", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("rated_by", Integer, ForeignKey("users.id"), nullable=False),
    Column("rated_at", DateTime(timezone=True), nullable=False),
)

followups = Table(
    "followups",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("case_id", Integer, ForeignKey("cases.id"), nullable=False, index=True),
    Column("rating_id", Integer, ForeignKey("session_ratings.id"), nullable=False, unique=True),
    Column("stage", String(16), nullable=False),  # verify (回访核实) → rectify (整改)
    Column("state", String(16), nullable=False),  # open | closed
    Column("due_date", Date, nullable=False),
    Column("opened_at", DateTime(timezone=True), nullable=False),
)
"""As opened (append-only, like every evidence table): the steps taken since are rows of
``followup_steps``; signaling/review/followups.py says where a follow-up stands."""

followup_steps = Table(
    "followup_steps",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("followup_id", Integer, ForeignKey("followups.id"), nullable=False),
    Column("stage", String(16), nullable=False),  # the stage this step completes
    Column("upheld", Boolean, nullable=True),  # verify: the complaint holds (→ rectify)
    Column("note", Text, nullable=False),
    Column("next_due_date", Date, nullable=True),  # verify upheld: rectify's due date
    Column("taken_by", Integer, ForeignKey("users.id"), nullable=False),
    Column("taken_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("followup_id", "stage"),  # each stage done once
)

legal_holds = Table(  # append-only history (migration 0016): signaling/custody/retention.py
    "legal_holds",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("case_id", Integer, ForeignKey("cases.id"), nullable=False, index=True),
    Column("action", String(8), nullable=False),  # placed | lifted
    Column("reason", Text, nullable=False),
    Column("actor_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
)
