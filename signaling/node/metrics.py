"""``GET /metrics`` for Prometheus: what this node and the service are doing now.

Nothing is counted per packet for it: at scrape time a collector reads the counters
the forwarder, the recorder and the login throttle keep anyway, and a few aggregate
queries on the database (queue, log, checkpoints, evidence, recent login failures).

Access (settings): ``metrics_token`` (``Authorization: Bearer <token>``) and/or
``metrics_addresses`` (client networks); both must hold when both are set. With
neither set the route answers 404, as if it did not exist.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hmac
import ipaddress
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from media.candidates import parse_networks
from recorder.clock import as_utc
from recorder.schema import audit_events, evidence_files, log_checkpoints
from signaling.review.live_hub import LiveHub
from signaling.review.sessions import OPEN_STATES
from signaling.settings import Settings
from signaling.storage.tables import QUEUED_AT, departments, login_failures, review_sessions
from signaling.web.access import public
from signaling.web.appkeys import ACCOUNTS, CLOCK, ENGINE, LIVE, SETTINGS

routes = web.RouteTableDef()

RECORDING_EVENTS = (
    "track_started",
    "track_ended",
    "chunk_closed",
    "chunk_recovered",
    "recording_gap",
    "recording_failed",
    "playable_derived",
    "conversion_failed",
)
EVIDENCE_ROLES = ("capture", "playable", "still", "snapshot")


@dataclass
class StoredFigures:
    """What the database says now (all nodes)."""

    sessions: dict[str, int] = field(default_factory=dict)
    queue: dict[str, tuple[int, float]] = field(default_factory=dict)
    """Department code → (waiting sessions, seconds the oldest has waited)."""
    log_entries: int = 0
    checkpoint_tree_size: int = 0
    checkpoint_age: float | None = None
    evidence_bytes: dict[str, int] = field(default_factory=dict)
    recent_login_failures: int = 0
    database_bytes: int | None = None


async def read_database(engine: AsyncEngine, settings: Settings, now: dt.datetime) -> StoredFigures:
    found = StoredFigures()
    waiting_since = func.min(QUEUED_AT)
    window = now - dt.timedelta(minutes=settings.login_window_minutes)
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(review_sessions.c.state, func.count())
            .where(review_sessions.c.state.in_(OPEN_STATES))
            .group_by(review_sessions.c.state)
        )
        found.sessions = {state: int(n) for state, n in rows}
        rows = await conn.execute(
            select(departments.c.code, func.count(), waiting_since)
            .join(departments, departments.c.id == review_sessions.c.department_id)
            .where(review_sessions.c.state == "waiting")
            .group_by(departments.c.code)
        )
        found.queue = {
            code: (int(n), max(0.0, (now - as_utc(since)).total_seconds()))
            for code, n, since in rows
        }
        last_index = await conn.scalar(select(func.max(audit_events.c.log_index)))
        found.log_entries = 0 if last_index is None else int(last_index) + 1
        checkpoint = (
            await conn.execute(
                select(log_checkpoints.c.tree_size, log_checkpoints.c.time)
                .order_by(log_checkpoints.c.id.desc())
                .limit(1)
            )
        ).first()
        if checkpoint is not None:
            found.checkpoint_tree_size = int(checkpoint.tree_size)
            found.checkpoint_age = (now - as_utc(checkpoint.time)).total_seconds()
        rows = await conn.execute(
            select(evidence_files.c.role, func.sum(evidence_files.c.bytes)).group_by(
                evidence_files.c.role
            )
        )
        found.evidence_bytes = {role: int(total or 0) for role, total in rows}
        found.recent_login_failures = int(
            await conn.scalar(select(func.count()).where(login_failures.c.at > window)) or 0
        )
    if settings.sqlite_path is not None:
        found.database_bytes = await asyncio.to_thread(_database_bytes, settings.sqlite_path)
    return found


def _database_bytes(path: Path) -> int:
    """The SQLite file with its write-ahead log."""
    total = 0
    for part in (path, path.with_name(path.name + "-wal")):
        try:
            total += part.stat().st_size
        except FileNotFoundError:
            continue
    return total


def _gauge(name: str, doc: str, value: float, labels: dict[str, str] | None = None) -> Metric:
    family = GaugeMetricFamily(name, doc, labels=list(labels or {}))
    family.add_metric(list((labels or {}).values()), value)
    return family


class NodeCollector(Collector):
    """Reads the live counters when collected; the database figures were read just
    before (asynchronously) for this scrape."""

    def __init__(self, hub: LiveHub, login_failures_total: int, stored: StoredFigures):
        self._hub = hub
        self._login_failures = login_failures_total
        self._stored = stored

    def collect(self) -> Iterator[Metric]:
        yield from self._service()
        yield from self._media()
        yield from self._recording()
        yield from self._log()

    def _service(self) -> Iterator[Metric]:
        stored = self._stored
        sessions = GaugeMetricFamily(
            "coreview_sessions", "Open review sessions (all nodes), by state", labels=["state"]
        )
        for state in OPEN_STATES:
            sessions.add_metric([state], stored.sessions.get(state, 0))
        yield sessions
        queue = GaugeMetricFamily(
            "coreview_queue_length",
            "Sessions waiting in a department's queue",
            labels=["department"],
        )
        oldest = GaugeMetricFamily(
            "coreview_queue_oldest_wait_seconds",
            "How long the oldest waiting session of a department's queue has waited",
            labels=["department"],
        )
        for code, (length, waited) in sorted(stored.queue.items()):
            queue.add_metric([code], length)
            oldest.add_metric([code], waited)
        yield queue
        yield oldest
        yield _gauge(
            "coreview_node_live_sessions",
            "Live sessions held by this node",
            len(self._hub.sessions),
        )
        by_role: Counter[tuple[str, str]] = Counter(
            (p.grant.role, p.state)
            for session in tuple(self._hub.sessions.values())
            for p in tuple(session.participants.values())
        )
        participants = GaugeMetricFamily(
            "coreview_participants",
            "Participants of this node's live sessions, by role and state",
            labels=["role", "state"],
        )
        for (role, state), n in sorted(by_role.items()):
            participants.add_metric([role, state], n)
        yield participants
        failures = CounterMetricFamily(
            "coreview_login_failures", "Failed logins on this node since start"
        )
        failures.add_metric([], self._login_failures)
        yield failures
        yield _gauge(
            "coreview_login_failures_recent",
            "Failed logins within the throttle window (all nodes)",
            stored.recent_login_failures,
        )

    def _media(self) -> Iterator[Metric]:
        totals = self._hub.media.totals()
        yield _gauge("coreview_media_rooms", "Media rooms open on this node", totals.rooms)
        yield _gauge("coreview_media_peers", "Peer connections open on this node", totals.peers)
        yield _gauge(
            "coreview_media_published_tracks", "Tracks published now", totals.published_tracks
        )
        for name, doc, value in (
            ("received_packets", "RTP packets received from publishers", totals.received_packets),
            ("forwarded_packets", "RTP packets forwarded to subscribers", totals.forwarded_packets),
            (
                "forwarded_bytes",
                "Payload bytes forwarded to subscribers (bitrate: 8 × rate())",
                totals.forwarded_bytes,
            ),
            ("ingest_errors", "Received packets whose handling failed", totals.ingest_errors),
        ):
            family = CounterMetricFamily(f"coreview_media_{name}", doc)
            family.add_metric([], value)
            yield family

    def _recording(self) -> Iterator[Metric]:
        recorder = self._hub.recorder
        events = recorder.events if recorder is not None else Counter[str]()
        chunks = CounterMetricFamily(
            "coreview_recording_chunks", "Capture chunks closed and filed (with recovered ones)"
        )
        chunks.add_metric([], events["chunk_closed"] + events["chunk_recovered"])
        yield chunks
        written = CounterMetricFamily(
            "coreview_recording_bytes", "Bytes of capture chunks filed by this node"
        )
        written.add_metric([], recorder.chunk_bytes if recorder is not None else 0)
        yield written
        gaps = CounterMetricFamily(
            "coreview_recording_gaps", "Recording gaps logged (a track reconnected)"
        )
        gaps.add_metric([], events["recording_gap"])
        yield gaps
        by_kind = CounterMetricFamily(
            "coreview_recording_events", "Recording events logged by this node", labels=["kind"]
        )
        for kind in RECORDING_EVENTS:
            by_kind.add_metric([kind], events[kind])
        yield by_kind
        yield _gauge(
            "coreview_conversion_backlog",
            "Chunks waiting for or in conversion to a playable file",
            recorder.converting if recorder is not None else 0,
        )

    def _log(self) -> Iterator[Metric]:
        stored = self._stored
        yield _gauge("coreview_log_entries", "Events in the audit log", stored.log_entries)
        yield _gauge(
            "coreview_log_unsigned_entries",
            "Events not yet covered by a signed checkpoint",
            stored.log_entries - stored.checkpoint_tree_size,
        )
        if stored.checkpoint_age is not None:
            yield _gauge(
                "coreview_log_checkpoint_age_seconds",
                "Seconds since the latest signed log checkpoint",
                stored.checkpoint_age,
            )
        evidence = GaugeMetricFamily(
            "coreview_evidence_bytes", "Bytes of evidence files on record, by role", labels=["role"]
        )
        for role in EVIDENCE_ROLES:
            evidence.add_metric([role], stored.evidence_bytes.get(role, 0))
        yield evidence
        if stored.database_bytes is not None:
            yield _gauge(
                "coreview_database_bytes",
                "Size of the SQLite database with its write-ahead log",
                stored.database_bytes,
            )


def refusal(request: web.Request, settings: Settings) -> web.Response | None:
    """The answer to a caller that may not read the metrics, or None."""
    if not settings.metrics_token and not settings.metrics_addresses:
        return web.Response(status=404, text="404: Not Found\n")
    if settings.metrics_addresses:
        try:
            address = ipaddress.ip_address(request.remote or "")
        except ValueError:
            address = None
        networks = parse_networks(settings.metrics_addresses)
        if address is None or not any(address in network for network in networks):
            return web.Response(status=403, text="403: address not allowed\n")
    if settings.metrics_token:
        scheme, _, sent = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            sent.strip().encode(), settings.metrics_token.encode()
        ):
            return web.Response(
                status=401,
                text="401: bearer token required\n",
                headers={"WWW-Authenticate": 'Bearer realm="coreview-metrics"'},
            )
    return None


@routes.get("/metrics")
@public(page=False)  # not a login session's: its own token or address list (above)
async def metrics(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    refused = refusal(request, settings)
    if refused is not None:
        return refused
    stored = await read_database(request.app[ENGINE], settings, request.app[CLOCK].now())
    registry = CollectorRegistry(auto_describe=False)
    registry.register(
        NodeCollector(request.app[LIVE], request.app[ACCOUNTS].throttle.failures, stored)
    )
    ProcessCollector(registry=registry)
    body = generate_latest(registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
