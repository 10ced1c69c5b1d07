"""``GET /metrics``: off unless configured, refused without the token or from another
network, Prometheus text that parses, and figures that move with a real live session."""

from __future__ import annotations

import logging
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from coreview.app import create_app
from coreview.simulate import connect_media, slot_for
from signaling.review import protocol
from signaling.settings import Settings
from tests.helpers import live_call, start_session, wait_until

TOKEN = "metrics-token-7f3a9c2e5b1d"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    """Every sample by (name, sorted labels)."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def scrape(base: str, token: str | None = TOKEN) -> tuple[int, str, dict[str, str]]:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{base}/metrics", headers=headers) as response,
    ):
        return response.status, await response.text(), dict(response.headers)


async def serve(aiohttp_server: Any, data_dir: Any, **settings: Any) -> str:
    app = create_app(Settings(data_dir=data_dir, announced_addresses=("127.0.0.1",), **settings))
    server = await aiohttp_server(app)
    return str(server.make_url("")).rstrip("/")


async def test_metrics_are_off_unless_a_token_or_network_is_set(aiohttp_server, data_dir):
    """Without ``metrics_token`` and ``metrics_addresses`` the route answers 404, with
    or without a token."""
    base = await serve(aiohttp_server, data_dir)
    assert (await scrape(base, None))[0] == 404
    assert (await scrape(base))[0] == 404


async def test_the_token_is_required_and_never_logged(aiohttp_server, data_dir, caplog):
    """With a token set: none or a wrong one answers 401 with a Bearer challenge, the
    right one the Prometheus text format; the token is in no log line and not in the
    settings' repr."""
    caplog.set_level(logging.DEBUG)
    base = await serve(aiohttp_server, data_dir, metrics_token=TOKEN)
    status, _, headers = await scrape(base, None)
    assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer")
    assert (await scrape(base, "wrong"))[0] == 401
    assert (await scrape(base, TOKEN + "x"))[0] == 401
    status, text, headers = await scrape(base)
    assert status == 200 and headers["Content-Type"].startswith("text/plain; version=")
    samples = parse(text)
    assert samples["coreview_sessions", (("state", "live"),)] == 0
    assert samples["coreview_log_entries", ()] > 0
    assert ("process_cpu_seconds_total", ()) in samples
    assert TOKEN not in caplog.text
    assert TOKEN not in repr(Settings(metrics_token=TOKEN))


async def test_only_listed_networks_may_scrape(aiohttp_server, data_dir):
    """A client outside ``metrics_addresses`` gets 403; inside it, 200; with a token as
    well, both must hold."""
    other = await serve(aiohttp_server, data_dir, metrics_addresses=("10.0.0.0/8",))
    assert (await scrape(other, None))[0] == 403
    local = await serve(aiohttp_server, data_dir, metrics_addresses=("127.0.0.0/8",))
    assert (await scrape(local, None))[0] == 200
    both = await serve(
        aiohttp_server, data_dir, metrics_addresses=("127.0.0.1",), metrics_token=TOKEN
    )
    assert (await scrape(both, None))[0] == 401
    assert (await scrape(both))[0] == 200


@pytest.fixture
async def server(aiohttp_server, data_dir):
    """A recording server on loopback (2 s chunks) whose metrics need the token."""
    settings = Settings(
        data_dir=data_dir,
        announced_addresses=("127.0.0.1",),
        chunk_seconds=2.0,
        metrics_token=TOKEN,
    )
    return await aiohttp_server(create_app(settings))


async def test_figures_move_with_a_live_session(users, server):
    """A real session between aiortc peers shows as live with its participants, its
    packets and bytes forwarded, its queue wait while waiting; once ended its recorded
    chunks and bytes are counted and the log has grown; a failed login is counted."""
    base = str(server.make_url("")).rstrip("/")
    before = parse((await scrape(base))[1])
    waiting = await start_session(await users("chuangkou_lz"))
    queued = parse((await scrape(base))[1])
    assert queued["coreview_sessions", (("state", "waiting"),)] == 1
    assert queued["coreview_queue_length", (("department", "LZ-SCJG"),)] == 1
    assert queued["coreview_queue_oldest_wait_seconds", (("department", "LZ-SCJG"),)] >= 0
    clerk, approver = await users("chuangkou"), await users("shenpi")
    started, clerk_channel, approver_channel = await live_call(clerk, approver)
    clerk_peer = await connect_media(clerk_channel, ("face", "document", "audio"))
    approver_peer = await connect_media(approver_channel, ("face", "audio"))
    try:
        await wait_until(lambda: slot_for(approver_channel, "chuangkou", "document") is not None)
        document = approver_peer.received[slot_for(approver_channel, "chuangkou", "document")]
        await wait_until(lambda: len(document.counters) >= 40, limit=30, what="40 frames")
        live = parse((await scrape(base))[1])
        assert live["coreview_sessions", (("state", "live"),)] == 1
        assert live["coreview_node_live_sessions", ()] == 1
        assert live["coreview_participants", (("role", "clerk"), ("state", "connected"))] == 1
        assert live["coreview_participants", (("role", "approver"), ("state", "connected"))] == 1
        assert live["coreview_media_peers", ()] == 2
        assert live["coreview_media_published_tracks", ()] == 5
        assert live["coreview_media_received_packets_total", ()] > 100
        assert live["coreview_media_forwarded_packets_total", ()] > 100
        assert live["coreview_media_forwarded_bytes_total", ()] > 20_000
        await wait_until(
            lambda: after_scrape(base, "coreview_media_forwarded_bytes_total", live),
            what="forwarded bytes to grow between scrapes",
        )
        await approver_channel.send(protocol.End())
        await clerk_channel.wait("state", lambda m: m["state"] == "ended")
    finally:
        for closing in (clerk_peer, approver_peer, clerk_channel, approver_channel):
            await closing.close()
    await wait_until(
        lambda: after_scrape(base, "coreview_recording_chunks_total", before),
        limit=30,
        what="recorded chunks counted",
    )
    async with aiohttp.ClientSession() as http:
        login = {"username": "chuangkou", "password": "not-the-password"}
        async with http.post(f"{base}/api/v1/auth/login", json=login) as refused:
            assert refused.status == 401

    async def checkpoint_signed() -> bool:  # the session's end signs one
        return ("coreview_log_checkpoint_age_seconds", ()) in parse((await scrape(base))[1])

    await wait_until(checkpoint_signed, limit=30, what="a signed checkpoint")
    ended = parse((await scrape(base))[1])
    assert ended["coreview_sessions", (("state", "live"),)] == 0
    assert ended["coreview_media_rooms", ()] == 0
    assert (
        ended["coreview_media_forwarded_bytes_total", ()]
        >= live["coreview_media_forwarded_bytes_total", ()]
    )  # closed rooms still count
    assert ended["coreview_recording_bytes_total", ()] > 10_000
    assert ended["coreview_evidence_bytes", (("role", "capture"),)] > 10_000
    assert ended["coreview_recording_events_total", (("kind", "track_started"),)] == 5
    assert ended["coreview_log_entries", ()] > before["coreview_log_entries", ()]
    assert ended["coreview_log_checkpoint_age_seconds", ()] >= 0
    assert ended["coreview_login_failures_total", ()] == 1
    assert ended["coreview_login_failures_recent", ()] == 1
    assert started["session"]["state"] == waiting["session"]["state"] == "waiting"


async def after_scrape(base: str, name: str, earlier: Samples) -> bool:
    return parse((await scrape(base))[1])[name, ()] > earlier[name, ()]
