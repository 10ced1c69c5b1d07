"""Export and offline verify of a case made by ``coreview simulate`` against a running
``coreview serve``: by the CLI, by the auditor's API (start, progress, download) and
from the case page in headless Chromium;
both packages verify (exit 0, the chain head as the server shows it); each export is a
``case_exported`` event; clerks cannot export; bad arguments are clear errors."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser

from coreview.simulate import ApiClient, ApiError
from recorder.pkgarchive import Archive
from tests.helpers import wait_until
from tests.live import LiveServer, Tab, coreview_command, server_env
from tests.pixels import assert_painted, viewport
from tests.test_simulate import complete_evidence, simulated

pytest_plugins = ("tests.live",)
EXPORT_BAR = (26, 95, 180)
"""The progress bar's fill (accent-color #1a5fb4 in app.css)."""


def coreview(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*coreview_command(), *args],
        capture_output=True,
        text=True,
        timeout=90,
        env=server_env(),
        check=False,
    )


def simulated_case(server: LiveServer) -> dict[str, Any]:
    """One simulated session, its evidence once every chunk is converted."""
    case_no = simulated(server, 2)["cases"][0]
    return asyncio.run(complete_evidence(server, case_no))


async def export_over_api(server: LiveServer, case_no: str, out: Path) -> dict[str, Any]:
    """As the auditor: start the export, poll it to the end, download the package."""
    auditor = ApiClient(server.url)
    try:
        await auditor.login("jiancha", server.password("jiancha"))
        started = await auditor.post(f"/api/v1/cases/{case_no}/exports")
        job = started["export"]
        assert job["state"] == "running" and 0 <= job["percent"] < 100
        found: dict[str, Any] = {}

        async def finished() -> bool:
            found.update(
                (await auditor.get(f"/api/v1/cases/{case_no}/exports/{job['id']}"))["export"]
            )
            return bool(found["state"] != "running")

        await wait_until(finished, limit=60, what="the export job finished")
        assert found["state"] == "done" and found["percent"] == 100, found
        async with auditor.http.get(server.url + found["download"]) as response:
            assert response.status == 200
            assert response.content_type == "application/zip"
            await asyncio.to_thread(out.write_bytes, await response.read())
        return found
    finally:
        await auditor.close()


async def clerk_refused(server: LiveServer, case_no: str) -> int:
    clerk = ApiClient(server.url)
    try:
        await clerk.login("chuangkou", server.password("chuangkou"))
        await clerk.post(f"/api/v1/cases/{case_no}/exports")
    except ApiError as exc:
        return exc.status
    finally:
        await clerk.close()
    return 200


def head_before(events: list[dict[str, Any]], actor: str) -> str:
    """The chain head when ``actor`` exported: the event before its ``case_exported``."""
    at = next(
        i for i, e in enumerate(events) if e["kind"] == "case_exported" and e["actor"] == actor
    )
    return str(events[at - 1]["hash"])


def test_exported_packages_of_a_simulated_case_verify(
    live_server: LiveServer, tmp_path: Path
) -> None:
    """The CLI's and the API's packages of a simulated case both verify offline, each
    with the chain head the server shows just before its ``case_exported`` event; a
    clerk gets 403. A tampered copy, and the package against a later head, fail."""
    evidence = simulated_case(live_server)
    case_no = evidence["case_no"]
    out = tmp_path / "cli.zip"
    done = coreview("export", case_no, "--out", str(out), "--data-dir", str(live_server.data_dir))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "已导出证据包" in done.stdout
    job = asyncio.run(export_over_api(live_server, case_no, tmp_path / "api.zip"))
    events = asyncio.run(complete_evidence(live_server, case_no))["log"]["events"]
    exported = [e for e in events if e["kind"] == "case_exported"]
    assert [e["actor"] for e in exported] == ["cli", "jiancha"]
    assert exported[1]["detail"]["package_sha256"] == job["package_sha256"]
    for path, actor in ((out, "cli"), (tmp_path / "api.zip", "jiancha")):
        checked = coreview("verify", str(path), "--expect-head", head_before(events, actor))
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert "证据包验证通过" in checked.stdout
    recordings = sum(len(t["files"]) for t in evidence["recordings"])
    assert job["files"] == recordings + len(evidence["stills"]) + 4  # + the four documents

    # A copy with one byte of a recording changed fails, naming that file; so does the
    # intact package against a later head (a log cut short).
    media = next(m for m in Archive.open(out).members.values() if m.name.startswith("media/"))
    tampered = tmp_path / "tampered.zip"
    data = bytearray(out.read_bytes())
    data[media.offset + media.size // 2] ^= 0x01
    tampered.write_bytes(bytes(data))
    checked = coreview("verify", str(tampered))
    assert checked.returncode == 1, checked.stdout + checked.stderr
    assert "hash_mismatch" in checked.stdout and media.name in checked.stdout
    checked = coreview("verify", str(out), "--expect-head", events[-1]["hash"])
    assert checked.returncode == 1 and "head_mismatch" in checked.stdout, checked.stdout
    assert asyncio.run(clerk_refused(live_server, case_no)) == 403


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (("GX-2026-999999",), "案件不存在"),
        (("X", "--out", "/nonexistent-dir/x.zip"), "所在目录不存在"),
    ],
    ids=["unknown-case", "no-directory"],
)
def test_export_bad_arguments_are_clear(tmp_path: Path, args: tuple[str, ...], said: str) -> None:
    """An unknown case (exit 1) or an output in no directory (exit 2): a Chinese
    message, no traceback, no file."""
    if "--out" not in args:
        args = (*args, "--out", str(tmp_path / "x.zip"))
    done = coreview("export", *args, "--data-dir", str(tmp_path / "var"))
    assert done.returncode in (1, 2), done.stderr
    assert said in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "x.zip").exists()


def test_export_of_a_case_with_a_file_missing_from_the_store_fails(
    data_dir: Path, tmp_path: Path
) -> None:
    """A file the case's rows name but the store lacks: the package is written without
    it, the command names it and exits 1 (the package would not verify)."""
    lost = "ab" * 32
    with sqlite3.connect(data_dir / "coreview.sqlite3") as db:
        case_id, case_no = db.execute("SELECT id, case_no FROM cases LIMIT 1").fetchone()
        db.execute(
            "INSERT INTO evidence_files (sha256, case_id, role, bytes, meta, created_at) "
            "VALUES (?, ?, 'still', 10, '{}', '2026-11-29 12:00:00.000000')",
            (lost, case_id),
        )
    out = tmp_path / "case.zip"
    done = coreview("export", case_no, "--out", str(out), "--data-dir", str(data_dir))
    assert done.returncode == 1, done.stdout + done.stderr
    assert lost in done.stderr and "缺失" in done.stderr and out.exists()


@pytest.mark.browser
async def test_auditor_exports_from_the_case_page(
    live_server: LiveServer, browser: Browser, tmp_path: Path
) -> None:
    """At 1366×768 the auditor presses 导出证据包 on a simulated case's page: the
    progress bar fills (checked by pixels, in its colour on screen), the package
    downloads and verifies offline."""
    evidence = await asyncio.to_thread(simulated_case, live_server)
    case_no = evidence["case_no"]
    tab = await Tab.open(browser, live_server.url, size=(1366, 768))
    try:
        await tab.log_in("jiancha", live_server.password("jiancha"))
        await tab.goto(f"/cases/{case_no}")
        panel = tab.page.locator("#export")
        await panel.scroll_into_view_if_needed()
        async with tab.page.expect_download(timeout=60_000) as download:
            await panel.get_by_role("button", name="导出证据包").click()
        saved = tmp_path / "page.zip"
        await (await download.value).save_as(saved)
        await tab.page.get_by_text("证据包已生成").wait_for()
        bar = panel.locator("progress")
        await bar.scroll_into_view_if_needed()
        shot = await viewport(tab.page, "export-done")
        await assert_painted(tab.page, bar, shot, EXPORT_BAR, at_least=0.3)  # an empty bar: 0
        assert tab.console_errors == []
    finally:
        await tab.close()
    checked = await asyncio.to_thread(coreview, "verify", str(saved))
    assert checked.returncode == 0, checked.stdout + checked.stderr
