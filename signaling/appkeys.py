"""Every piece of application state, under a typed key."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from media.room import MediaServer
from recorder.auditlog import AuditLog
from recorder.clock import Clock
from recorder.store import EvidenceStore
from signaling.accounts import Accounts
from signaling.actions import ReviewActions
from signaling.bus import Bus
from signaling.cases import Cases
from signaling.catalog import Catalog
from signaling.evidence import CaseEvidence
from signaling.exports import Exports
from signaling.followups import Followups
from signaling.health import Health
from signaling.integrity import CaseIntegrity
from signaling.keys import NodeSecrets
from signaling.live import LiveHub
from signaling.reads import Reads
from signaling.retention import LegalHolds
from signaling.reviews import Reviews
from signaling.settings import Settings
from signaling.stills import Stills
from signaling.supervision_stats import Supervision
from signaling.time_limits import TimeLimits
from signaling.tokens import JoinTokens

SETTINGS = web.AppKey("settings", Settings)
CLOCK = web.AppKey("clock", Clock)
KEYS = web.AppKey("keys", NodeSecrets)
ENGINE = web.AppKey("engine", AsyncEngine)
READS = web.AppKey("reads", Reads)
HEALTH = web.AppKey("health", Health)
"""Set once the schema is migrated (until then /healthz answers 503)."""
AUDIT = web.AppKey("audit", AuditLog)
ACCOUNTS = web.AppKey("accounts", Accounts)
CATALOG = web.AppKey("catalog", Catalog)
CASES = web.AppKey("cases", Cases)
BUS = web.AppKey("bus", Bus)
REVIEWS = web.AppKey("reviews", Reviews)
MEDIA = web.AppKey("media", MediaServer)
TOKENS = web.AppKey("tokens", JoinTokens)
LIVE = web.AppKey("live", LiveHub)
EVIDENCE = web.AppKey("evidence", EvidenceStore)
ACTIONS = web.AppKey("actions", ReviewActions)
FOLLOWUPS = web.AppKey("followups", Followups)
CASE_EVIDENCE = web.AppKey("case_evidence", CaseEvidence)
STILLS = web.AppKey("stills", Stills)
EXPORTS = web.AppKey("exports", Exports)
INTEGRITY = web.AppKey("integrity", CaseIntegrity)
HOLDS = web.AppKey("holds", LegalHolds)
SUPERVISION = web.AppKey("supervision", Supervision)
TIME_LIMITS = web.AppKey("time_limits", TimeLimits)

PageRenderer = Callable[[web.Request, str, dict[str, Any], int], web.Response]
"""(request, template, values, status) → page; the app factory sets the pages' one."""
RENDER: web.AppKey[PageRenderer] = web.AppKey("render")
