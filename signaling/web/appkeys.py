"""Every piece of application state, under a typed key. The services' classes type the
keys for mypy only: at run time this module imports none of them."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from media.room import MediaServer
    from recorder.auditlog import AuditLog
    from recorder.clock import Clock
    from recorder.store import EvidenceStore
    from signaling.accounts.accounts import Accounts
    from signaling.cases.cases import Cases
    from signaling.cases.catalog import Catalog
    from signaling.custody.evidence import CaseEvidence
    from signaling.custody.exports import Exports
    from signaling.custody.integrity import CaseIntegrity
    from signaling.custody.retention import LegalHolds
    from signaling.node.health import Health
    from signaling.node.secrets import NodeSecrets
    from signaling.review.actions import ReviewActions
    from signaling.review.followups import Followups
    from signaling.review.join_tokens import JoinTokens
    from signaling.review.live_hub import LiveHub
    from signaling.review.sessions import Reviews
    from signaling.review.stills import Stills
    from signaling.settings import Settings
    from signaling.storage.bus import Bus
    from signaling.storage.reads import Reads
    from signaling.supervision.stats import Supervision
    from signaling.supervision.time_limits import TimeLimits

SERVICE_KEYS: dict[str, web.AppKey[Any]] = {}
"""The key of each field of signaling.node.services.Services, by field name: the app
factory puts every field under its key by a loop (tests/test_appkeys.py checks that
each field has a key of its type)."""


def _service(field: str) -> web.AppKey[Any]:
    """The key of the Services field ``field`` (typed by the constant it is assigned to)."""
    key: web.AppKey[Any] = web.AppKey(field)
    SERVICE_KEYS[field] = key
    return key


KEYS: web.AppKey[NodeSecrets] = _service("keys")
ENGINE: web.AppKey[AsyncEngine] = _service("engine")
READS: web.AppKey[Reads] = _service("reads")
AUDIT: web.AppKey[AuditLog] = _service("audit")
ACCOUNTS: web.AppKey[Accounts] = _service("accounts")
CATALOG: web.AppKey[Catalog] = _service("catalog")
CASES: web.AppKey[Cases] = _service("cases")
EVIDENCE: web.AppKey[EvidenceStore] = _service("evidence")

SETTINGS: web.AppKey[Settings] = web.AppKey("settings")
CLOCK: web.AppKey[Clock] = web.AppKey("clock")
HEALTH: web.AppKey[Health] = web.AppKey("health")
"""Set once the schema is migrated (until then /healthz answers 503)."""
BUS: web.AppKey[Bus] = web.AppKey("bus")
REVIEWS: web.AppKey[Reviews] = web.AppKey("reviews")
MEDIA: web.AppKey[MediaServer] = web.AppKey("media")
TOKENS: web.AppKey[JoinTokens] = web.AppKey("tokens")
LIVE: web.AppKey[LiveHub] = web.AppKey("live")
ACTIONS: web.AppKey[ReviewActions] = web.AppKey("actions")
FOLLOWUPS: web.AppKey[Followups] = web.AppKey("followups")
CASE_EVIDENCE: web.AppKey[CaseEvidence] = web.AppKey("case_evidence")
STILLS: web.AppKey[Stills] = web.AppKey("stills")
EXPORTS: web.AppKey[Exports] = web.AppKey("exports")
INTEGRITY: web.AppKey[CaseIntegrity] = web.AppKey("integrity")
HOLDS: web.AppKey[LegalHolds] = web.AppKey("holds")
SUPERVISION: web.AppKey[Supervision] = web.AppKey("supervision")
TIME_LIMITS: web.AppKey[TimeLimits] = web.AppKey("time_limits")

PageRenderer = Callable[[web.Request, str, dict[str, Any], int], web.Response]
"""(request, template, values, status) → page; the app factory sets the pages' one."""
RENDER: web.AppKey[PageRenderer] = web.AppKey("render")
