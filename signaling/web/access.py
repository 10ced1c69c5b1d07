"""Access control: every route declares who may use it; one middleware enforces it.

A handler without a declared policy is refused (fail closed). Login sessions travel in
a signed, HttpOnly, SameSite=Strict cookie; state-changing requests carry a CSRF token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import quote, urlencode, urlsplit

from aiohttp import web
from aiohttp.web_urldispatcher import StaticResource

from signaling import id_numbers
from signaling.storage.models import Role, User
from signaling.web.appkeys import ACCOUNTS, KEYS, SETTINGS
from signaling.web.errors import Forbidden, NotAuthenticated

logger = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
H = TypeVar("H", bound=Handler)

SESSION_COOKIE = "cv_session"
PRELOGIN_COOKIE = "cv_prelogin"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "_csrf"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
POLICY_ATTR = "__coreview_policy__"

USER = web.RequestKey("user", User)
CSRF_TOKEN = web.RequestKey("csrf_token", str)
SESSION_TOKEN = web.RequestKey("session_token", str)

ALL_ROLES: frozenset[Role] = frozenset({"clerk", "approver", "auditor", "admin"})
STAFF: tuple[Role, ...] = ("clerk", "approver", "auditor")


@dataclass(frozen=True)
class Policy:
    roles: frozenset[Role] | None
    """Roles allowed; None for a public route."""
    scope: str
    """Which objects the route serves, e.g. "case in the user's scope" (documentation)."""
    page: bool
    """A page (anonymous users are redirected to the login page) or an API route (401)."""
    pending_ok: bool
    """Reachable while the user still has to change a temporary password."""


def allow(
    *roles: Role, scope: str, page: bool = False, pending_ok: bool = False
) -> Callable[[H], H]:
    """Declare the roles and the scope a route serves."""

    def mark(handler: H) -> H:
        setattr(handler, POLICY_ATTR, Policy(frozenset(roles), scope, page, pending_ok))
        return handler

    return mark


def public(*, page: bool) -> Callable[[H], H]:
    def mark(handler: H) -> H:
        setattr(handler, POLICY_ATTR, Policy(None, "public", page, True))
        return handler

    return mark


def policy_of(request: web.Request) -> Policy | None:
    if isinstance(request.match_info.route.resource, StaticResource):
        return Policy(None, "static files", False, True)
    policy = getattr(request.match_info.handler, POLICY_ATTR, None)
    return policy if isinstance(policy, Policy) else None


# -- cookies -----------------------------------------------------------------------------


def _signature(key: bytes, token: str) -> str:
    digest = hmac.new(key, token.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def sign_cookie(key: bytes, token: str) -> str:
    return f"{token}.{_signature(key, token)}"


def unsign_cookie(key: bytes, value: str) -> str | None:
    token, _, signature = value.rpartition(".")
    if not token or not hmac.compare_digest(signature, _signature(key, token)):
        return None
    return token


def set_session_cookie(request: web.Request, response: web.StreamResponse, token: str) -> None:
    settings = request.app[SETTINGS]
    response.set_cookie(
        SESSION_COOKIE,
        sign_cookie(request.app[KEYS].cookie_key, token),
        max_age=int(settings.session_hours * 3600),
        httponly=True,
        samesite="Strict",
        secure=settings.secure_cookies,
        path="/",
    )


def set_prelogin_cookie(request: web.Request, response: web.StreamResponse, token: str) -> None:
    """Double-submit token for the login form, before any session exists."""
    response.set_cookie(
        PRELOGIN_COOKIE,
        token,
        httponly=True,
        samesite="Strict",
        path="/",
        secure=request.app[SETTINGS].secure_cookies,
    )


# -- CSRF --------------------------------------------------------------------------------


def foreign_origin(request: web.Request) -> bool:
    """A browser request sent by a page of another site, or by an opaque origin
    (``Origin: null``: sandboxed frames, data: URLs, some redirects)."""
    origin = request.headers.get("Origin")
    return bool(origin) and (origin == "null" or urlsplit(origin).netloc != request.host)


async def _csrf_ok(request: web.Request) -> bool:
    if foreign_origin(request):
        return False
    expected = request.get(CSRF_TOKEN)
    if expected is None:
        # No session yet (login): JSON needs a CORS preflight cross-site; forms must
        # echo the pre-login cookie.
        if request.content_type == "application/json":
            return True
        expected = request.cookies.get(PRELOGIN_COOKIE)
        if not expected:
            return False
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.content_type in {
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    }:
        field = (await request.post()).get(CSRF_FIELD)
        sent = field if isinstance(field, str) else None
    return sent is not None and hmac.compare_digest(sent, expected)


# -- middleware --------------------------------------------------------------------------


def login_redirect(request: web.Request) -> web.HTTPFound:
    """Back to this page after login; a search by ID number is not carried along (the
    number would sit in the URL, the history and the login form)."""
    query = [
        (k, v) for k, v in request.query.items() if not id_numbers.is_valid(id_numbers.normalize(v))
    ]
    target = request.path + (f"?{urlencode(query)}" if query else "")
    return web.HTTPFound(f"/login?next={quote(target, safe='')}")


@web.middleware
async def access_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.match_info.http_exception is not None:
        return await handler(request)  # 404 / 405: nothing to protect
    policy = policy_of(request)
    if policy is None:
        logger.error("route without an access policy: %s", request.match_info.route)
        raise Forbidden("wrong_role")
    cookie = request.cookies.get(SESSION_COOKIE)
    token = unsign_cookie(request.app[KEYS].cookie_key, cookie) if cookie else None
    found = await request.app[ACCOUNTS].session_user(token) if token else None
    if found is not None and token is not None:
        request[USER], request[CSRF_TOKEN] = found
        request[SESSION_TOKEN] = token
    if policy.roles is not None and found is None:
        # Checked before CSRF: without a session nothing can be done on anyone's behalf,
        # and "log in again" is the answer that helps (e.g. a form sent after expiry).
        if policy.page:
            raise login_redirect(request)
        raise NotAuthenticated("session_expired" if cookie else "not_authenticated")
    if request.method not in SAFE_METHODS and not await _csrf_ok(request):
        raise Forbidden("csrf_failed")
    if policy.roles is None or found is None:
        return await handler(request)  # a public route (found is None only there)
    user = found[0]
    if user.must_change_password and not policy.pending_ok:
        if policy.page:
            raise web.HTTPFound("/password")
        raise Forbidden("password_change_required")
    if user.role not in policy.roles:
        raise Forbidden("wrong_role")
    return await handler(request)
