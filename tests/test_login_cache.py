"""Kept login lookups (signaling/accounts/login_cache.py): used for a moment only, forgotten when
logins end, never kept from a read that a logout overtook; and across two real nodes
(shared database, real Redis) a logout on one is refused at once on the other."""

from __future__ import annotations

import datetime as dt

import pytest

from coreview.app import create_app
from coreview.simulate import ApiClient
from signaling.accounts.login_cache import Login, LoginCache
from signaling.settings import Settings
from signaling.storage.models import User
from tests.helpers import demo_password, wait_until
from tests.test_login_sockets import QueueSocket

pytest_plugins = ("tests.redis_server",)

USER = User(
    id=1,
    username="chuangkou",
    display_name="窗口",
    role="clerk",
    outlet_id=1,
    department_id=None,
    jurisdiction_code=None,
    must_change_password=False,
    disabled=False,
)
LOGIN = Login(USER, "csrf", dt.datetime(2030, 1, 1, tzinfo=dt.UTC))


class Ticks:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_lookup_is_kept_for_its_seconds_only():
    ticks = Ticks()
    cache = LoginCache(seconds=1.0, now=ticks)
    cache.keep("a", LOGIN, cache.epoch)
    assert cache.get("a") == LOGIN
    ticks.now += 0.99
    assert cache.get("a") == LOGIN
    ticks.now += 0.02
    assert cache.get("a") is None


def test_ended_logins_are_forgotten_and_a_read_they_overtook_is_not_kept():
    cache = LoginCache(seconds=60.0)
    cache.keep("a", LOGIN, cache.epoch)
    cache.keep("b", LOGIN, cache.epoch)
    cache.forget(["a"])
    assert cache.get("a") is None
    assert cache.get("b") == LOGIN
    read_at = cache.epoch  # a lookup starts reading ...
    cache.forget(["c"])  # ... a logout ends logins meanwhile ...
    cache.keep("c", LOGIN, read_at)  # ... its result (maybe read before) is not kept
    assert cache.get("c") is None
    cache.forget()
    assert cache.get("b") is None


@pytest.mark.redis
async def test_a_logout_on_one_node_is_refused_at_once_on_the_other(
    aiohttp_server, data_dir, redis_url
):
    """Node B keeps the login's lookup (it answered a request a moment ago); the logout
    goes to node A. Once B has closed the login's queue socket (it heard of the end over
    Redis), B refuses the login's next request: its kept lookup was forgotten, not used
    for the rest of its second."""
    settings = Settings(data_dir=data_dir, redis_url=redis_url, announced_addresses=("127.0.0.1",))
    node_a = await aiohttp_server(create_app(settings))
    node_b = await aiohttp_server(create_app(settings))
    on_a, on_b = ApiClient(str(node_a.make_url(""))), ApiClient(str(node_b.make_url("")))
    try:
        await on_a.login("shenpi", demo_password(data_dir, "shenpi"))
        on_b.http.cookie_jar.update_cookies({c.key: c.value for c in on_a.http.cookie_jar})
        queue = await QueueSocket.open(on_b)
        await on_b.get("/api/v1/cases")  # B keeps the lookup now
        await on_a.post("/api/v1/auth/logout", {})
        await wait_until(lambda: queue.socket.closed, what="B to close the login's socket")
        async with on_b.http.get(on_b.base_url + "/api/v1/cases") as response:
            assert response.status == 401
        await queue.close()
    finally:
        await on_a.close()
        await on_b.close()
