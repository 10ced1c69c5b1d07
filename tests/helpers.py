"""Helpers shared by the tests: demo data seeded once and copied, logged-in clients."""

from __future__ import annotations

import asyncio
import datetime as dt
import inspect
import json
import shutil
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from coreview.simulate import ApiClient, ApiError, SignalChannel
from recorder.schema import APPEND_ONLY_TABLES
from signaling import id_numbers
from signaling.storage import tables
from signaling.web.appkeys import ENGINE


@dataclass
class Session:
    """A logged-in API client: sends the CSRF header on every state-changing call."""

    client: TestClient[Any, Any]
    csrf: str
    user: dict[str, Any]

    async def get(self, path: str, **kwargs: Any) -> Any:
        return await self.client.get(path, **kwargs)

    async def post(self, path: str, **kwargs: Any) -> Any:
        headers = {"X-CSRF-Token": self.csrf, **kwargs.pop("headers", {})}
        return await self.client.post(path, headers=headers, **kwargs)


def copy_data_dir(template: Path, target: Path) -> Path:
    shutil.copytree(template, target)
    return target


def demo_password(data_dir: Path, username: str) -> str:
    accounts = json.loads((data_dir / "demo-accounts.json").read_text("utf-8"))
    return str(next(a["password"] for a in accounts if a["username"] == username))


def valid_id(first17: str = "45020219900307123") -> str:
    return first17 + id_numbers.check_digit(first17)


async def login(client: TestClient[Any, Any], username: str, password: str) -> Session:
    response = await client.post(
        "/api/v1/auth/login", json={"username": username, "password": password}
    )
    body = await response.json()
    assert response.status == 200, body
    return Session(client, body["csrf_token"], body["user"])


async def stored_rows(app: web.Application) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table except the append-only log's (events, checkpoints,
    keys), in key order: equal snapshots before and after a refused request prove it
    changed nothing."""
    snapshot: dict[str, list[tuple[Any, ...]]] = {}
    async with app[ENGINE].connect() as conn:
        for table in tables.metadata.sorted_tables:
            if table.name not in APPEND_ONLY_TABLES:
                query = select(table).order_by(*table.primary_key.columns)
                snapshot[table.name] = [tuple(row) for row in await conn.execute(query)]
    return snapshot


async def wait_until(
    condition: Callable[[], bool | Awaitable[bool]], limit: float = 15.0, what: str = ""
) -> None:
    """Poll ``condition`` (plain or async) until it holds; fail after ``limit`` seconds."""
    deadline = time.monotonic() + limit
    while True:
        result = condition()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        await asyncio.sleep(0.02)  # ok-sleep: polling interval of a deadline-bound wait


async def start_session(clerk: Any, matter: str = "LZ-SCJG-0101") -> dict[str, Any]:
    """As the clerk (an ApiClient): create a case and start its review session."""
    body = {
        "matter": matter,
        "applicant_name": "钱七",
        "id_number": valid_id(),
        "phone": "13800000000",
    }
    case_no = (await clerk.post("/api/v1/cases", body))["case"]["case_no"]
    started: dict[str, Any] = await clerk.post(
        f"/api/v1/cases/{case_no}/sessions", {"consent": True}
    )
    return started


async def live_call(
    clerk: ApiClient, approver: ApiClient
) -> tuple[dict[str, Any], SignalChannel, SignalChannel]:
    """A started session the approver accepted, both on their signalling sockets:
    (the start answer, the clerk's channel, the approver's channel)."""
    started = await start_session(clerk)
    session_id = started["session"]["id"]
    clerk_channel = await SignalChannel.open(clerk, session_id, started["token"])
    accepted = await approver.post(f"/api/v1/sessions/{session_id}/accept")
    approver_channel = await SignalChannel.open(approver, session_id, accepted["token"])
    return started, clerk_channel, approver_channel


class ManualClock:
    """A clock the test moves by hand, instead of sleeping."""

    def __init__(self) -> None:
        self.at = dt.datetime.now(dt.UTC)

    def now(self) -> dt.datetime:
        return self.at

    def advance(self, **delta: float) -> None:
        self.at += dt.timedelta(**delta)


async def refused(call: Awaitable[Any], status: int, code: str) -> ApiError:
    """The API call fails with ``status`` and ``code``, and a message to show."""
    with pytest.raises(ApiError) as caught:
        await call
    assert (caught.value.status, caught.value.code) == (status, code), caught.value
    assert caught.value.message
    return caught.value
