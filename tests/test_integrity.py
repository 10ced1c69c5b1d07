"""The integrity check (完整性校验) of a case recorded by a real ``coreview serve`` through
``coreview simulate``: whole evidence checks out; a changed stored file, a deleted one
and an edited event are each named exactly; only auditors and admins in scope may run
it, and each run is logged."""

from __future__ import annotations

import json
import os
import shutil
from typing import Any

import pytest

from coreview.simulate import ApiClient, ApiError
from recorder.problem_text import PROBLEM_TEXT
from tests.custody import database, evidence, logged_in, record_cases, stored_path
from tests.live import LiveServer

pytest_plugins = ("tests.live",)

TRIGGER = (
    "CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events "
    "BEGIN SELECT RAISE(ABORT, 'append-only'); END"
)


async def check(client: ApiClient, case_no: str) -> dict[str, Any]:
    result: dict[str, Any] = (await client.post(f"/api/v1/cases/{case_no}/integrity"))["integrity"]
    return result


def named(result: dict[str, Any]) -> set[tuple[str, str]]:
    return {(p["code"], p["where"]) for p in result["problems"]}


async def test_check_passes_then_names_each_tampering(live_server: LiveServer, tmp_path) -> None:
    """A recorded case: 所有证据完整 over every chunk, playable file, still and event,
    inside a signed checkpoint, logged as integrity_checked. Then, one at a time and
    undone after: a flipped byte in a capture chunk is hash_mismatch of that chunk, a
    removed still is file_missing of that still, an event's detail edited in the
    database (triggers dropped) is entry_altered of that event — and nothing else."""
    [case_no] = record_cases(live_server)
    found = await evidence(live_server, case_no)
    auditor = await logged_in(live_server, "jiancha")
    try:
        result = await check(auditor, case_no)
        assert (result["ok"], result["summary"], result["problems"]) == (True, "所有证据完整", [])
        files = {f["sha256"] for t in found["recordings"] for f in t["files"]}
        assert result["files"] == len(files) + len(found["stills"]) + len(found["snapshots"])
        assert result["events"] >= len(found["log"]["events"])
        assert result["checkpoint"]["tree_size"] > max(
            e["log_index"] for e in found["log"]["events"]
        )
        log = (await auditor.get(f"/api/v1/cases/{case_no}/evidence"))["log"]["events"]
        checked = [e for e in log if e["kind"] == "integrity_checked"]
        assert [(e["actor"], e["detail"]["ok"], e["detail"]["problems"]) for e in checked] == [
            ("jiancha", True, 0)
        ]

        chunk = next(
            f["sha256"] for t in found["recordings"] for f in t["files"] if f["role"] == "capture"
        )
        path = stored_path(live_server.data_dir, chunk)
        original = path.read_bytes()
        os.chmod(path, 0o600)
        path.write_bytes(original[:-1] + bytes([original[-1] ^ 0xFF]))
        result = await check(auditor, case_no)
        assert not result["ok"] and named(result) == {("hash_mismatch", f"capture {chunk}")}
        [problem] = result["problems"]
        assert problem["message"] == PROBLEM_TEXT["hash_mismatch"]
        assert problem["subject"].startswith("采集分段 ")
        path.write_bytes(original)

        still = found["stills"][0]["sha256"]
        path = stored_path(live_server.data_dir, still)
        aside = tmp_path / "still"
        shutil.move(path, aside)
        result = await check(auditor, case_no)
        assert named(result) == {("file_missing", f"still {still}")}
        shutil.move(aside, path)

        decision = next(e for e in log if e["kind"] == "decision_recorded")
        with database(live_server.data_dir) as db:
            db.execute("DROP TRIGGER audit_events_no_update")
            db.execute(
                "UPDATE audit_events SET detail = json_set(detail, '$.outcome', 'reject') "
                "WHERE log_index = ?",
                (decision["log_index"],),
            )
        try:
            result = await check(auditor, case_no)
            assert named(result) == {("entry_altered", f"case:{case_no} #{decision['case_seq']}")}
        finally:
            with database(live_server.data_dir) as db:
                db.execute(
                    "UPDATE audit_events SET detail = ? WHERE log_index = ?",
                    (json.dumps(decision["detail"], ensure_ascii=False), decision["log_index"]),
                )
                db.execute(TRIGGER)
        assert (await check(auditor, case_no))["ok"]
    finally:
        await auditor.close()


async def test_only_auditors_and_admins_in_scope(live_server: LiveServer) -> None:
    """A clerk (even of the case's outlet) is refused with 403 wrong_role, an auditor of
    another jurisdiction with 403 out_of_scope, both with nothing logged; an admin may
    run the check."""
    [case_no] = record_cases(live_server)
    admin = await logged_in(live_server, "admin")
    clerk = await logged_in(live_server, "chuangkou")
    elsewhere = ApiClient(live_server.url)
    try:
        await admin.post(
            "/api/v1/users",
            {
                "username": "yufeng",
                "display_name": "鱼峰区监察员",
                "role": "auditor",
                "jurisdiction": "450203",
                "password": "Jiancha2026ok",
                "temporary": False,
            },
        )
        await elsewhere.login("yufeng", "Jiancha2026ok")
        for client, code in ((clerk, "wrong_role"), (elsewhere, "out_of_scope")):
            with pytest.raises(ApiError) as refused:
                await check(client, case_no)
            assert (refused.value.status, refused.value.code) == (403, code)
        assert (await check(admin, case_no))["ok"]
        log = (await clerk.get(f"/api/v1/cases/{case_no}/evidence"))["log"]["events"]
        assert [e["actor"] for e in log if e["kind"] == "integrity_checked"] == ["admin"]
    finally:
        for client in (admin, clerk, elsewhere):
            await client.close()
