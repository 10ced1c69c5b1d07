"""Errors of the control plane.

    SignalingError            base; ``code`` is stable, ``params`` fill the message
    ├── InvalidInput          the request is malformed or a field is invalid (400)
    ├── NotAuthenticated      no valid login session (401)
    ├── Forbidden             wrong role or object out of the caller's scope (403)
    ├── NotFound              no such object (404)
    ├── Conflict              the object exists already or changed meanwhile (409)
    └── Throttled             too many attempts (429)

User-facing Chinese text for each code lives in ``signaling.messages``.
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


class Throttled(SignalingError):
    status = 429
