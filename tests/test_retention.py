"""Retention (保存期限) and legal hold (法律保全) on cases recorded by a real server:
``coreview retention run`` deletes only the media of cases past retention and not on
hold, logs a tombstone before each deletion (a crash between the two is finished by
the next run), keeps a file another case still needs, and keeps every row and event;
the integrity check then lists the deleted files as purged, not as missing."""

from __future__ import annotations

import asyncio
import datetime as dt
import subprocess
from collections import Counter
from typing import Any

import pytest
from sqlalchemy import func, select, update

from coreview.simulate import ApiError
from recorder.auditlog import chain_of
from recorder.problem_text import PROBLEM_TEXT
from recorder.store import EvidenceStore
from signaling.custody.integrity import CaseIntegrity
from signaling.custody.purge import run_retention
from signaling.custody.retention import LEASE_MINUTES, LegalHolds, RetentionLease, retention_until
from signaling.node.services import open_services
from signaling.settings import Settings
from signaling.storage.tables import audit_events, cases, evidence_files, matters
from signaling.web.errors import Conflict
from signaling.web.messages import message
from tests.custody import evidence, logged_in, record_cases
from tests.helpers import ManualClock
from tests.live import LiveServer, coreview_command, server_env, stop_process

pytest_plugins = ("tests.live",)


def test_retention_until_counts_years_from_the_end_in_china_time() -> None:
    """The end's China date plus the years; 29 February falls on 28 February."""
    late = dt.datetime(2026, 3, 1, 17, 0, tzinfo=dt.UTC)  # 2 March 01:00 in China
    assert retention_until(late, 30) == dt.date(2056, 3, 2)
    leap = dt.datetime(2028, 2, 29, 4, 0, tzinfo=dt.UTC)
    assert retention_until(leap, 1) == dt.date(2029, 2, 28)


async def hold_through_the_api(server: LiveServer, case_no: str) -> None:
    """An auditor places a hold: a reason is required, a second hold is refused, and
    the retention status shows it."""
    auditor = await logged_in(server, "jiancha")
    clerk = await logged_in(server, "chuangkou")
    path = f"/api/v1/cases/{case_no}/legal-hold"
    try:
        for client, body, status, code in (
            (auditor, {"reason": "  "}, 400, "field_required"),
            (clerk, {"reason": "诉讼"}, 403, "wrong_role"),
            (auditor, {"reason": "x"}, 409, "not_on_hold"),
        ):
            with pytest.raises(ApiError) as refused:
                await client.post(path + ("/lift" if code == "not_on_hold" else ""), body)
            assert (refused.value.status, refused.value.code) == (status, code)
        placed = (await auditor.post(path, {"reason": "行政复议期间保全"}))["retention"]
        assert placed["on_hold"] and placed["retention_years"] == 30
        assert [(h["action"], h["reason"], h["by"]) for h in placed["holds"]] == [
            ("placed", "行政复议期间保全", "jiancha")
        ]
        with pytest.raises(ApiError) as refused:
            await auditor.post(path, {"reason": "再次"})
        assert (refused.value.status, refused.value.code) == (409, "hold_exists")
    finally:
        await auditor.close()
        await clerk.close()


async def media(services: Any, case_no: str) -> list[Any]:
    query = (
        select(evidence_files)
        .join(cases, cases.c.id == evidence_files.c.case_id)
        .where(cases.c.case_no == case_no)
    )
    async with services.engine.connect() as conn:
        return list((await conn.execute(query)).all())


async def tombstones(services: Any, case_no: str) -> Counter[str]:
    events = await services.audit.events(chain_of(case_no), "evidence_purged")
    return Counter(e.detail["sha256"] for e in events)


def present(store: EvidenceStore, rows: list[Any]) -> set[str]:
    return {r.sha256 for r in rows if store.exists(r.sha256)}


async def test_retention_run_purges_only_what_may_go(live_server: LiveServer) -> None:
    """Case A past retention loses its media (tombstone first; a crash after the first
    tombstone is finished by the next run without a second one) except a still it
    shares with held case B; B keeps everything until its hold is lifted, then both
    go. A dry run deletes nothing; rows and events all stay; A's integrity check passes
    and lists the deleted files as purged."""
    case_a, case_b = record_cases(live_server, sessions=2)
    for case_no in (case_a, case_b):
        await evidence(live_server, case_no)  # every chunk converted
    await hold_through_the_api(live_server, case_b)
    stop_process(live_server.process)

    clock = ManualClock()
    settings = Settings(data_dir=live_server.data_dir)
    async with open_services(settings, clock) as services:
        store = services.evidence
        rows_a, rows_b = await media(services, case_a), await media(services, case_b)
        # simulate uploads the same page each run: both cases hold that still
        [shared] = [r for r in rows_a if r.role == "still"]
        assert shared.sha256 in {r.sha256 for r in rows_b if r.role == "still"}
        all_a, all_b = present(store, rows_a), present(store, rows_b)

        summary = await run_retention(services.engine, services.audit, store, clock)
        assert (summary.expired, summary.files) == (0, 0)
        async with services.engine.begin() as conn:  # the period fixed at acceptance holds
            await conn.execute(update(matters).values(retention_years=1))
        clock.advance(days=366 * 2)
        summary = await run_retention(services.engine, services.audit, store, clock)
        assert (summary.expired, summary.files) == (0, 0)

        clock.advance(days=366 * 31)
        before = await services.audit.size()
        dry = await run_retention(services.engine, services.audit, store, clock, dry_run=True)
        assert (dry.files, dry.held, dry.shared_kept) == (len(all_a) - 1, [case_b], 1)
        assert present(store, rows_a) == all_a and await services.audit.size() == before

        real_purge = store.purge
        calls: list[str] = []

        def crash_once(sha256: str) -> int | None:
            calls.append(sha256)
            if len(calls) == 1:
                raise RuntimeError("the process dies here")
            return real_purge(sha256)

        store.purge = crash_once  # type: ignore[method-assign]
        with pytest.raises(RuntimeError):
            await run_retention(services.engine, services.audit, store, clock)
        assert (await tombstones(services, case_a)) == Counter({calls[0]: 1})
        assert store.exists(calls[0])

        summary = await run_retention(services.engine, services.audit, store, clock)
        assert (summary.files, summary.finished, summary.failed) == (len(all_a) - 1, 1, [])
        assert present(store, rows_a) == {shared.sha256}
        assert present(store, rows_b) == all_b
        marks = await tombstones(services, case_a)
        assert set(marks) == all_a - {shared.sha256} and set(marks.values()) == {1}
        assert await media(services, case_a) == rows_a  # every row kept

        integrity = CaseIntegrity(services.engine, services.audit, store)
        auditor = next(u for u in await services.accounts.list() if u.username == "jiancha")
        case = await services.cases.get(auditor, case_a)
        result = await integrity.check(auditor, case)
        assert result["ok"], result["problems"]
        assert {p["sha256"] for p in result["purged"]} == set(marks)
        assert {p["message"] for p in result["purged"]} == {PROBLEM_TEXT["evidence_purged"]}

        holds = LegalHolds(services.engine, clock, services.audit)
        status = await holds.lift(
            auditor, await services.cases.get(auditor, case_b), {"reason": "复议结束"}
        )
        assert not status["on_hold"] and [h["action"] for h in status["holds"]] == [
            "placed",
            "lifted",
        ]
        real_exists = store.exists
        refused: list[str] = []

        async def try_hold() -> None:
            try:
                await holds.place(auditor, case_b_now, {"reason": "再次复议"})
            except Conflict as exc:
                refused.append(exc.code)

        def hold_meanwhile(sha256: str) -> bool:  # a hold asked for while the run goes on
            store.exists = real_exists  # type: ignore[method-assign]
            asyncio.run_coroutine_threadsafe(try_hold(), loop).result()
            return real_exists(sha256)

        loop, case_b_now = asyncio.get_running_loop(), await services.cases.get(auditor, case_b)
        store.exists = hold_meanwhile  # type: ignore[method-assign]
        summary = await run_retention(services.engine, services.audit, store, clock)
        assert refused == ["retention_running"]
        assert summary.files == len(all_b) and summary.shared_kept == 0
        assert present(store, rows_a) == set() and present(store, rows_b) == set()
        assert (await tombstones(services, case_b))[shared.sha256] == 1
        assert (await holds.place(auditor, case_b_now, {"reason": "再次复议"}))["on_hold"]
        kinds = [e.kind for e in await services.audit.events(chain_of(case_b))]
        assert [k for k in kinds if "hold" in k] == [
            "legal_hold_placed",
            "legal_hold_lifted",
            "legal_hold_placed",
        ]
        async with services.engine.connect() as conn:
            runs = await conn.scalar(
                select(func.count()).where(audit_events.c.kind == "retention_run")
            )
        assert runs == 2


async def test_the_lease_keeps_holds_and_other_runs_out_until_it_ends_or_lapses(
    tmp_path, demo_template
) -> None:
    """While a run holds the retention lease a hold is refused (409 retention_running,
    said in Chinese) and so is a second run; released, both go ahead; the lease of a run
    that died (never released) lapses after LEASE_MINUTES."""
    import shutil

    data_dir = tmp_path / "var"
    shutil.copytree(demo_template, data_dir)
    clock = ManualClock()
    async with open_services(Settings(data_dir=data_dir), clock) as services:
        admin = next(u for u in await services.accounts.list() if u.role == "admin")
        async with services.engine.connect() as conn:
            case_no = await conn.scalar(select(cases.c.case_no).limit(1))
        case = await services.cases.get(admin, case_no)
        holds = LegalHolds(services.engine, clock, services.audit)
        store = services.evidence

        async def refused(work: Any) -> str:
            with pytest.raises(Conflict) as refusal:
                await work
            return refusal.value.code

        async with RetentionLease(services.engine, clock):
            assert await refused(holds.place(admin, case, {"reason": "复议"})) == (
                "retention_running"
            )
            assert (
                await refused(run_retention(services.engine, services.audit, store, clock))
                == "retention_running"
            )
        assert (await holds.place(admin, case, {"reason": "复议"}))["on_hold"]
        await holds.lift(admin, case, {"reason": "复议结束"})

        died = RetentionLease(services.engine, clock)
        await died.__aenter__()  # a run killed before it released the lease
        clock.advance(minutes=LEASE_MINUTES - 1)
        assert await refused(holds.place(admin, case, {"reason": "复议"})) == "retention_running"
        clock.advance(minutes=2)
        assert (await holds.place(admin, case, {"reason": "复议"}))["on_hold"]
        assert (await run_retention(services.engine, services.audit, store, clock)).files == 0
    assert message("retention_running").startswith("保存期限清理正在进行")


def test_cli_dry_run_prints_a_chinese_summary(tmp_path, demo_template) -> None:
    """``coreview retention run --dry-run`` on the demo data: exit 0, a summary in
    Chinese, nothing due."""
    import shutil

    data_dir = tmp_path / "var"
    shutil.copytree(demo_template, data_dir)
    done = subprocess.run(
        [*coreview_command(), "retention", "run", "--data-dir", str(data_dir), "--dry-run"],
        capture_output=True,
        text=True,
        env=server_env(),
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "保存期限清理（试运行" in done.stdout and "将删除媒体文件 0 个" in done.stdout
