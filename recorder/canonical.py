"""Canonical JSON (RFC 8785, JCS): the bytes that are hashed and signed."""

from __future__ import annotations

import datetime as dt
from typing import Any

import rfc8785


def canonical_json(value: Any) -> bytes:
    return rfc8785.dumps(value)


def timestamp(value: dt.datetime) -> str:
    """A time as it appears in hashed and signed statements: ISO 8601 in UTC."""
    aware = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    return aware.astimezone(dt.UTC).isoformat()
