"""Helpers for the integrity and retention tests: simulated cases recorded by a real
``coreview serve`` (``coreview simulate``), read and tampered with from outside."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from coreview.simulate import ApiClient
from tests.live import LiveServer
from tests.test_simulate import complete_evidence, simulated


def record_cases(server: LiveServer, sessions: int = 1, seconds: float = 4.0) -> list[str]:
    """Case numbers of ``sessions`` simulated, reviewed and recorded sessions, one after
    the other (the machine is shared: one at a time keeps each clean)."""
    found = []
    for _ in range(sessions):
        found += simulated(server, seconds)["cases"]
    return found


async def evidence(server: LiveServer, case_no: str) -> dict[str, Any]:
    """The case's evidence once every chunk is converted (see tests/test_simulate.py)."""
    return await complete_evidence(server, case_no)


async def logged_in(server: LiveServer, username: str) -> ApiClient:
    client = ApiClient(server.url)
    await client.login(username, server.password(username))
    return client


def database(data_dir: Path) -> sqlite3.Connection:
    return sqlite3.connect(data_dir / "coreview.sqlite3", timeout=30)


def stored_path(data_dir: Path, sha256: str) -> Path:
    return data_dir / "evidence" / "sha256" / sha256[:2] / sha256
