"""Open sockets end with the login session that opened them: logout, a password change
(the other logins), an admin disabling the account or resetting its password close
the user's signalling and queue sockets, saying why (``login_ended``, close 4002).
Real server, real sockets and API clients."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from coreview.app import create_app
from coreview.simulate import ApiClient, SignalChannel
from signaling.review import protocol
from signaling.settings import Settings
from tests.helpers import demo_password, live_call, start_session, wait_until

CLOSE_LOGIN_ENDED = 4002


async def closed_for(socket: aiohttp.ClientWebSocketResponse, received: list[Any]) -> str:
    """Wait until the server closed the socket because the login ended; the message."""
    await wait_until(lambda: socket.closed, what="the socket to close")
    assert socket.close_code == CLOSE_LOGIN_ENDED
    errors = [m for m in received if m.get("type") == "error" and m["code"] == "login_ended"]
    assert errors, received
    return str(errors[-1]["message"])


class QueueSocket:
    """An approver's queue socket, read in the background."""

    def __init__(self, socket: aiohttp.ClientWebSocketResponse) -> None:
        self.socket = socket
        self.received: list[Any] = []
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, api: ApiClient) -> QueueSocket:
        opened = cls(await api.http.ws_connect(f"{api.base_url}/api/v1/queue/ws"))
        await wait_until(lambda: len(opened.received) == 1, what="the first queue message")
        return opened

    async def _read(self) -> None:
        async for raw in self.socket:
            if raw.type == aiohttp.WSMsgType.TEXT:
                self.received.append(raw.json())

    async def close(self) -> None:
        await self.socket.close()
        await self._reader


async def admin_form(admin: ApiClient, path: str) -> None:
    async with admin.http.post(
        admin.base_url + path, headers={"X-CSRF-Token": admin.csrf}
    ) as response:
        assert response.status == 200, await response.text()


async def user_id(admin: ApiClient, username: str) -> int:
    users = (await admin.get("/api/v1/users"))["users"]
    return int(next(u["id"] for u in users if u["username"] == username))


async def test_logout_closes_the_sockets_of_that_login_and_says_why(users):
    """The clerk logs out mid-session: its signalling socket gets login_ended in Chinese
    and closes with 4002 (a drop: the others see it reconnecting, the session goes on)."""
    clerk, approver = await users("chuangkou"), await users("shenpi")
    started, clerk_channel, approver_channel = await live_call(clerk, approver)
    try:
        await clerk.post("/api/v1/auth/logout")
        text = await closed_for(clerk_channel.socket, clerk_channel.received)
        assert "退出登录" in text and "请重新登录" in text
        await approver_channel.wait(
            "participants",
            lambda m: any(
                p["participant"] == "chuangkou" and p["state"] == "reconnecting"
                for p in m["participants"]
            ),
        )
        session = await approver.get(f"/api/v1/sessions/{started['session']['id']}")
        assert session["session"]["state"] == "live"
        await approver_channel.send(protocol.Ping())
        await approver_channel.wait("pong")
    finally:
        await clerk_channel.close()
        await approver_channel.close()


async def test_password_change_closes_the_other_logins_sockets_only(users, server, data_dir):
    """The approver changes its password in one login: the session socket of its other
    login closes; the queue socket of the login that changed it stays open."""
    clerk, approver = await users("chuangkou"), await users("shenpi")
    started, clerk_channel, approver_channel = await live_call(clerk, approver)
    second = ApiClient(str(server.make_url("")))
    old = demo_password(data_dir, "shenpi")
    await second.login("shenpi", old)
    queue = await QueueSocket.open(second)
    try:
        await second.post(
            "/api/v1/me/password", {"old_password": old, "new_password": "Changed-pass-2"}
        )
        text = await closed_for(approver_channel.socket, approver_channel.received)
        assert "密码已修改" in text
        await second.post(f"/api/v1/sessions/{started['session']['id']}/token")  # still valid
        await start_session(clerk)  # the department's queue changes: the socket is told
        await wait_until(lambda: len(queue.received) == 2, what="the queue socket still open")
        assert not queue.socket.closed
        await clerk_channel.send(protocol.Ping())
        await clerk_channel.wait("pong")
    finally:
        await queue.close()
        await second.close()
        await clerk_channel.close()
        await approver_channel.close()


async def test_disabling_or_resetting_an_account_closes_all_its_sockets(users):
    """An admin disables the approver: its signalling and queue sockets both close with
    login_ended; resetting the clerk's password closes the clerk's socket."""
    clerk, approver, admin = await users("chuangkou"), await users("shenpi"), await users("admin")
    _started, clerk_channel, approver_channel = await live_call(clerk, approver)
    queue = await QueueSocket.open(approver)
    try:
        await admin_form(admin, f"/admin/users/{await user_id(admin, 'shenpi')}/disable")
        assert "停用" in await closed_for(queue.socket, queue.received)
        assert "停用" in await closed_for(approver_channel.socket, approver_channel.received)

        await admin_form(admin, f"/admin/users/{await user_id(admin, 'chuangkou')}/reset-password")
        text = await closed_for(clerk_channel.socket, clerk_channel.received)
        assert "重置" in text
    finally:
        await queue.close()
        await clerk_channel.close()
        await approver_channel.close()


async def test_a_socket_closes_when_its_login_expires(aiohttp_server, data_dir):
    """A login session that expires while its signalling socket is open closes it with
    login_ended (登录已过期)."""
    settings = Settings(
        data_dir=data_dir, announced_addresses=("127.0.0.1",), session_hours=3 / 3600
    )
    server = await aiohttp_server(create_app(settings))
    clerk = ApiClient(str(server.make_url("")))
    try:
        await clerk.login("chuangkou", demo_password(data_dir, "chuangkou"))
        started = await start_session(clerk)
        channel = await SignalChannel.open(clerk, started["session"]["id"], started["token"])
        assert "过期" in await closed_for(channel.socket, channel.received)
        await channel.close()
    finally:
        await clerk.close()
