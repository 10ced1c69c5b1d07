"""Field checks shared by the API and the page forms."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from signaling.errors import InvalidInput

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


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
    checked = value.replace("\n", "").replace("\r", "").replace("\t", "") if multiline else value
    if _CONTROL.search(checked) or (not multiline and ("\n" in value or "\r" in value)):
        raise InvalidInput("field_invalid", field=name)
    return value


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
