"""JSON bodies of the API under /api/v1 (see docs/api.md): answers, requests, the
client's address."""

from __future__ import annotations

import json
from typing import Any

import orjson
from aiohttp import web

from signaling.web.errors import InvalidInput


def json_response(data: dict[str, Any], status: int = 200) -> web.Response:
    """JSON as UTF-8 (Chinese left readable), by orjson."""
    body = orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS)  # int keys as json.dumps does
    return web.Response(body=body, status=status, content_type="application/json", charset="utf-8")


async def read_json(request: web.Request) -> dict[str, Any]:
    if request.content_type != "application/json":
        raise InvalidInput("bad_json")
    try:
        data = json.loads(await request.text())
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # RecursionError: nesting
        raise InvalidInput("bad_json") from exc
    if not isinstance(data, dict):
        raise InvalidInput("bad_json")
    return data


def client_address(request: web.Request) -> str:
    return request.remote or "unknown"
