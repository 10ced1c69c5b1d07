"""``coreview simulate`` against a real ``coreview serve`` process: concurrent review
sessions through the public API and protocol, stamped media both ways, one JSON line;
bad arguments end with a clear Chinese message and an exit code, not a traceback."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from coreview.simulate import ApiClient
from tests.helpers import wait_until
from tests.live import LiveServer, free_port, server_env

pytest_plugins = ("tests.live",)

SIMULATE_SECONDS = 90.0
"""Deadline for one simulate process (3 sessions of 3 s take ~10 s)."""
TRACKS = {
    "chuangkou.face",
    "chuangkou.document",
    "chuangkou.audio",
    "shenpi.face",
    "shenpi.audio",
}


def simulate(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "coreview.cli", "simulate", *args],
        capture_output=True,
        text=True,
        timeout=SIMULATE_SECONDS,
        env=server_env(env),
        check=False,
    )


def account(server: LiveServer, username: str) -> str:
    return f"{username}:{server.password(username)}"


def simulated(server: LiveServer, seconds: float, sessions: int = 1) -> dict[str, Any]:
    """The report of a clean ``coreview simulate`` run of the demo clerk and approver."""
    done = simulate(
        "--url",
        server.url,
        "--clerk",
        account(server, "chuangkou"),
        "--approver",
        account(server, "shenpi"),
        "--sessions",
        str(sessions),
        "--seconds",
        str(seconds),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return dict(json.loads(done.stdout))


async def session_states(server: LiveServer, session_ids: list[str]) -> list[str]:
    """The state of each review session, as the clerk sees it through the API."""
    clerk = ApiClient(server.url)
    try:
        await clerk.login("chuangkou", server.password("chuangkou"))
        return [
            (await clerk.get(f"/api/v1/sessions/{session_id}"))["session"]["state"]
            for session_id in session_ids
        ]
    finally:
        await clerk.close()


def test_three_concurrent_sessions_are_clean(live_server: LiveServer) -> None:
    """Three sessions at once: each creates its own case, every track (clerk's face,
    document and tone, approver's face and tone) arrives with increasing counters, the
    summary is one JSON line, the exit code is 0, every session ended, and each was
    reviewed: required materials marked, decided 通过, rated 满意."""
    done = simulate(
        "--url",
        live_server.url,
        "--clerk",
        account(live_server, "chuangkou"),
        "--approver",
        account(live_server, "shenpi"),
        "--sessions",
        "3",
        "--seconds",
        "3",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 1, done.stdout
    summary = json.loads(lines[0])
    assert (summary["sessions"], summary["clean"], summary["all_clean"]) == (3, 3, True)
    assert len(set(summary["cases"])) == 3
    for report in summary["reports"]:
        assert report["errors"] == []
        assert set(report["tracks"]) == TRACKS
        for label, track in report["tracks"].items():
            assert track["received"] > 0, label
            assert 0 < track["received"] <= track["sent"], label
        assert abs(report["tracks"]["chuangkou.audio"]["frequency"] - 440) < 20
        assert (report["decision"], report["rating"]) == ("approve", "satisfied")
        assert report["marks"] >= 1
        assert len(report["stills"]) == 1
    session_ids = [report["session_id"] for report in summary["reports"]]
    assert asyncio.run(session_states(live_server, session_ids)) == ["ended"] * 3
    for report in summary["reports"]:
        evidence = asyncio.run(complete_evidence(live_server, report["case_no"]))
        assert_complete(evidence, report)


async def complete_evidence(server: LiveServer, case_no: str) -> dict[str, Any]:
    """The case's evidence as the auditor reads it, once every capture chunk has its
    playable file (conversion runs in a worker after each chunk closes)."""
    auditor = ApiClient(server.url)
    evidence: dict[str, Any] = {}

    async def converted() -> bool:
        evidence.update(await auditor.get(f"/api/v1/cases/{case_no}/evidence"))
        roles = [f["role"] for t in evidence["recordings"] for f in t["files"]]
        return bool(roles) and roles.count("playable") == roles.count("capture")

    try:
        await auditor.login("jiancha", server.password("jiancha"))
        await wait_until(converted, limit=60, what="every chunk converted")
        return evidence
    finally:
        await auditor.close()


def assert_complete(evidence: dict[str, Any], report: dict[str, Any]) -> None:
    """A simulated case is whole evidence: every published track recorded (capture and
    playable), the full-resolution still as uploaded, consent, marks, the decision, the
    rating, not interrupted, and a log whose head is its last event."""
    recorded = {f"{t['participant']}.{t['source']}" for t in evidence["recordings"]}
    assert recorded == TRACKS
    for track in evidence["recordings"]:
        assert {f["role"] for f in track["files"]} == {"capture", "playable"}, track
    [still] = evidence["stills"]
    assert (still["sha256"], still["width"], still["height"]) == (report["stills"][0], 4000, 3000)
    assert still["material_name"]
    assert evidence["consent"] is not None
    assert len(evidence["marks"]) == report["marks"]
    assert evidence["decision"]["outcome"] == "approve"
    assert evidence["rating"]["score"] == "satisfied"
    assert evidence["interrupted"] is False
    kinds = {e["kind"] for e in evidence["log"]["events"]}
    assert kinds >= {
        "consent_recorded",
        "still_captured",
        "material_marked",
        "decision_recorded",
        "rating_recorded",
        "track_started",
        "chunk_closed",
        "playable_derived",
    }
    assert evidence["log"]["head"] == evidence["log"]["events"][-1]["hash"]


def test_wrong_password_is_a_clear_error(live_server: LiveServer) -> None:
    """A wrong password: exit code 1, the server's Chinese reason on stderr, no
    traceback, nothing on stdout, and the password given is not echoed."""
    done = simulate(
        "--url",
        live_server.url,
        "--clerk",
        "chuangkou:not-the-password",
        "--approver",
        account(live_server, "shenpi"),
    )
    assert done.returncode == 1
    assert done.stdout == ""
    assert "chuangkou 登录失败：用户名或密码错误" in done.stderr
    assert "Traceback" not in done.stderr
    assert "not-the-password" not in done.stderr


@pytest.mark.parametrize(
    ("url", "clerk", "code", "said"),
    [
        ("http://127.0.0.1:{port}", "chuangkou", 2, "--clerk 应写作 用户名:密码"),
        ("http://127.0.0.1:{port}", "chuangkou:", 2, "--clerk 应写作 用户名:密码"),
        ("127.0.0.1:{port}", "chuangkou:pw", 2, "--url 应为 http:// 或 https://"),
        ("http://127.0.0.1:{port}", "chuangkou:pw", 1, "无法连接服务"),
    ],
    ids=["no-colon", "empty-password", "no-scheme", "nothing-listening"],
)
def test_bad_arguments_are_clear_errors(url: str, clerk: str, code: int, said: str) -> None:
    """Malformed USER:PASS or URL, or no server at the URL: a Chinese message on
    stderr, exit code 2 (arguments) or 1 (could not start), no traceback."""
    done = simulate(
        "--url", url.format(port=free_port()), "--clerk", clerk, "--approver", "shenpi:pw"
    )
    assert done.returncode == code, done.stderr
    assert said in done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""


def test_accounts_from_the_environment_and_a_private_file(
    live_server: LiveServer, tmp_path: Path
) -> None:
    """Passwords need not be on the command line (where ``ps`` shows them): the clerk
    from COREVIEW_SIMULATE_CLERK, the approver from a 0600 file given by --approver-file;
    the session runs clean and no password is in the command's arguments."""
    secret = tmp_path / "approver.txt"
    secret.write_text(account(live_server, "shenpi") + "\n", "utf-8")
    secret.chmod(0o600)
    args = ("--url", live_server.url, "--approver-file", str(secret), "--seconds", "1")
    done = simulate(*args, env={"COREVIEW_SIMULATE_CLERK": account(live_server, "chuangkou")})
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["all_clean"] is True
    for username in ("chuangkou", "shenpi"):
        assert all(live_server.password(username) not in arg for arg in args)


@pytest.mark.parametrize(
    ("mode", "content", "env", "said"),
    [
        (0o644, "chuangkou:s3cret-pw\n", {}, "权限过宽"),
        (None, "", {}, "无法读取 --clerk-file"),
        (0o600, "\n", {}, "--clerk-file 应写作 用户名:密码"),
        (
            0o600,
            "chuangkou:s3cret-pw\n",
            {"COREVIEW_SIMULATE_APPROVER": "shenpi"},
            ("COREVIEW_SIMULATE_APPROVER 应写作 用户名:密码"),
        ),
    ],
    ids=["group-readable-file", "missing-file", "empty-file", "malformed-environment"],
)
def test_bad_account_sources_are_clear_errors(
    tmp_path: Path, mode: int | None, content: str, env: dict[str, str], said: str
) -> None:
    """An account file others may read, a missing or empty one, or a malformed
    COREVIEW_SIMULATE_* value: exit code 2 with a Chinese message, no traceback."""
    secret = tmp_path / "clerk.txt"
    if mode is not None:
        secret.write_text(content, "utf-8")
        secret.chmod(mode)
    url = f"http://127.0.0.1:{free_port()}"
    extra = env or {"COREVIEW_SIMULATE_APPROVER": "shenpi:s3cret-pw"}
    done = simulate("--url", url, "--clerk-file", str(secret), env=extra)
    assert done.returncode == 2, done.stderr
    assert said in done.stderr
    assert "Traceback" not in done.stderr and "s3cret-pw" not in done.stderr


def test_a_missing_account_names_every_way_to_give_it() -> None:
    """No clerk account at all: exit code 2 and a message naming the environment
    variable and the file option."""
    done = simulate("--url", f"http://127.0.0.1:{free_port()}", "--approver", "shenpi:pw")
    assert done.returncode == 2
    assert "缺少窗口人员账户" in done.stderr and "COREVIEW_SIMULATE_CLERK" in done.stderr
    assert "--clerk-file" in done.stderr and "Traceback" not in done.stderr
