"""``coreview simulate``: synthetic participants that use only the public API and
protocol — log in, create a case, start and accept a review session, exchange stamped
media over aiortc, check what arrives, and print one JSON summary line."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from media.participant import SyntheticParticipant, make_sources
from signaling import identity, protocol


class ApiError(RuntimeError):
    def __init__(self, status: int, body: Any) -> None:
        error = body.get("error", {}) if isinstance(body, dict) else {}
        super().__init__(f"HTTP {status} {error.get('code', '')}: {error.get('message', body)}")
        self.status = status
        self.code = error.get("code", "")


class ApiClient:
    """A logged-in user: cookie session plus the CSRF header on every POST."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        # unsafe: keep cookies for IP-address hosts such as 127.0.0.1
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.csrf = ""
        self.user: dict[str, Any] = {}

    async def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        headers = {"X-CSRF-Token": self.csrf} if method == "POST" else {}
        async with self.http.request(
            method, self.base_url + path, json=body, headers=headers
        ) as response:
            data = await response.json()
            if response.status >= 400:
                raise ApiError(response.status, data)
            return data

    async def login(self, username: str, password: str) -> None:
        data = await self._call(
            "POST", "/api/v1/auth/login", {"username": username, "password": password}
        )
        self.csrf, self.user = data["csrf_token"], data["user"]

    async def get(self, path: str) -> Any:
        return await self._call("GET", path)

    async def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        return await self._call("POST", path, body or {})

    async def close(self) -> None:
        await self.http.close()


class SignalChannel:
    """One participant's signalling socket; keeps every message it received."""

    def __init__(self, socket: aiohttp.ClientWebSocketResponse) -> None:
        self.socket = socket
        self.received: list[dict[str, Any]] = []
        self._arrived = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, api: ApiClient, session_id: str, token: str) -> SignalChannel:
        url = f"{api.base_url}/api/v1/sessions/{session_id}/ws"
        channel = cls(await api.http.ws_connect(url))
        await channel.send(protocol.Join(token))
        await channel.wait("joined")
        return channel

    async def _read(self) -> None:
        async for raw in self.socket:
            if raw.type == aiohttp.WSMsgType.TEXT:
                self.received.append(json.loads(raw.data))
                self._arrived.set()
        self._arrived.set()

    async def send(self, message: protocol.Message) -> None:
        await self.socket.send_str(message.to_json())

    async def wait(
        self,
        kind: str,
        match: Callable[[dict[str, Any]], bool] = lambda _m: True,
        limit: float = 15.0,
    ) -> dict[str, Any]:
        """The first received message of ``kind`` (not yet taken) that ``match`` accepts."""
        deadline = time.monotonic() + limit
        while True:
            self._arrived.clear()
            for index, message in enumerate(self.received):
                if message.get("type") == kind and match(message):
                    return self.received.pop(index)
            if self.socket.closed and self._reader.done():
                raise ConnectionError(f"socket closed while waiting for {kind}")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no {kind} message within {limit} s")
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except TimeoutError:
                continue

    def latest(self, kind: str) -> dict[str, Any] | None:
        found = [m for m in self.received if m.get("type") == kind]
        return found[-1] if found else None

    async def close(self) -> None:
        await self.socket.close()
        await self._reader


async def connect_media(
    channel: SignalChannel, sources: tuple[str, ...], address: str = "127.0.0.1"
) -> SyntheticParticipant:
    peer = SyntheticParticipant(make_sources(sources), addresses=(address,))
    sdp, publish = await peer.offer()
    await channel.send(protocol.Offer(sdp, publish))
    answer = await channel.wait("answer")
    await peer.accept(answer["sdp"])
    return peer


def slot_for(channel: SignalChannel, participant: str, source: str) -> str | None:
    slots = channel.latest("slots")
    for mid, shown in (slots or {}).get("slots", {}).items():
        if shown == {"participant": participant, "source": source}:
            return str(mid)
    return None


@dataclass
class SessionReport:
    case_no: str = ""
    session_id: str = ""
    frames_sent: dict[str, int] = field(default_factory=dict)
    frames_received: dict[str, int] = field(default_factory=dict)
    first_frame_ms: dict[str, float] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


def demo_id_number(index: int) -> str:
    first17 = f"45020219{80 + index % 20:02d}0101{index % 1000:03d}"
    return first17 + identity.check_digit(first17)


async def run_session(
    url: str,
    clerk: tuple[str, str],
    approver: tuple[str, str],
    matter: str,
    seconds: float,
    index: int,
) -> SessionReport:
    """One whole session; what went wrong is in ``errors``, not raised."""
    report = SessionReport()
    clients = [ApiClient(url), ApiClient(url)]
    channels: list[SignalChannel] = []
    peers: list[SyntheticParticipant] = []
    try:
        clerk_api, approver_api = clients
        await clerk_api.login(*clerk)
        await approver_api.login(*approver)
        case = await clerk_api.post(
            "/api/v1/cases",
            {
                "matter": matter,
                "applicant_name": f"模拟申请人{index}",
                "id_number": demo_id_number(index),
                "phone": "13800000000",
                "notes": "coreview simulate",
            },
        )
        report.case_no = case["case"]["case_no"]
        started = await clerk_api.post(f"/api/v1/cases/{report.case_no}/sessions")
        session_id = report.session_id = started["session"]["id"]
        clerk_channel = await SignalChannel.open(clerk_api, session_id, started["token"])
        channels.append(clerk_channel)
        accepted = await approver_api.post(f"/api/v1/sessions/{session_id}/accept")
        approver_channel = await SignalChannel.open(approver_api, session_id, accepted["token"])
        channels.append(approver_channel)
        await clerk_channel.wait("state", lambda m: m["state"] == "live")
        began = time.monotonic()
        clerk_peer = await connect_media(clerk_channel, ("face", "document", "audio"))
        approver_peer = await connect_media(approver_channel, ("face", "audio"))
        peers += [clerk_peer, approver_peer]
        await asyncio.sleep(seconds)
        flows = [
            (approver_channel, approver_peer, clerk_peer, clerk[0], "face"),
            (approver_channel, approver_peer, clerk_peer, clerk[0], "document"),
            (clerk_channel, clerk_peer, approver_peer, approver[0], "face"),
        ]
        for channel, receiver, sender, who, source in flows:
            label = f"{who}.{source}"
            report.frames_sent[label] = getattr(sender.sources[source], "counter", 0)
            mid = slot_for(channel, who, source)
            got = receiver.received.get(mid or "")
            if got is None or not got.counters:
                report.errors.append(f"{label}: nothing received")
                continue
            report.frames_received[label] = len(got.counters)
            report.first_frame_ms[label] = round(((got.first_at or began) - began) * 1000, 1)
            if got.counters != sorted(got.counters):
                report.errors.append(f"{label}: frames out of order")
        await approver_channel.send(protocol.End())
        await clerk_channel.wait("state", lambda m: m["state"] == "ended")
    except (ApiError, ConnectionError, TimeoutError, aiohttp.ClientError, KeyError) as exc:
        report.errors.append(f"{type(exc).__name__}: {exc}")
    finally:
        for peer in peers:
            await peer.close()
        for channel in channels:
            await channel.close()
        for client in clients:
            await client.close()
    return report


async def simulate(
    url: str,
    clerk: tuple[str, str],
    approver: tuple[str, str],
    matter: str,
    sessions: int,
    seconds: float,
) -> dict[str, Any]:
    reports = await asyncio.gather(
        *(run_session(url, clerk, approver, matter, seconds, i) for i in range(sessions))
    )
    return {
        "sessions": len(reports),
        "ok": sum(1 for r in reports if not r.errors),
        "cases": [r.case_no for r in reports],
        "reports": [r.__dict__ for r in reports],
    }
