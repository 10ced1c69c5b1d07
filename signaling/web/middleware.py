"""Turns errors into answers (JSON for the API, a page otherwise) and sets security
headers on every response."""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web import BaseRequest, StreamResponse

from signaling.web.access import USER, Handler, login_redirect
from signaling.web.appkeys import AUDIT, RENDER, SETTINGS
from signaling.web.errors import Forbidden, NotAuthenticated, SignalingError
from signaling.web.json_api import json_response
from signaling.web.messages import message

logger = logging.getLogger(__name__)

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob:",
        "media-src 'self' blob:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",  # no-referrer would make browsers send Origin: null
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(self), microphone=(self), geolocation=()",
    "Server": "coreview",  # not aiohttp's name and version
}
HSTS = "max-age=31536000"
"""Strict-Transport-Security when the server speaks HTTPS (a year; no subdomains: halls
often reach the service by an IP address)."""
_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}


def is_api(request: web.Request) -> bool:
    return request.path.startswith("/api/")


def error_response(
    request: web.Request, status: int, code: str, params: dict[str, object] | None = None
) -> web.StreamResponse:
    text = message(code, params)
    if is_api(request):
        return json_response({"error": {"code": code, "message": text}}, status=status)
    render = request.app[RENDER]
    return render(request, "error.html", {"message": text, "status": status}, status)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except NotAuthenticated as exc:
        if not is_api(request):
            raise login_redirect(request) from exc
        return error_response(request, exc.status, exc.code, exc.params)
    except SignalingError as exc:
        if isinstance(exc, Forbidden) and USER in request:
            await request.app[AUDIT].append(
                "access_denied", actor=request[USER].username, path=request.path, reason=exc.code
            )
        return error_response(request, exc.status, exc.code, exc.params)
    except web.HTTPException as exc:
        if exc.status in _HTTP_CODES:
            return error_response(request, exc.status, _HTTP_CODES[exc.status])
        raise
    except Exception:
        logger.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(request, 500, "internal_error")


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.update(SECURITY_HEADERS)
    if request.app[SETTINGS].tls:
        response.headers["Strict-Transport-Security"] = HSTS
    if "Cache-Control" not in response.headers:
        response.headers["Cache-Control"] = "no-store"


class AccessLogger(AbstractAccessLogger):
    """Method, path, status and time; never the query string (it may hold an ID number)."""

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        self.logger.info(
            "%s %s %s %s %.1fms",
            request.remote,
            request.method,
            request.path,
            response.status,
            time * 1000,
        )
