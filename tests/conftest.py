from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from hypothesis import settings as hypothesis_settings

from coreview.app import create_app
from coreview.simulate import ApiClient
from media import loops
from recorder.clock import SystemClock
from signaling.node.demo import seed
from signaling.node.services import open_services
from signaling.settings import Settings
from tests.helpers import Session, copy_data_dir, demo_password, login

# Property tests are not timed per example: on a loaded 2-core machine, or against the
# sanitizer build (make sanitize), a deadline fails at random.
hypothesis_settings.register_profile("coreview", deadline=None)
hypothesis_settings.load_profile("coreview")


@pytest.fixture(scope="session")
def demo_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory with the demo data, seeded once per test run."""
    data_dir = tmp_path_factory.mktemp("demo-template")

    async def make() -> None:
        settings = Settings(data_dir=data_dir)
        async with open_services(settings, SystemClock()) as services:
            await seed(services, data_dir)

    asyncio.run(make())
    return data_dir


@pytest.fixture
def data_dir(demo_template: Path, tmp_path: Path) -> Path:
    return copy_data_dir(demo_template, tmp_path / "var")


@pytest.fixture
def settings(data_dir: Path) -> Settings:
    return Settings(data_dir=data_dir)


@pytest.fixture
async def client(
    aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]], settings: Settings
) -> TestClient[Any, Any]:
    return await aiohttp_client(create_app(settings))


@pytest.fixture
def as_user(
    aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]],
    client: TestClient[Any, Any],
    data_dir: Path,
) -> Callable[[str], Awaitable[Session]]:
    """Log a demo account in, on its own client (own cookie jar), same server."""

    async def make(username: str) -> Session:
        own = await aiohttp_client(client.server)
        return await login(own, username, demo_password(data_dir, username))

    return make


@pytest.fixture
async def anonymous(
    aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]], client: TestClient[Any, Any]
) -> AsyncIterator[TestClient[Any, Any]]:
    yield await aiohttp_client(client.server)


@pytest.fixture
async def server(aiohttp_server, data_dir: Path):
    """A real server on loopback for review sessions (media on 127.0.0.1)."""
    settings = Settings(
        data_dir=data_dir, announced_addresses=("127.0.0.1",), reconnect_grace_seconds=2
    )
    return await aiohttp_server(create_app(settings))


@pytest.fixture
async def users(server, data_dir):
    """Logged-in API clients for the demo accounts, closed after the test."""
    clients: dict[str, ApiClient] = {}

    async def make(name: str) -> ApiClient:
        client = ApiClient(str(server.make_url("")))
        await client.login(name, demo_password(data_dir, name))
        clients[name] = client
        return client

    yield make
    for client in clients.values():
        await client.close()


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> dict[str, Any]:
    """Tests marked ``asyncio(loop_factories=[...])`` run once per named loop (a loop
    that is not installed is skipped); every other test keeps the standard loop."""
    marker = item.get_closest_marker("asyncio")
    if marker is not None and "loop_factories" in marker.kwargs:
        return loops.available()
    return {"asyncio": asyncio.new_event_loop}


# -- tiers: a test's real parts mark it, so make check can leave the slow ones out ---------

TIER_FIXTURES = {
    "browser": "browser",  # a headless Chromium (tests/live.py)
    "live_server": "live",  # a `coreview serve` process
    "server": "rtc",  # an in-process server whose sessions carry media
    "users": "rtc",
    "media_path": "rtc",
    "redis_url": "redis",  # a redis-server process (tests/redis_server.py)
}
TIER_MODULES = {
    "tests.live": "live",
    "tests.netns": "netns",
    "tests.redis_server": "redis",
    "media.participant": "rtc",  # real aiortc peers
    "media.room": "rtc",
    "coreview.simulate": "rtc",
    "tests.test_media_forwarding": "rtc",  # its Pair of peers in a room
}
"""A test module that uses one of these (imports a name from it) is in that tier."""
TIERS = ("browser", "live", "rtc", "netns", "redis", "bench")


def tiers_of(item: pytest.Item) -> set[str]:
    found = {
        TIER_FIXTURES[name] for name in getattr(item, "fixturenames", ()) if name in TIER_FIXTURES
    }
    module = getattr(item, "module", None)
    if module is None:
        return found
    if module.__name__.rpartition(".")[2].startswith("test_bench"):
        found.add("bench")
    for value in vars(module).values():
        source = value.__name__ if inspect.ismodule(value) else getattr(value, "__module__", None)
        if source in TIER_MODULES:
            found.add(TIER_MODULES[source])
    if "launch_chromium" in vars(module) or "browser" in found:
        found.add("browser")
    return found


PRODUCTION_PAIRS = {"uvloop-fast", "asyncio-aiortc"}
"""Of a test run on both loops and both media paths (tests/test_media_forwarding.py),
the pairs that run: the fast path on uvloop (the default) and aiortc's path on the
standard loop (the fallback). A test marked ``all_pairs`` runs all four."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark each test with the tiers of the real parts it uses (``TIERS``); leave out
    the loop and media path pairs that are not production's (``PRODUCTION_PAIRS``)."""
    kept, left_out = [], []
    for item in items:
        tiers = tiers_of(item)
        for tier in sorted(tiers - {m.name for m in item.iter_markers()}):
            item.add_marker(tier)
        if "rtc" in tiers:  # one worker runs these one at a time (pytest -n, --dist loadgroup)
            item.add_marker(pytest.mark.xdist_group("rtc"))
        pair = getattr(getattr(item, "callspec", None), "id", "")
        paired = "media_path" in getattr(item, "fixturenames", ())
        if paired and pair not in PRODUCTION_PAIRS and not item.get_closest_marker("all_pairs"):
            left_out.append(item)
        else:
            kept.append(item)
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = kept
