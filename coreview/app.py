"""The application factory."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp_jinja2
import jinja2
from aiohttp import web

from media.forwarder import open_tracks
from media.room import MediaConfig, MediaServer
from recorder.clock import Clock, SystemClock
from signaling.accounts import account_routes
from signaling.cases import case_routes, catalog_routes
from signaling.cases.catalog import CATALOG_TOPIC, Catalog
from signaling.custody import (
    custody_routes,
    evidence_routes,
    export_routes,
    log_routes,
    playback_routes,
)
from signaling.custody.evidence import CaseEvidence
from signaling.custody.exports import Exporter, Exports
from signaling.custody.integrity import CaseIntegrity
from signaling.custody.retention import LegalHolds
from signaling.node import health_routes, metrics
from signaling.node.health import Health
from signaling.node.services import open_services
from signaling.review import action_routes, session_routes, still_routes
from signaling.review.actions import ReviewActions
from signaling.review.followups import Followups
from signaling.review.join_tokens import JoinTokens
from signaling.review.live_hub import LiveHub
from signaling.review.recordings import open_recorder
from signaling.review.run_marker import RunMarker, read_last_run
from signaling.review.sessions import Reviews
from signaling.review.stills import Stills
from signaling.settings import Settings
from signaling.storage.bus import Bus, InProcessBus, RedisBus
from signaling.supervision import live_routes, stats_routes
from signaling.supervision.stats import Supervision
from signaling.supervision.time_limits import TimeLimits
from signaling.web import pacing
from signaling.web.access import access_middleware
from signaling.web.appkeys import (
    ACCOUNTS,
    ACTIONS,
    AUDIT,
    BUS,
    CASE_EVIDENCE,
    CASES,
    CATALOG,
    CLOCK,
    ENGINE,
    EVIDENCE,
    EXPORTS,
    FOLLOWUPS,
    HEALTH,
    HOLDS,
    INTEGRITY,
    KEYS,
    LIVE,
    MEDIA,
    RENDER,
    REVIEWS,
    SERVICE_KEYS,
    SETTINGS,
    STILLS,
    SUPERVISION,
    TIME_LIMITS,
    TOKENS,
)
from signaling.web.middleware import error_middleware, security_headers
from webui import pages, playback_pages, review_pages, search_pages, supervision_pages

logger = logging.getLogger(__name__)

STATIC_DIR = Path(pages.__file__).parent / "static"
MAX_REQUEST_BYTES = 2 * 1024 * 1024


async def _services(app: web.Application) -> AsyncIterator[None]:
    async with open_services(app[SETTINGS], app[CLOCK]) as services:
        for field in dataclasses.fields(services):
            app[SERVICE_KEYS[field.name]] = getattr(services, field.name)
        app[INTEGRITY] = CaseIntegrity(services.engine, services.audit, services.evidence)
        app[HOLDS] = LegalHolds(services.engine, app[CLOCK], services.audit)
        app[SUPERVISION] = Supervision(services.engine, app[CLOCK], services.cases)
        app[TIME_LIMITS] = TimeLimits(
            services.engine, app[CLOCK], services.cases, app[SETTINGS].time_limit_warn_days
        )
        app[HEALTH] = Health(services.engine)  # open_services has migrated the schema
        yield


async def _checkpoints(app: web.Application) -> AsyncIterator[None]:
    """The log's periodic checkpoints; a last one on close if events came since."""
    audit = app[AUDIT]
    task = asyncio.create_task(audit.run_checkpoints(app[SETTINGS].checkpoint_seconds))
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    try:
        await audit.checkpoint_if_grown()
    except Exception:  # also a database error: shutdown goes on
        logger.exception("could not sign the closing log checkpoint")


async def _live(app: web.Application) -> AsyncIterator[None]:
    """The live parts: bus, review sessions, media rooms, signalling."""
    settings, clock = app[SETTINGS], app[CLOCK]
    bus: Bus = RedisBus(settings.redis_url) if settings.redis_url else InProcessBus()
    reviews = Reviews(app[ENGINE], clock, app[AUDIT], bus, settings.queue_timeout_seconds)
    await reviews.resume()
    media = MediaServer(
        MediaConfig(
            settings.announced_addresses,
            settings.udp_port_min,
            settings.udp_port_max,
            settings.ice_allowed_networks,
            settings.ice_denied_networks,
        )
    )
    tokens = JoinTokens(app[KEYS].jwt_key, clock, bus)
    stills = Stills(app[ENGINE], clock, app[AUDIT], app[EVIDENCE], bus, settings)
    actions = ReviewActions(app[ENGINE], clock, app[AUDIT], bus, reviews)
    async with contextlib.AsyncExitStack() as stack:
        await _follow_catalog(app[CATALOG], bus, stack)
        # before sessions resume: chunks a crash left open are kept, sessions marked
        last_run = await asyncio.to_thread(read_last_run, settings.data_dir)
        marker = RunMarker(settings.data_dir, clock)
        stack.push_async_callback(marker.stop)  # last: after the recorder has closed
        recorder = await stack.enter_async_context(
            open_recorder(
                settings, app[ENGINE], app[EVIDENCE], app[AUDIT], clock, reviews, last_run
            )
        )
        live = LiveHub(
            settings,
            clock,
            reviews,
            app[ACCOUNTS],
            media,
            tokens,
            app[AUDIT],
            bus,
            stills,
            recorder if settings.recording else None,
        )
        await live.logins.start()
        await live.resume()
        await marker.start(live.open_session_ids)
        app[BUS], app[REVIEWS], app[MEDIA], app[TOKENS] = bus, reviews, media, tokens
        app[LIVE], app[STILLS], app[ACTIONS] = live, stills, actions
        app[FOLLOWUPS] = Followups(app[ENGINE], clock, app[AUDIT])
        app[CASE_EVIDENCE] = CaseEvidence(app[ENGINE], app[AUDIT], app[CASES], actions)
        exporter = Exporter(app[ENGINE], app[AUDIT], app[EVIDENCE], clock)
        app[EXPORTS] = exports = Exports(exporter, settings.data_dir / "exports")
        await exports.open()
        yield
        await exports.close()
        await live.close()  # closes the sessions' recordings before the recorder
    await media.close()
    await reviews.close()
    await bus.close()


async def _follow_catalog(catalog: Catalog, bus: Bus, stack: contextlib.AsyncExitStack) -> None:
    """Announce this node's catalogue writes on the bus; drop the snapshot on others'."""
    announced = await stack.enter_async_context(bus.subscribe(CATALOG_TOPIC))

    async def announce(generation: int) -> None:
        await bus.publish(CATALOG_TOPIC, {"generation": generation})

    async def stop() -> None:
        catalog.on_change = None
        follower.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await follower

    catalog.on_change = announce
    follower = asyncio.create_task(catalog.follow(announced))
    stack.push_async_callback(stop)


async def _close_sockets(app: web.Application) -> None:
    """Before shutdown waits for handlers: end open WebSockets."""
    if LIVE in app:
        await app[LIVE].close()


def create_app(settings: Settings, clock: Clock | None = None) -> web.Application:
    app = web.Application(
        middlewares=[error_middleware, access_middleware], client_max_size=MAX_REQUEST_BYTES
    )
    app[SETTINGS] = settings
    app[CLOCK] = clock or SystemClock()
    app[RENDER] = pages.render  # the error middleware's pages
    aiohttp_jinja2.setup(
        app,
        loader=jinja2.PackageLoader("webui", "templates"),
        autoescape=jinja2.select_autoescape(default=True),
    )
    app.cleanup_ctx.append(_services)
    app.cleanup_ctx.append(_checkpoints)
    app.cleanup_ctx.append(_live)
    app.on_shutdown.append(_close_sockets)
    app.router.add_routes(health_routes.routes)
    app.router.add_routes(account_routes.routes)
    app.router.add_routes(catalog_routes.routes)
    app.router.add_routes(case_routes.routes)
    app.router.add_routes(session_routes.routes)
    app.router.add_routes(action_routes.routes)
    app.router.add_routes(evidence_routes.routes)
    app.router.add_routes(export_routes.routes)
    app.router.add_routes(log_routes.routes)
    app.router.add_routes(still_routes.routes)
    app.router.add_routes(playback_routes.routes)
    app.router.add_routes(live_routes.routes)
    app.router.add_routes(custody_routes.routes)
    app.router.add_routes(pages.routes)
    app.router.add_routes(review_pages.routes)
    app.router.add_routes(playback_pages.routes)
    app.router.add_routes(search_pages.routes)
    app.router.add_routes(stats_routes.routes)
    app.router.add_routes(metrics.routes)
    app.router.add_routes(supervision_pages.routes)
    app.router.add_static("/static", STATIC_DIR)
    app.on_response_prepare.append(security_headers)
    pacing.install(app, active=lambda: open_tracks() > 0)
    return app
