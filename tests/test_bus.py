"""The bus contract, for the in-process bus and for Redis (a real redis-server): what
one part publishes on a topic reaches every subscriber of that topic, on every node."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from coreview.app import create_app
from coreview.simulate import ApiClient, SignalChannel
from signaling.review import protocol
from signaling.settings import Settings
from signaling.storage.bus import Bus, InProcessBus, RedisBus
from tests.helpers import demo_password, start_session, valid_id, wait_until

pytest_plugins = ("tests.redis_server",)


@pytest.fixture(params=["in-process", "redis"])
async def buses(request, redis_url) -> AsyncIterator[tuple[Bus, Bus]]:
    """Two nodes' buses: the same object in-process, two connections with Redis."""
    if request.param == "in-process":
        bus = InProcessBus()
        yield bus, bus
        await bus.close()
        return
    first, second = RedisBus(redis_url), RedisBus(redis_url)
    yield first, second
    await first.close()
    await second.close()


async def next_message(queue: asyncio.Queue, limit: float = 5.0) -> dict:
    return await asyncio.wait_for(queue.get(), limit)


async def published_until_received(
    bus: Bus, topic: str, queue: asyncio.Queue, message: dict
) -> dict:
    """Redis subscriptions take effect asynchronously: publish until one arrives."""
    for _ in range(50):
        await bus.publish(topic, message)
        try:
            return await asyncio.wait_for(queue.get(), 0.1)
        except TimeoutError:
            continue
    raise AssertionError("nothing arrived")


@pytest.mark.redis
async def test_message_reaches_every_subscriber_of_its_topic_only(buses):
    """Two subscribers of a topic on one node each get the message published on another
    node; a subscriber of another topic gets nothing."""
    node_a, node_b = buses
    async with (
        node_a.subscribe("department:1") as first,
        node_a.subscribe("department:1") as second,
        node_a.subscribe("department:2") as other,
    ):
        got = await published_until_received(
            node_b, "department:1", first, {"event": "queue_changed", "n": "队列"}
        )
        assert got == {"event": "queue_changed", "n": "队列"}
        assert (await next_message(second))["event"] == "queue_changed"
        while not second.empty():
            second.get_nowait()
        await node_b.publish("department:1", {"event": "again"})
        assert (await next_message(first))["event"] in ("queue_changed", "again")
        assert other.empty()


@pytest.mark.redis
async def test_leaving_a_subscription_stops_delivery(buses):
    """After a subscriber leaves, publishing on its topic still works and reaches the
    remaining subscribers only."""
    node_a, node_b = buses
    async with node_a.subscribe("session:x") as staying:
        async with node_a.subscribe("session:x") as leaving:
            await published_until_received(node_b, "session:x", staying, {"event": "one"})
        await node_b.publish("session:x", {"event": "two"})
        seen = []
        while "two" not in seen:
            seen.append((await next_message(staying))["event"])
        assert leaving.empty() or (await next_message(leaving))["event"] == "one"


@pytest.mark.redis
async def test_queue_updates_cross_nodes_through_redis(aiohttp_server, data_dir, redis_url):
    """Two nodes share the database and Redis: an approver watching the live queue on
    one node sees a session the clerk starts on the other."""
    settings = Settings(data_dir=data_dir, redis_url=redis_url, announced_addresses=("127.0.0.1",))
    node_a = await aiohttp_server(create_app(settings))
    node_b = await aiohttp_server(create_app(settings))
    approver, clerk = ApiClient(str(node_a.make_url(""))), ApiClient(str(node_b.make_url("")))
    try:
        await approver.login("shenpi", demo_password(data_dir, "shenpi"))
        await clerk.login("chuangkou", demo_password(data_dir, "chuangkou"))
        socket = await approver.http.ws_connect(f"{approver.base_url}/api/v1/queue/ws")
        assert (await socket.receive_json(timeout=5))["items"] == []
        body = {
            "matter": "LZ-SCJG-0101",
            "applicant_name": "孙八",
            "id_number": valid_id(),
            "phone": "13800000000",
        }
        case_no = (await clerk.post("/api/v1/cases", body))["case"]["case_no"]
        await clerk.post(f"/api/v1/cases/{case_no}/sessions", {"consent": True})
        update = await socket.receive_json(timeout=5)
        assert [item["case_no"] for item in update["items"]] == [case_no]
        await socket.close()
    finally:
        await approver.close()
        await clerk.close()


@pytest.mark.redis
async def test_a_key_is_claimed_once_on_all_nodes_until_it_expires(buses):
    """The first claim of a key, on either node, wins; a second, on the same node or the
    other, is refused while the first holds; another key is free; once the claim has
    expired the key can be claimed again."""
    node_a, node_b = buses
    assert await node_a.claim("join-token:one", 30)
    assert not await node_b.claim("join-token:one", 30)
    assert not await node_a.claim("join-token:one", 30)
    assert await node_b.claim("join-token:two", 30)
    assert await node_a.claim("join-token:short", 0.05)

    async def free_again() -> bool:
        return await node_b.claim("join-token:short", 30)

    await wait_until(free_again, limit=10, what="the short claim to expire")


@pytest.mark.redis
async def test_a_join_token_is_spent_once_across_nodes(aiohttp_server, data_dir, redis_url):
    """Two nodes share the database and Redis: a join token that opened a socket on one
    node is refused (token_used) on the other."""
    settings = Settings(data_dir=data_dir, redis_url=redis_url, announced_addresses=("127.0.0.1",))
    node_a = await aiohttp_server(create_app(settings))
    node_b = await aiohttp_server(create_app(settings))
    on_a, on_b = ApiClient(str(node_a.make_url(""))), ApiClient(str(node_b.make_url("")))
    channel = None
    try:
        for client in (on_a, on_b):
            await client.login("chuangkou", demo_password(data_dir, "chuangkou"))
        started = await start_session(on_a)
        session_id = started["session"]["id"]
        channel = await SignalChannel.open(on_a, session_id, started["token"])
        socket = await on_b.http.ws_connect(f"{on_b.base_url}/api/v1/sessions/{session_id}/ws")
        await socket.send_str(protocol.Join(started["token"]).to_json())
        reply = await socket.receive_json(timeout=10)
        assert (reply["type"], reply.get("code")) == ("error", "token_used")
        await socket.close()
    finally:
        if channel is not None:
            await channel.close()
        await on_a.close()
        await on_b.close()
