"""``coreview simulate``: synthetic participants that use only the public API and
protocol — log in, create a case, start a review session with the applicant's consent,
accept it, exchange stamped media over aiortc, chat, check what arrives, upload a
full-resolution still (a 4000×3000 page) with its hash, mark every required material,
decide (通过), end, rate (满意), and print one JSON summary line."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from media.participant import SyntheticParticipant, make_sources
from media.synthetic import document_page
from signaling import id_numbers
from signaling.review import protocol


class ApiError(RuntimeError):
    def __init__(self, status: int, body: Any) -> None:
        error = body.get("error", {}) if isinstance(body, dict) else {}
        super().__init__(f"HTTP {status} {error.get('code', '')}: {error.get('message', body)}")
        self.status = status
        self.code = error.get("code", "")
        self.message = error.get("message", "")


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

    async def upload(self, path: str, data: bytes, headers: dict[str, str]) -> Any:
        """POST a raw body (a still) with its headers."""
        async with self.http.post(
            self.base_url + path, data=data, headers={"X-CSRF-Token": self.csrf, **headers}
        ) as response:
            body = await response.json()
            if response.status >= 400:
                raise ApiError(response.status, body)
            return body

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
class TrackReport:
    """What one sender's track sent and what its receiver got, at the end of the run.

    ``sent`` is the sender's frame counter when the run ends (frames produced since it
    started, some before the receiver joined); ``lost`` counts the stamped counters
    missing between the first and the last one received; ``first_frame_ms`` is the time
    from the start of media (the clerk's offer) to the first decoded frame."""

    sent: int = 0
    received: int = 0
    lost: int = 0
    first_frame_ms: float | None = None
    frequency: float | None = None
    """Audio only: the tone heard (from a quarter to one second of audio), in Hz."""


@dataclass
class SessionReport:
    case_no: str = ""
    session_id: str = ""
    marks: int = 0
    """Materials marked (every required one of the matter)."""
    decision: str = ""
    rating: str = ""
    stills: list[str] = field(default_factory=list)
    """SHA-256 of each full-resolution still uploaded (and acknowledged by that hash)."""
    tracks: dict[str, TrackReport] = field(default_factory=dict)
    """By ``<publisher>.<source>``."""
    errors: list[str] = field(default_factory=list)


CHAT_TEXT = "请将营业执照原件放在高拍仪下。"
"""What the approver writes in the chat once media flows."""
TONE_HZ = 440.0
TONE_TOLERANCE_HZ = 20.0


def check_track(
    channel: SignalChannel,
    receiver: SyntheticParticipant,
    sender: SyntheticParticipant,
    publisher: str,
    source: str,
    began: float,
) -> tuple[TrackReport, list[str]]:
    """Report one flow and what is wrong with it: nothing received, counters out of
    order or repeated, a wrong tone."""
    label = f"{publisher}.{source}"
    track = TrackReport(sent=int(getattr(sender.sources[source], "counter", 0)))
    mid = slot_for(channel, publisher, source)
    got = receiver.received.get(mid or "")
    if got is None or got.first_at is None:
        return track, [f"{label}: nothing received"]
    track.first_frame_ms = round((got.first_at - began) * 1000, 1)
    errors = []
    if source == "audio":
        track.received = got.audio_frames
        track.frequency = got.frequency
        if got.frequency is not None and abs(got.frequency - TONE_HZ) > TONE_TOLERANCE_HZ:
            errors.append(f"{label}: tone at {got.frequency:.0f} Hz, not {TONE_HZ:.0f} Hz")
    else:
        counters = got.counters
        track.received = len(counters)
        track.lost = counters[-1] - counters[0] + 1 - len(set(counters))
        if any(b <= a for a, b in itertools.pairwise(counters)):
            errors.append(f"{label}: frames out of order or repeated")
    return track, errors


def demo_id_number(index: int) -> str:
    first17 = f"45020219{80 + index % 20:02d}0101{index % 1000:03d}"
    return first17 + id_numbers.check_digit(first17)


async def take_still(
    clerk: ApiClient, session_id: str, material: dict[str, Any], index: int
) -> str:
    """The clerk's page's part: a 4000×3000 page, hashed, uploaded for a material."""
    page = await asyncio.to_thread(document_page, 4000, 3000, index)
    digest = hashlib.sha256(page).hexdigest()
    stored = await clerk.upload(
        f"/api/v1/sessions/{session_id}/stills?material={material['id']}",
        page,
        {"Content-Type": "image/jpeg", "X-Still-SHA256": digest},
    )
    if stored["still"]["sha256"] != digest:
        raise ValueError(f"still stored as {stored['still']['sha256']}, sent {digest}")
    return digest


async def review_actions(
    approver: ApiClient, clerk: ApiClient, session_id: str, report: SessionReport, index: int
) -> None:
    """A still of the first required material, then the approver marks every required
    material 齐全 and decides 通过."""
    base = f"/api/v1/sessions/{session_id}"
    materials = (await approver.get(f"{base}/actions"))["materials"]
    required = [m for m in materials if m["required"]]
    if required:
        report.stills.append(await take_still(clerk, session_id, required[0], index))
    for material in materials:
        if material["required"]:
            await approver.post(f"{base}/marks", {"material": material["id"], "mark": "complete"})
            report.marks += 1
    decided = await approver.post(f"{base}/decision", {"outcome": "approve"})
    report.decision = decided["decision"]["outcome"]


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
        started = await clerk_api.post(
            f"/api/v1/cases/{report.case_no}/sessions", {"consent": True}
        )
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
        await approver_channel.send(protocol.Chat(CHAT_TEXT))
        await approver_channel.wait("chat_posted", lambda m: m["text"] == CHAT_TEXT)
        await asyncio.sleep(seconds)
        flows = [
            (approver_channel, approver_peer, clerk_peer, clerk[0], "face"),
            (approver_channel, approver_peer, clerk_peer, clerk[0], "document"),
            (approver_channel, approver_peer, clerk_peer, clerk[0], "audio"),
            (clerk_channel, clerk_peer, approver_peer, approver[0], "face"),
            (clerk_channel, clerk_peer, approver_peer, approver[0], "audio"),
        ]
        for channel, receiver, sender, who, source in flows:
            track, errors = check_track(channel, receiver, sender, who, source, began)
            report.tracks[f"{who}.{source}"] = track
            report.errors += errors
        await review_actions(approver_api, clerk_api, session_id, report, index)
        await approver_channel.send(protocol.End())
        await clerk_channel.wait("state", lambda m: m["state"] == "ended")
        rated = await clerk_api.post(
            f"/api/v1/sessions/{session_id}/rating", {"score": "satisfied"}
        )
        report.rating = rated["rating"]["score"]
    except (ApiError, OSError, aiohttp.ClientError, KeyError, ValueError) as exc:
        report.errors.append(f"{type(exc).__name__}: {exc}")
    finally:
        for peer in peers:
            await peer.close()
        for channel in channels:
            await channel.close()
        for client in clients:
            await client.close()
    return report


LOGIN_TIMEOUT = 20.0
"""Seconds the first login may take before the URL counts as unreachable."""


class SimulateError(Exception):
    """The run cannot start. ``code``: ``unreachable`` (no HTTP answer at the URL),
    ``not_coreview`` (an answer, but not coreview's API), ``login_failed`` (``detail``
    has the server's message), ``wrong_role``; ``account`` names the account concerned."""

    def __init__(self, code: str, account: str = "", detail: str = "") -> None:
        super().__init__(f"{code} {account}: {detail}".strip())
        self.code = code
        self.account = account
        self.detail = detail


async def check_account(url: str, account: tuple[str, str], role: str) -> None:
    """Log in once before any session starts, so that a wrong URL or password is one
    clear error rather than the same failure in every session."""
    client = ApiClient(url)
    try:
        async with asyncio.timeout(LOGIN_TIMEOUT):
            await client.login(*account)
    except ApiError as exc:
        raise SimulateError("login_failed", account[0], str(exc.message)) from exc
    except (aiohttp.ContentTypeError, ValueError, KeyError, TypeError) as exc:
        raise SimulateError("not_coreview", account[0], str(exc)) from exc
    except (aiohttp.ClientError, OSError) as exc:
        raise SimulateError("unreachable", account[0], str(exc) or type(exc).__name__) from exc
    finally:
        await client.close()
    if client.user.get("role") != role:
        raise SimulateError("wrong_role", account[0], str(client.user.get("role")))


async def simulate(
    url: str,
    clerk: tuple[str, str],
    approver: tuple[str, str],
    matter: str,
    sessions: int,
    seconds: float,
) -> dict[str, Any]:
    """Run ``sessions`` sessions at once; the summary says which were clean (every
    track arrived, in order, with the right tone; no error). Raises ``SimulateError``
    if the accounts cannot log in."""
    await check_account(url, clerk, "clerk")
    await check_account(url, approver, "approver")
    started = time.monotonic()
    reports = await asyncio.gather(
        *(run_session(url, clerk, approver, matter, seconds, i) for i in range(sessions))
    )
    clean = sum(1 for r in reports if not r.errors)
    return {
        "sessions": len(reports),
        "clean": clean,
        "all_clean": clean == len(reports),
        "seconds": seconds,
        "elapsed_s": round(time.monotonic() - started, 1),
        "cases": [r.case_no for r in reports],
        "reports": [dataclasses.asdict(r) for r in reports],
    }
