"""The log in the running service: checkpoints every interval, at session end and on
demand (API and CLI), verification and key rotation from the command line, and the
witness file setting."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from coreview.app import create_app
from recorder.auditlog import GENESIS, AuditEvent, seal
from recorder.clock import SystemClock
from signaling.node.services import open_services
from signaling.settings import Settings, SettingsError, load_settings
from signaling.web.appkeys import AUDIT
from signaling.web.messages import message, problem_name
from tests.helpers import demo_password, login, start_session, wait_until


def coreview(
    *args: str, witness: str | None = None, **settings: str
) -> subprocess.CompletedProcess[str]:
    """The CLI in a child process, with settings as COREVIEW_* variables."""
    env = {**os.environ, **{f"COREVIEW_{k.upper()}": v for k, v in settings.items()}}
    if witness:
        env["COREVIEW_WITNESS_FILE"] = witness
    return subprocess.run(
        [sys.executable, "-m", "coreview.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )


async def test_checkpoints_are_signed_periodically_while_events_arrive(aiohttp_client, data_dir):
    """With a short interval, an event is covered by a signed checkpoint soon after,
    without anyone asking; the task stops with the app."""
    client = await aiohttp_client(create_app(Settings(data_dir=data_dir, checkpoint_seconds=0.1)))
    audit = client.app[AUDIT]
    event = await audit.append("login", actor="probe")

    async def covered() -> bool:
        latest = await audit.latest_checkpoint()
        return latest is not None and latest.tree_size > event.log_index

    await wait_until(covered, what="a periodic checkpoint")


async def test_a_session_end_signs_a_checkpoint(server, users):
    """Ending a live session signs a checkpoint that covers its session_ended event."""
    clerk, approver = await users("chuangkou"), await users("shenpi")
    started = await start_session(clerk)
    session_id = started["session"]["id"]
    await approver.post(f"/api/v1/sessions/{session_id}/accept")
    audit = server.app[AUDIT]
    before = await audit.latest_checkpoint()
    await approver.post(f"/api/v1/sessions/{session_id}/end")
    ended = await audit.events(f"case:{started['session']['case_no']}", kind="session_ended")
    latest = await audit.latest_checkpoint()
    assert latest is not None and latest != before
    assert latest.tree_size > ended[0].log_index


async def test_auditors_sign_checkpoints_on_demand(client, as_user):
    """POST /api/v1/log/checkpoints: 201 with the checkpoint for an auditor, refused for
    a clerk; the signed root matches the stored log."""
    auditor = await as_user("jiancha")
    response = await auditor.post("/api/v1/log/checkpoints")
    assert response.status == 201
    checkpoint = (await response.json())["checkpoint"]
    assert checkpoint["tree_size"] == await client.app[AUDIT].size()
    assert checkpoint == (await client.app[AUDIT].latest_checkpoint()).to_dict()
    clerk = await as_user("chuangkou")
    refused = await clerk.post("/api/v1/log/checkpoints")
    assert (refused.status, (await refused.json())["error"]["code"]) == (403, "wrong_role")


def test_cli_checkpoint_verify_and_rotate(data_dir):
    """`coreview log checkpoint`, `log verify`, `keys rotate` and `keys list` work on a
    data dir;
    verify exits 1 naming an edited entry, and once the attacker re-hashes it, the
    signed checkpoint it contradicts; no checkpoint is signed over the rewritten log."""
    signed = coreview("log", "checkpoint", "--data-dir", str(data_dir))
    assert signed.returncode == 0, signed.stderr
    checkpoint = json.loads(signed.stdout)["checkpoint"]
    assert len(checkpoint["signature"]) == 128
    rotated = coreview("keys", "rotate", "--data-dir", str(data_dir))
    assert rotated.returncode == 0 and "已轮换" in rotated.stdout, rotated.stderr
    listed = coreview("keys", "list", "--data-dir", str(data_dir)).stdout.splitlines()
    assert len(listed) == 2 and listed[0].startswith(checkpoint["key_id"] + "  自 "), listed
    verified = coreview("log", "verify", "--data-dir", str(data_dir))
    assert verified.returncode == 0 and "验证通过" in verified.stdout, verified.stdout

    with sqlite3.connect(data_dir / "coreview.sqlite3") as db:  # an attacker's edit
        db.execute("DROP TRIGGER audit_events_no_update")
        db.execute("UPDATE audit_events SET actor = 'mallory' WHERE log_index = 0")
    altered = coreview("log", "verify", "--data-dir", str(data_dir))
    assert altered.returncode == 1
    assert "✗ log_index 0：条目内容与其哈希不符" in altered.stdout, altered.stdout

    event = asyncio.run(_first_event(data_dir))  # re-hashed, so the chain hides it
    forged = seal(
        0,
        event.chain,
        1,
        GENESIS,
        dt.datetime.fromisoformat(event.at),
        event.kind,
        "mallory",
        event.detail,
    )
    with sqlite3.connect(data_dir / "coreview.sqlite3") as db:
        db.execute("UPDATE audit_events SET hash = ? WHERE log_index = 0", (forged.hash,))
    rehashed = coreview("log", "verify", "--data-dir", str(data_dir))
    assert rehashed.returncode == 1 and "签名检查点不符" in rehashed.stdout
    refused = coreview("log", "checkpoint", "--data-dir", str(data_dir))
    assert refused.returncode == 1 and "已停止签名" in refused.stderr


async def _first_event(data_dir: Path) -> AuditEvent:
    async with open_services(Settings(data_dir=data_dir), SystemClock()) as services:
        return (await services.audit.all_events())[0]


async def _last_event(data_dir: Path) -> AuditEvent:
    async with open_services(Settings(data_dir=data_dir), SystemClock()) as services:
        return (await services.audit.all_events())[-1]


def test_witness_file_inside_the_data_dir_is_refused(tmp_path):
    """A witness file under the data directory is a clear settings error (it would be
    lost with the server); outside it, or empty (off), it is accepted."""
    with pytest.raises(SettingsError, match="数据目录"):
        Settings(data_dir=tmp_path / "var", witness_file=tmp_path / "var" / "w.jsonl")
    environ = {"COREVIEW_WITNESS_FILE": str(tmp_path / "elsewhere" / "w.jsonl")}
    assert load_settings(environ=environ).witness_file == tmp_path / "elsewhere" / "w.jsonl"
    assert load_settings(environ={"COREVIEW_WITNESS_FILE": ""}).witness_file is None
    inside = coreview(
        "log",
        "checkpoint",
        "--data-dir",
        str(tmp_path / "var"),
        witness=str(tmp_path / "var" / "w"),
    )
    assert inside.returncode == 2 and "数据目录" in inside.stderr
    assert not (tmp_path / "var").exists()  # refused before anything was created


def test_a_wiped_server_leaves_the_witness_copy(tmp_path):
    """Each checkpoint lands in the witness file outside the data dir as a JSON line
    whose signature verifies with the public key it carries, after the data dir is gone."""
    witness = tmp_path / "witness" / "coreview.jsonl"
    for _ in range(2):
        result = coreview(
            "log", "checkpoint", "--data-dir", str(tmp_path / "var"), witness=str(witness)
        )
        assert result.returncode == 0, result.stderr
    signed = [
        json.loads(line)["checkpoint"]
        for line in [coreview("log", "checkpoint", "--data-dir", str(tmp_path / "var")).stdout]
    ]
    for path in sorted((tmp_path / "var").rglob("*"), reverse=True):  # the server is wiped
        path.unlink() if path.is_file() else path.rmdir()
    lines = [json.loads(line) for line in witness.read_text().splitlines()]
    assert len(lines) == 2 and lines[1]["tree_size"] <= signed[0]["tree_size"]
    for line in lines:
        public = Ed25519PublicKey.from_public_bytes(bytes.fromhex(line["public_key"]))
        statement = {k: line[k] for k in ("tree_size", "root", "time", "key_id")}
        public.verify(bytes.fromhex(line["signature"]), rfc8785.dumps(statement))


def test_cli_verify_reads_the_witness_file(data_dir, tmp_path):
    """`coreview log verify` checks the witness file (setting or --witness): after the
    owner re-hashes an event and deletes the stored checkpoints, the database alone
    passes (with a warning that it proves little) but verify exits 1 naming the
    witnessed checkpoint the log contradicts and the one that is gone."""
    witness = tmp_path / "witness" / "w.jsonl"
    signed = coreview("log", "checkpoint", "--data-dir", str(data_dir), witness=str(witness))
    assert signed.returncode == 0, signed.stderr
    event = asyncio.run(_last_event(data_dir))  # the last: no later link to mend
    at = dt.datetime.fromisoformat(event.at)
    forged = seal(
        event.log_index, event.chain, event.case_seq, event.prev_hash, at, event.kind, "m", {}
    )
    with sqlite3.connect(data_dir / "coreview.sqlite3") as db:
        for sql in (
            "DROP TRIGGER audit_events_no_update",
            "DROP TRIGGER log_checkpoints_no_delete",
            "DELETE FROM log_checkpoints",
        ):
            db.execute(sql)
        db.execute(
            "UPDATE audit_events SET actor = 'm', detail = '{}', hash = ? WHERE log_index = ?",
            (forged.hash, event.log_index),
        )
    # the demo events may be minutes old by now: allow them unsigned that long, so the
    # database alone shows no problem at all (no_checkpoint: test_log_faults.py)
    alone = coreview("log", "verify", "--data-dir", str(data_dir), checkpoint_seconds="86400")
    assert alone.returncode == 0 and "未设置见证文件" in alone.stdout, alone.stdout
    for verified in (
        coreview("log", "verify", "--data-dir", str(data_dir), witness=str(witness)),
        coreview("log", "verify", "--data-dir", str(data_dir), "--witness", str(witness)),
    ):
        assert verified.returncode == 1, verified.stdout
        assert "✗ witness line 1 (size" in verified.stdout
        assert problem_name("witness_mismatch") in verified.stdout
        assert problem_name("checkpoint_missing") in verified.stdout


async def test_a_checkpoint_signed_but_not_witnessed_answers_201_with_a_warning(
    aiohttp_client, data_dir, tmp_path
):
    """POST /api/v1/log/checkpoints when the witness file cannot be written: 201 with the
    stored checkpoint and a witness_unwritten warning (not a 500)."""
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the witness directory should be")
    settings = Settings(data_dir=data_dir, witness_file=blocked / "w.jsonl")
    client = await aiohttp_client(create_app(settings))
    auditor = await login(client, "jiancha", demo_password(data_dir, "jiancha"))
    response = await auditor.post("/api/v1/log/checkpoints")
    body = await response.json()
    assert response.status == 201, body
    assert body["checkpoint"] == (await client.app[AUDIT].latest_checkpoint()).to_dict()
    assert body["warning"] == {"code": "witness_unwritten", "message": message("witness_unwritten")}
