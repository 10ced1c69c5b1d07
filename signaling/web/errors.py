"""Errors of the control plane.

    SignalingError            base; ``code`` is stable, ``params`` fill the message
    ├── InvalidInput          the request is malformed or a field is invalid (400)
    ├── NotAuthenticated      no valid login session (401)
    ├── Forbidden             wrong role or object out of the caller's scope (403)
    ├── NotFound              no such object (404)
    ├── Conflict              the object exists already or changed meanwhile (409)
    ├── TooLarge              the request body is over its limit (413)
    ├── UnsupportedType       the body's type is not one the route takes (415)
    ├── Throttled             too many attempts (429)
    ├── Unavailable           a live part did not answer in time (503)
    └── StorageFull           the evidence store is out of space (507)

User-facing Chinese text for each code lives in ``signaling.web.messages``.
"""

from __future__ import annotations

from typing import Any


class SignalingError(Exception):
    status = 500

    def __init__(self, code: str, **params: Any) -> None:
        super().__init__(code)
        self.code = code
        self.params = params


class InvalidInput(SignalingError):
    status = 400


class NotAuthenticated(SignalingError):
    status = 401


class Forbidden(SignalingError):
    status = 403


class NotFound(SignalingError):
    status = 404


class Conflict(SignalingError):
    status = 409


class Gone(SignalingError):
    status = 410


class TooLarge(SignalingError):
    status = 413


class UnsupportedType(SignalingError):
    status = 415


class Throttled(SignalingError):
    status = 429


class Unavailable(SignalingError):
    status = 503


class StorageFull(SignalingError):
    status = 507
