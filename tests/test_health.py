"""/healthz on a real app and database: 503 until the schema is migrated, one probe
query per second however many calls arrive, and 503 while the database cannot answer
or does not answer in time."""

from __future__ import annotations

import asyncio
import itertools
import json
import time

from aiohttp.test_utils import make_mocked_request
from sqlalchemy import event

from coreview.app import create_app
from signaling.node import health_routes
from signaling.node.health import Health
from signaling.settings import Settings
from signaling.web.appkeys import ENGINE


async def _poll(anonymous, status: int, deadline: float = 10.0) -> dict[str, str]:
    """Ask /healthz until it answers ``status`` (the last answer is kept up to 1 s)."""
    until = time.monotonic() + deadline
    while True:
        response = await anonymous.get("/healthz")
        body: dict[str, str] = await response.json()
        if response.status == status:
            return body
        assert time.monotonic() < until, (response.status, body)
        await asyncio.sleep(0.05)  # ok-sleep: the poll's interval, under a deadline


async def test_healthz_says_starting_before_the_schema_is_migrated(settings: Settings):
    """Before start-up has migrated the schema, /healthz answers 503 "starting"."""
    app = create_app(settings)  # not started: nothing opened, nothing migrated
    response = await health_routes.healthz(make_mocked_request("GET", "/healthz", app=app))
    assert response.status == 503
    assert json.loads(response.body) == {"status": "starting"}  # type: ignore[arg-type]


async def test_many_health_probes_make_about_one_query_a_second(client, anonymous):
    """60 concurrent calls, then calls back to back for 1.5 s: every one answers ok, and
    the database saw at most one probe per second (plus the first)."""
    probes: list[float] = []

    def count(_conn, _cursor, statement, *_args) -> None:
        if statement == "SELECT 1":
            probes.append(time.monotonic())

    event.listen(client.app[ENGINE].sync_engine, "before_cursor_execute", count)
    started = time.monotonic()
    answers = await asyncio.gather(*(anonymous.get("/healthz") for _ in range(60)))
    assert [a.status for a in answers] == [200] * 60
    calls = 60
    while time.monotonic() - started < 1.5:
        assert (await anonymous.get("/healthz")).status == 200
        calls += 1
    elapsed = time.monotonic() - started
    assert 1 <= len(probes) <= int(elapsed) + 1, (len(probes), calls, elapsed)
    assert all(later - earlier >= 0.99 for earlier, later in itertools.pairwise(probes))


async def test_healthz_is_503_while_the_database_cannot_answer(client, anonymous, settings):
    """The database file replaced by a directory (SQLite cannot open it): 503
    "database_unavailable" within about a second; put back, 200 again."""
    database = settings.sqlite_path
    assert database is not None
    engine = client.app[ENGINE]
    assert (await anonymous.get("/healthz")).status == 200
    aside = database.with_name("aside")
    aside.mkdir()
    await engine.dispose()  # close pooled connections: new ones open the path again
    moved = list(database.parent.glob(database.name + "*"))
    for path in moved:
        path.rename(aside / path.name)
    database.mkdir()
    await engine.dispose()  # one opened meanwhile would still see the moved file
    assert await _poll(anonymous, 503) == {"status": "database_unavailable"}
    database.rmdir()
    for path in moved:
        (aside / path.name).rename(path)
    assert await _poll(anonymous, 200) == {"status": "ok"}


async def test_a_database_that_hangs_is_unavailable_after_the_timeout():
    """A database that never answers (a stand-in engine: a network hang) makes the probe
    answer False after ``timeout``, and every probe waiting meanwhile with it."""

    class Hanging:
        def connect(self):
            return self

        async def __aenter__(self):
            await asyncio.Event().wait()

        async def __aexit__(self, *_exc):
            return False

    health = Health(Hanging(), timeout=0.2)  # type: ignore[arg-type]
    started = time.monotonic()
    answers = await asyncio.gather(*(health.database_ok() for _ in range(5)))
    assert answers == [False] * 5
    assert time.monotonic() - started < 1.0
