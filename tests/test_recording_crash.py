"""Crash safety: a real ``coreview serve`` killed with SIGKILL mid-session loses at most
the last second of each track; the next start recovers what was open."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from coreview.simulate import ApiClient, connect_media, slot_for
from recorder.chunkfile import SUFFIX
from signaling.review.run_marker import BEAT_SECONDS, MARKER_NAME
from tests.helpers import live_call, wait_until
from tests.live import LiveServer, start_server, stop_process

pytest_plugins = ("tests.live",)

KILL_AFTER_FRAMES = 12 * 15 + 10
"""Document frames the approver gets before the kill: past the first 10 s chunk."""


@contextlib.contextmanager
def database(data_dir: Path) -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(f"file:{data_dir / 'coreview.sqlite3'}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        yield conn
    finally:
        conn.close()


def query(data_dir: Path, sql: str, *args: Any) -> list[sqlite3.Row]:
    with database(data_dir) as conn:
        return list(conn.execute(sql, args))


def events(data_dir: Path, case_no: str) -> list[tuple[str, dict[str, Any]]]:
    found = query(
        data_dir,
        "SELECT kind, detail FROM audit_events WHERE chain = ? ORDER BY case_seq",
        f"case:{case_no}",
    )
    return [(row["kind"], json.loads(row["detail"])) for row in found]


async def close_all(peers: list[Any], channels: list[Any], clients: tuple[ApiClient, ...]) -> None:
    """Media peers, signalling channels (their server may be dead), then API clients."""
    for peer in peers:
        await peer.close()
    for channel in channels:
        with contextlib.suppress(ConnectionError, RuntimeError):
            await channel.close()
    for client in clients:
        await client.close()


def stored(data_dir: Path, sha256: str) -> Path:
    return data_dir / "evidence" / "sha256" / sha256[:2] / sha256


@pytest.mark.timeout(180)
async def test_sigkill_mid_session_loses_at_most_the_last_second(
    live_server: LiveServer, live_server_env: dict[str, str]
):
    """SIGKILL after 12 s: the closed chunks are intact (hash = name); the next start
    cuts each open chunk at its last whole packet, stores and converts it
    (chunk_recovered), its last packet within about a second of the kill; the session is
    marked interrupted with the gap."""
    data_dir = live_server.data_dir
    clerk, approver = ApiClient(live_server.url), ApiClient(live_server.url)
    peers: list[Any] = []
    channels: list[Any] = []
    restarted: LiveServer | None = None
    try:
        await clerk.login("chuangkou", live_server.password("chuangkou"))
        await approver.login("shenpi", live_server.password("shenpi"))
        started, clerk_channel, approver_channel = await live_call(clerk, approver)
        channels += [clerk_channel, approver_channel]
        session_id, case_no = started["session"]["id"], started["session"]["case_no"]
        peers.append(await connect_media(clerk_channel, ("face", "document", "audio")))
        peers.append(await connect_media(approver_channel, ("face", "audio")))
        await wait_until(lambda: slot_for(approver_channel, "chuangkou", "document") is not None)
        document = peers[1].received[slot_for(approver_channel, "chuangkou", "document")]
        await wait_until(
            lambda: len(document.counters) >= KILL_AFTER_FRAMES, limit=60, what="12 s of video"
        )
        closed_before = [
            (row["sha256"], row["track"])
            for row in query(
                data_dir, "SELECT sha256, track FROM evidence_files WHERE role = 'capture'"
            )
        ]
        killed_at = time.time()
        os.kill(live_server.process.pid, signal.SIGKILL)
        live_server.process.wait(timeout=10)
        open_files = list((data_dir / "evidence" / "incoming").glob(f"*{SUFFIX}"))
        assert len(open_files) == 5  # one open chunk per track

        restarted = start_server(
            data_dir, live_server.log_path, live_server.accounts, env=live_server_env
        )
        assert not list((data_dir / "evidence" / "incoming").glob(f"*{SUFFIX}"))
        captures = query(
            data_dir,
            "SELECT * FROM evidence_files WHERE role = 'capture' AND session_id = ?",
            session_id,
        )
        assert {r["track"] for r in captures} == {t for _, t in closed_before} and len(
            {t for _, t in closed_before}
        ) == 5  # every track had a closed chunk before the kill
        for row in captures:
            assert (
                hashlib.sha256(stored(data_dir, row["sha256"]).read_bytes()).hexdigest()
                == row["sha256"]
            )

        logged = events(data_dir, case_no)
        recovered = [d for k, d in logged if k == "chunk_recovered"]
        assert len(recovered) == 5
        for detail in recovered:
            assert detail["session"] == session_id and detail["packets"] > 0
            assert killed_at - detail["last_arrival"] < 1.5, detail["track"]
            assert detail["sha256"] in {r["sha256"] for r in captures}
        (interrupted,) = [d for k, d in logged if k == "session_interrupted"]
        assert 0 < interrupted["gap_seconds"] < 30
        (session,) = query(
            data_dir, "SELECT interrupted FROM review_sessions WHERE id = ?", session_id
        )
        assert session["interrupted"] == 1

        def all_converted() -> bool:
            found = query(data_dir, "SELECT * FROM evidence_files WHERE session_id = ?", session_id)
            derived = {r["derived_from"] for r in found if r["role"] == "playable"}
            return {r["sha256"] for r in found if r["role"] == "capture"} <= derived

        # recovered chunks, and closed ones whose conversion the kill cut short
        await wait_until(all_converted, limit=60, what="every chunk converted")
    finally:
        await close_all(peers, channels, (clerk, approver))
        if restarted is not None:
            stop_process(restarted.process)


@pytest.mark.timeout(120)
async def test_normal_shutdown_closes_and_converts_every_capture(live_server: LiveServer):
    """A server stopped normally (SIGTERM) mid-session closes each track's last chunk,
    stores and converts it before it exits: nothing is left open to recover."""
    data_dir = live_server.data_dir
    clerk, approver = ApiClient(live_server.url), ApiClient(live_server.url)
    peers: list[Any] = []
    channels: list[Any] = []
    try:
        await clerk.login("chuangkou", live_server.password("chuangkou"))
        await approver.login("shenpi", live_server.password("shenpi"))
        started, clerk_channel, approver_channel = await live_call(clerk, approver)
        channels += [clerk_channel, approver_channel]
        case_no = started["session"]["case_no"]
        peers.append(await connect_media(clerk_channel, ("face", "document", "audio")))
        peers.append(await connect_media(approver_channel, ("face", "audio")))
        await wait_until(lambda: slot_for(approver_channel, "chuangkou", "document") is not None)
        document = peers[1].received[slot_for(approver_channel, "chuangkou", "document")]
        await wait_until(lambda: len(document.counters) >= 45, limit=30, what="3 s of video")
        stop_process(live_server.process, deadline=60)
        assert live_server.process.returncode == 0
    finally:
        await close_all(peers, channels, (clerk, approver))
    assert not list((data_dir / "evidence" / "incoming").glob(f"*{SUFFIX}"))
    rows = query(data_dir, "SELECT role, sha256, derived_from FROM evidence_files")
    captures = {r["sha256"] for r in rows if r["role"] == "capture"}
    assert len(captures) == 5
    assert captures == {r["derived_from"] for r in rows if r["role"] == "playable"}
    logged = [kind for kind, _ in events(data_dir, case_no)]
    assert logged.count("chunk_closed") == 5 and logged.count("track_ended") == 5
    assert not (data_dir / MARKER_NAME).exists()  # a clean stop: nothing to call a crash


@pytest.mark.timeout(120)
async def test_a_killed_server_marks_its_live_sessions_interrupted_without_media(
    live_server: LiveServer, live_server_env: dict[str, str]
):
    """SIGKILL while a session is live but nothing is recording (no media yet): the next
    start still marks it interrupted (中断), its gap from the run marker's last beat, at
    most a beat before the kill; a session that had ended before is left alone."""
    data_dir = live_server.data_dir
    clerk, approver = ApiClient(live_server.url), ApiClient(live_server.url)
    channels: list[Any] = []
    restarted: LiveServer | None = None
    try:
        await clerk.login("chuangkou", live_server.password("chuangkou"))
        await approver.login("shenpi", live_server.password("shenpi"))
        ended, *earlier = await live_call(clerk, approver)
        channels += earlier
        await approver.post(f"/api/v1/sessions/{ended['session']['id']}/end")
        started, *more = await live_call(clerk, approver)
        channels += more
        session_id = started["session"]["id"]

        def listed() -> bool:
            marker = data_dir / MARKER_NAME
            return marker.exists() and session_id in json.loads(marker.read_text())["sessions"]

        await wait_until(listed, what="the session in the run marker")
        killed_at = time.time()
        os.kill(live_server.process.pid, signal.SIGKILL)
        live_server.process.wait(timeout=10)
        assert not list((data_dir / "evidence" / "incoming").glob(f"*{SUFFIX}"))

        restarted = start_server(
            data_dir, live_server.log_path, live_server.accounts, env=live_server_env
        )
        (interrupted,) = [
            d
            for k, d in events(data_dir, started["session"]["case_no"])
            if k == "session_interrupted"
        ]
        assert interrupted["session"] == session_id
        assert killed_at - BEAT_SECONDS - 1 < interrupted["last_seen_at"] <= killed_at
        assert 0 < interrupted["gap_seconds"] < 30
        flags = dict(query(data_dir, "SELECT id, interrupted FROM review_sessions"))
        assert (flags[session_id], flags[ended["session"]["id"]]) == (1, 0)
    finally:
        await close_all([], channels, (clerk, approver))
        if restarted is not None:
            stop_process(restarted.process)
