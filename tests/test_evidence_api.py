"""The evidence interfaces: ``GET /api/v1/cases/{case_no}/evidence`` builds recordings,
stills, actions, interruption and the log from the real store and tables, and
``GET /api/v1/evidence/{sha256}`` serves the stored bytes — both scoped like the case,
a file out of scope being 404 so that its existence does not leak.

Evidence rows are written here as the recorder writes them: bytes through
``EvidenceStore.put``, a row in ``evidence_files``."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import re
from typing import Any

import pytest
from aiohttp import web
from PIL import Image
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError

from signaling.storage.tables import cases, evidence_files, matter_materials
from signaling.web.appkeys import AUDIT, ENGINE, EVIDENCE, REVIEWS
from tests.helpers import Session
from webui.case_view import event_rows

EVIDENCE_TABLES = (
    "evidence_files",
    "review_consents",
    "material_marks",
    "case_decisions",
    "session_ratings",
    "followups",
)
"""Made append-only by migration 0014."""
WEBM_HEAD = b"\x1a\x45\xdf\xa3" + bytes(60)


def jpeg(width: int = 40, height: int = 30) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 180, 40)).save(out, "JPEG")
    return out.getvalue()


async def add_file(app: web.Application, case_no: str, data: bytes, role: str, **row: Any) -> str:
    """Store bytes and register them as evidence of the case, as the recorder does."""
    stored = await asyncio.to_thread(app[EVIDENCE].put, data)
    async with app[ENGINE].begin() as conn:
        case_id = await conn.scalar(select(cases.c.id).where(cases.c.case_no == case_no))
        await conn.execute(
            evidence_files.insert().values(
                sha256=stored.sha256,
                case_id=case_id,
                role=role,
                bytes=stored.bytes,
                meta=row.pop("meta", {}),
                created_at=dt.datetime.now(dt.UTC),
                **row,
            )
        )
    return stored.sha256


async def register_only(app: web.Application, case_no: str, sha256: str) -> None:
    """A row whose file is not in the store (lost or never written)."""
    async with app[ENGINE].begin() as conn:
        case_id = await conn.scalar(select(cases.c.id).where(cases.c.case_no == case_no))
        await conn.execute(
            evidence_files.insert().values(
                sha256=sha256,
                case_id=case_id,
                role="still",
                bytes=1,
                meta={},
                created_at=dt.datetime.now(dt.UTC),
            )
        )


async def demo_cases(clerk: Session) -> dict[str, str]:
    listed = (await (await clerk.get("/api/v1/cases")).json())["cases"]
    return {c["matter"]["code"]: c["case_no"] for c in listed}


async def json_of(response: Any, status: int = 200) -> Any:
    body = await response.json()
    assert response.status == status, body
    return body


async def start(clerk: Session, case_no: str) -> str:
    response = await clerk.post(f"/api/v1/cases/{case_no}/sessions", json={"consent": True})
    return str((await json_of(response, 201))["session"]["id"])


async def test_case_evidence_groups_recordings_stills_and_the_log(client, as_user):
    """Capture chunks and playable files come grouped per track with codec, kind and
    gaps (lost packets and outages from the files, recording_gap events not already
    there, the crash on the tracks it cut); stills carry size and
    material; the consent is there; interrupted follows the session's mark (a crash); the log
    is the case's chain in order and its head is the last hash (for the auditor; the clerk
    gets the events without the chain's numbering and hashes)."""
    app = client.app
    clerk = await as_user("chuangkou")
    case_no = (await demo_cases(clerk))["LZ-SCJG-0101"]
    session_id = await start(clerk, case_no)
    track = f"{session_id}:chuangkou:document:1"
    video = {"codec": "VP8", "kind": "video"}
    lost = {"reason": "lost", "from": 10.0, "to": 10.5, "seconds": 0.5}
    lost |= {"first_seq": 120, "last_seq": 124, "packets": 5}
    outage = {"reason": "outage", "from": 12.0, "to": 14.0, "seconds": 2.0}
    chunk1 = await add_file(
        app, case_no, b"capture-1", "capture", session_id=session_id, track=track,
        participant="chuangkou", source="document", seconds=10.0,
        meta={**video, "gaps": [lost, outage]},
    )  # fmt: skip
    play1 = await add_file(
        app, case_no, WEBM_HEAD + b"1", "playable", session_id=session_id, track=track,
        participant="chuangkou", source="document", seconds=10.0, derived_from=chunk1, meta=video,
    )  # fmt: skip
    chunk2 = await add_file(
        app, case_no, b"capture-2", "capture", session_id=session_id, track=track,
        participant="chuangkou", source="document", seconds=4.5, meta=video,
    )  # fmt: skip
    audio = await add_file(
        app, case_no, b"capture-audio", "capture", session_id=session_id,
        track=f"{session_id}:chuangkou:audio:1", participant="chuangkou", source="audio",
        seconds=14.5, meta={"codec": "opus"},
    )  # fmt: skip
    async with app[ENGINE].connect() as conn:
        material = (
            await conn.execute(
                select(matter_materials.c.id, matter_materials.c.name)
                .join(cases, cases.c.matter_id == matter_materials.c.matter_id)
                .where(cases.c.case_no == case_no)
                .order_by(matter_materials.c.position)
            )
        ).first()
    assert material is not None
    filed = {"id": material.id, "name": material.name}  # as the still upload files it
    still = await add_file(
        app, case_no, jpeg(), "still", session_id=session_id, participant="chuangkou",
        source="document", meta={"width": 40, "height": 30, "material": filed},
    )  # fmt: skip
    await app[AUDIT].append(
        "recording_gap", actor=None, case_no=case_no, session=session_id, track=track,
        reason="reconnect", seconds=2.0,
    )  # fmt: skip
    await app[AUDIT].append(
        "recording_gap",
        actor=None,
        case_no=case_no,
        session=session_id,
        track=track,
        **outage,
    )  # fmt: skip  the outage the capture logged, also in the chunk's meta
    await app[AUDIT].append(
        "track_ended", actor=None, case_no=case_no, session=session_id,
        track=f"{session_id}:chuangkou:audio:1",
    )  # fmt: skip
    await app[AUDIT].append(
        "session_interrupted", actor=None, case_no=case_no, session=session_id,
        last_packet_at=20.0, restarted_at=50.0, gap_seconds=30.0,
    )  # fmt: skip

    evidence = await json_of(await clerk.get(f"/api/v1/cases/{case_no}/evidence"))
    document, sound = evidence["recordings"]
    assert (document["participant"], document["source"], document["kind"]) == (
        "chuangkou",
        "document",
        "video",
    )
    assert document["codec"] == "VP8"
    assert [(f["sha256"], f["role"], f["seconds"]) for f in document["files"]] == [
        (chunk1, "capture", 10.0),
        (play1, "playable", 10.0),
        (chunk2, "capture", 4.5),
    ]
    assert document["files"][1]["derived_from"] == chunk1
    assert document["files"][0]["bytes"] == len(b"capture-1")
    assert document["gaps"][:2] == [lost, outage]
    assert [g["reason"] for g in document["gaps"][2:]] == ["reconnect", "interrupted"]
    assert {k: document["gaps"][3][k] for k in ("from", "to", "seconds")} == {
        "from": 20.0,
        "to": 50.0,
        "seconds": 30.0,
    }
    assert (sound["kind"], sound["codec"], sound["files"][0]["sha256"]) == ("audio", "opus", audio)
    assert sound["gaps"] == []
    assert evidence["stills"] == [
        {
            "sha256": still,
            "bytes": len(jpeg()),
            "width": 40,
            "height": 30,
            "material": material.id,
            "material_name": material.name,
            "participant": "chuangkou",
            "session": session_id,
            "created_at": evidence["stills"][0]["created_at"],
            "purged": False,
        }
    ]
    assert evidence["consent"]["session"] == session_id
    assert (evidence["marks"], evidence["decision"], evidence["rating"]) == ([], None, None)
    assert evidence["interrupted"] is False
    assert set(evidence["log"]) == {"events"}  # reviewers: what happened, not the chain
    assert {tuple(e) for e in evidence["log"]["events"]} == {("at", "kind", "actor", "detail")}
    auditor = await as_user("jiancha")
    log = (await json_of(await auditor.get(f"/api/v1/cases/{case_no}/evidence")))["log"]
    seen = [e["kind"] for e in log["events"] if e["actor"] != "jiancha"]
    assert seen == [e["kind"] for e in evidence["log"]["events"]]
    assert [e["case_seq"] for e in log["events"]] == list(range(1, len(log["events"]) + 1))
    assert log["events"][0]["kind"] == "case_created"
    assert log["head"] == log["events"][-1]["hash"]
    for earlier, later in zip(log["events"], log["events"][1:], strict=False):
        assert later["prev_hash"] == earlier["hash"]

    await app[REVIEWS].mark_interrupted(session_id, seconds=1.0)
    evidence = await json_of(await clerk.get(f"/api/v1/cases/{case_no}/evidence"))
    assert evidence["interrupted"] is True
    assert [s["interrupted"] for s in evidence["sessions"]] == [True]
    assert evidence["log"]["events"][-1]["kind"] == "session_interrupted"


async def test_both_evidence_endpoints_are_scoped_like_the_case(client, as_user):
    """Clerk of the outlet, approver of the department, a co-reviewing approver and the
    auditor get the evidence and the file (the auditor's view is logged); others get
    403 for the case and 404 for the file, as for a hash that is stored nowhere, a
    malformed one or a file shared by another case they may see only through that
    case; admins get 403 wrong_role for the case API but the file (the auditor's side:
    playback)."""
    app = client.app
    clerk = await as_user("chuangkou")
    by_matter = await demo_cases(clerk)
    scjg, rsj = by_matter["LZ-SCJG-0101"], by_matter["LZ-RSJ-0201"]
    image = jpeg()
    sha = await add_file(app, scjg, image, "still", meta={"width": 40, "height": 30})
    only_scjg = await add_file(app, scjg, jpeg(41, 30), "still", meta={})
    await add_file(app, rsj, image, "still", meta={})  # the same bytes, filed in both cases

    async def sees(session: Session, case_no: str, file: str) -> tuple[int, int]:
        case = await session.get(f"/api/v1/cases/{case_no}/evidence")
        got = await session.get(f"/api/v1/evidence/{file}")
        if got.status == 200:
            assert await got.read() == (image if file == sha else jpeg(41, 30))
        else:
            assert (await got.json())["error"]["code"] in ("evidence_not_found", "wrong_role")
        return case.status, got.status

    other_clerk, approver, other_approver = (
        await as_user("chuangkou_lz"),
        await as_user("shenpi"),
        await as_user("shenpi_rs"),
    )
    auditor, admin = await as_user("jiancha"), await as_user("admin")
    assert await sees(clerk, scjg, only_scjg) == (200, 200)
    assert await sees(approver, scjg, only_scjg) == (200, 200)
    assert await sees(auditor, scjg, only_scjg) == (200, 200)
    assert await sees(other_clerk, scjg, only_scjg) == (403, 404)
    assert await sees(other_approver, scjg, only_scjg) == (403, 404)
    assert await sees(other_approver, rsj, sha) == (200, 200)  # through its own case
    assert await sees(admin, scjg, only_scjg) == (403, 200)  # files for playback, no case API

    viewed = await app[AUDIT].events(f"case:{scjg}", kind="evidence_viewed")
    assert [(e.actor, e.detail["sha256"]) for e in viewed] == [
        ("jiancha", only_scjg),
        ("admin", only_scjg),  # an admin's read is logged like an auditor's
    ]

    for missing in ("0" * 64, "abc", only_scjg.upper()):
        response = await clerk.get(f"/api/v1/evidence/{missing}")
        assert (response.status, (await response.json())["error"]["code"]) == (
            404,
            "evidence_not_found",
        )
    lost = "f" * 64
    await register_only(app, scjg, lost)
    response = await clerk.get(f"/api/v1/evidence/{lost}")
    assert (response.status, (await response.json())["error"]["code"]) == (
        404,
        "evidence_missing",
    )
    response = await other_clerk.get(f"/api/v1/evidence/{lost}")
    assert (await response.json())["error"]["code"] == "evidence_not_found"

    # a co-reviewing approver of another department (联审) sees the case it joined
    session_id = await start(clerk, scjg)
    assert (await approver.post(f"/api/v1/sessions/{session_id}/accept")).status == 200
    invited = await approver.post(
        f"/api/v1/sessions/{session_id}/invite", json={"department": "LZ-RSJ"}
    )
    assert invited.status == 201
    joined = await other_approver.post(f"/api/v1/sessions/{session_id}/join-invitation")
    assert joined.status == 200
    assert await sees(other_approver, scjg, only_scjg) == (200, 200)


async def test_files_are_served_with_their_type_and_in_ranges(client, as_user):
    """A JPEG still is image/jpeg, a playable video webm video/webm, a playable audio
    webm audio/webm, a capture chunk application/octet-stream; a Range request gets
    206 with exactly those bytes."""
    app = client.app
    clerk = await as_user("chuangkou")
    case_no = (await demo_cases(clerk))["LZ-SCJG-0101"]
    image = jpeg()
    files = {
        "image/jpeg": await add_file(app, case_no, image, "still", meta={}),
        "video/webm": await add_file(
            app, case_no, WEBM_HEAD + b"v", "playable", source="document", meta={}
        ),
        "audio/webm": await add_file(
            app, case_no, WEBM_HEAD + b"a", "playable", source="audio", meta={}
        ),
        "application/octet-stream": await add_file(
            app, case_no, b"MJR00002chunk", "capture", source="face", meta={}
        ),
    }
    for expected, sha in files.items():
        response = await clerk.get(f"/api/v1/evidence/{sha}")
        assert response.status == 200
        assert response.content_type == expected
        assert response.headers["X-Content-Type-Options"] == "nosniff"
    part = await clerk.get(
        f"/api/v1/evidence/{files['image/jpeg']}", headers={"Range": "bytes=2-5"}
    )
    assert part.status == 206
    assert await part.read() == image[2:6]

    # An auditor's read is logged however it asks for the start of the file; a later
    # range of a read already logged is not (a player reading on).
    auditor = await as_user("jiancha")
    still = files["image/jpeg"]
    ranges = ("", "bytes=0-", "bytes=00-", "Bytes=0-", f"bytes=-{len(image)}", "bytes=2-5")
    for asked in ranges:
        headers = {"Range": asked} if asked else {}
        assert (await auditor.get(f"/api/v1/evidence/{still}", headers=headers)).status in (
            200,
            206,
        )
    viewed = await app[AUDIT].events(f"case:{case_no}", kind="evidence_viewed")
    assert len([e for e in viewed if e.detail["sha256"] == still]) == len(ranges) - 1


async def test_the_evidence_record_is_append_only(client, as_user):
    """The database refuses to change or remove a stored file's row or a consent (as it
    does for the log): a rewrite needs the triggers dropped first, which the signed log
    then exposes."""
    app = client.app
    clerk = await as_user("chuangkou")
    case_no = (await demo_cases(clerk))["LZ-SCJG-0101"]
    session_id = await start(clerk, case_no)
    await add_file(app, case_no, jpeg(), "still", session_id=session_id, meta={})
    statements = [
        "UPDATE evidence_files SET case_id = case_id + 1",
        "DELETE FROM evidence_files",
        "UPDATE review_consents SET session_id = 'x'",
        "DELETE FROM review_consents",
    ]
    for statement in statements:
        with pytest.raises(DBAPIError, match="append-only"):
            async with app[ENGINE].begin() as conn:
                await conn.exec_driver_sql(statement)
    async with app[ENGINE].connect() as conn:
        triggers = set(
            (await conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'trigger'"))
            .scalars()
            .all()
        )
    for table in (*EVIDENCE_TABLES, "followup_steps"):
        assert {f"{table}_no_update", f"{table}_no_delete"} <= triggers, table


def test_every_logged_event_reads_in_chinese_on_the_case_page():
    """Recording, still, snapshot and interruption events are described in Chinese on the
    case page (no raw English key: value pairs)."""
    samples = {
        "track_started": {"participant": "chuangkou", "source": "document"},
        "chunk_closed": {"participant": "chuangkou", "source": "face", "chunk": 0,
                         "packets": 310, "lost": 2, "sha256": "ab" * 32},
        "playable_derived": {"participant": "shenpi", "source": "audio",
                             "derived_from": "cd" * 32, "sha256": "ef" * 32},
        "recording_gap": {"participant": "chuangkou", "source": "audio", "seconds": 3.2,
                          "reason": "outage"},
        "still_captured": {"material": {"id": 1, "name": "营业执照正本"}, "size": "4000x3000",
                           "sha256": "12" * 32},
        "snapshot_taken": {"participant": "chuangkou", "source": "document", "sha256": "34" * 32},
        "session_interrupted": {"seconds": 4.0},
    }  # fmt: skip
    events = [
        {"case_seq": n, "at": "2026-11-29T02:00:00+00:00", "kind": kind, "actor": None,
         "detail": {"session": "s", "track": "t", **detail}}
        for n, (kind, detail) in enumerate(samples.items(), start=1)
    ]  # fmt: skip
    rows = event_rows(events)
    for row in rows:
        assert row["name"] != row["kind"], row
        assert re.search(r"[\u4e00-\u9fff]", row["text"]), row
        assert not re.search(r"\b[a-z_]+: ", row["text"]), row
    assert "营业执照正本，4000×3000" in rows[4]["text"]
