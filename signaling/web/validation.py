"""Field checks shared by the API and the page forms."""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections.abc import Mapping
from typing import Any

from signaling.web.errors import InvalidInput

BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)
"""Marks and overrides that reorder how text is shown (a name could read backwards)."""
LINE_BREAKS = frozenset("\n\r\t")


def normalize_text(value: str, *, multiline: bool = False) -> str | None:
    """User text in NFC, or None when it cannot be kept and shown honestly: a lone
    surrogate, a control character (line breaks and tabs only where multiline), a
    bidirectional override, or nothing visible at all (only spaces, zero-width and
    format characters)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return None
    value = unicodedata.normalize("NFC", value)
    allowed = LINE_BREAKS if multiline else frozenset()
    visible = False
    for char in value:
        category = unicodedata.category(char)
        if char in BIDI_CONTROLS or (category == "Cc" and char not in allowed):
            return None
        visible = visible or category[0] not in "ZC"
    return value if visible else None


def text(
    data: Mapping[str, Any],
    name: str,
    max_len: int,
    *,
    required: bool = True,
    multiline: bool = False,
) -> str:
    """A trimmed string field; refuses non-strings, control characters and overlong text."""
    value = data.get(name, "")
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise InvalidInput("field_invalid", field=name)
    value = value.strip()
    if not value and required:
        raise InvalidInput("field_required", field=name)
    if len(value) > max_len:
        raise InvalidInput("field_too_long", field=name, max=max_len)
    if not value:
        return value
    normalized = normalize_text(value, multiline=multiline)
    if normalized is None:
        raise InvalidInput("field_invalid", field=name)
    return normalized


def integer(data: Mapping[str, Any], name: str, low: int, high: int) -> int:
    value = data.get(name)
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise InvalidInput("field_out_of_range", field=name, low=low, high=high)
    return value


def pattern(data: Mapping[str, Any], name: str, regex: str, max_len: int) -> str:
    value = text(data, name, max_len)
    if not re.fullmatch(regex, value):
        raise InvalidInput("field_invalid", field=name)
    return value


def choice(data: Mapping[str, Any], name: str, options: tuple[str, ...]) -> str:
    value = data.get(name)
    if value not in options:
        raise InvalidInput("field_invalid", field=name)
    return str(value)


def date(data: Mapping[str, Any], name: str) -> dt.date | None:
    """An optional ISO date (YYYY-MM-DD); empty means none."""
    value = str(data.get(name) or "").strip()
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError as exc:
        raise InvalidInput("field_invalid", field=name) from exc
