"""The application factory."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp_jinja2
import jinja2
from aiohttp import web

from signaling import api
from signaling.access import access_middleware
from signaling.appkeys import ACCOUNTS, AUDIT, CASES, CATALOG, CLOCK, ENGINE, KEYS, SETTINGS
from signaling.clock import Clock, SystemClock
from signaling.middleware import error_middleware, security_headers
from signaling.services import open_services
from signaling.settings import Settings
from webui import pages

logger = logging.getLogger(__name__)

STATIC_DIR = Path(pages.__file__).parent / "static"
MAX_REQUEST_BYTES = 2 * 1024 * 1024


async def _services(app: web.Application) -> AsyncIterator[None]:
    async with open_services(app[SETTINGS], app[CLOCK]) as services:
        app[KEYS] = services.keys
        app[ENGINE] = services.engine
        app[AUDIT] = services.audit
        app[ACCOUNTS] = services.accounts
        app[CATALOG] = services.catalog
        app[CASES] = services.cases
        yield


def create_app(settings: Settings, clock: Clock | None = None) -> web.Application:
    app = web.Application(
        middlewares=[error_middleware, access_middleware], client_max_size=MAX_REQUEST_BYTES
    )
    app[SETTINGS] = settings
    app[CLOCK] = clock or SystemClock()
    aiohttp_jinja2.setup(
        app,
        loader=jinja2.PackageLoader("webui", "templates"),
        autoescape=jinja2.select_autoescape(default=True),
    )
    app.cleanup_ctx.append(_services)
    app.router.add_routes(api.routes)
    app.router.add_routes(pages.routes)
    app.router.add_static("/static", STATIC_DIR)
    app.on_response_prepare.append(security_headers)
    return app
