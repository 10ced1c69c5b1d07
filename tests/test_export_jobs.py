"""Export jobs' packages on the node (signaling/custody/exports.py ``Exports``), with a stand-in
exporter that writes a small file: kept for their download only for a while and a few
per user, deleted on failure, at close, and at the next start after a crash."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from recorder import package
from signaling.custody import exports
from signaling.custody.exports import Exports
from signaling.web.errors import Conflict, Gone, NotFound
from tests.helpers import wait_until


class StandIn:
    """Writes ``out`` at once, or fails for case numbers in ``failing``."""

    def __init__(self) -> None:
        self.failing: set[str] = set()

    async def gather(self, case_no: str, actor: str | None) -> Any:
        return SimpleNamespace(media=[])

    async def export(self, case_no: str, out: Path, *_args: Any) -> package.Written:
        await asyncio.to_thread(out.write_bytes, b"partial")
        if case_no in self.failing:
            raise RuntimeError("disk gone")
        return package.Written(out, "ab" * 32, 0, 7, [])


def user(number: int) -> Any:
    return SimpleNamespace(id=number, username=f"u{number}")


async def finished(jobs: Exports, case_no: str, owner: Any) -> exports.ExportJob:
    job = await jobs.start(case_no, owner)
    await wait_until(lambda: job.state != "running", what="the export finishes")
    return job


async def test_packages_expire_are_capped_and_cleared(tmp_path: Path, monkeypatch) -> None:
    """A stale package from a crash goes at open; a finished one expires after
    KEEP_SECONDS (state expired, no download link, file gone); a user keeps at most
    KEEP_PER_USER (the oldest go first); a failed export leaves no file; close clears."""
    directory = tmp_path / "exports"
    directory.mkdir()
    (directory / "stale.zip").write_bytes(b"left by a crash")
    stand_in = StandIn()
    jobs = Exports(stand_in, directory)  # type: ignore[arg-type]
    await jobs.open()
    assert list(directory.iterdir()) == []

    monkeypatch.setattr(exports, "KEEP_SECONDS", 0.3)
    job = await finished(jobs, "GX-1", user(1))
    assert job.state == "done" and job.path.exists() and "download" in job.to_dict()
    await wait_until(lambda: job.state == "expired", what="the package expires")
    assert not job.path.exists() and "download" not in job.to_dict()

    monkeypatch.setattr(exports, "KEEP_SECONDS", 60.0)
    made = [await finished(jobs, f"GX-{n}", user(2)) for n in range(2, 6)]
    other = await finished(jobs, "GX-9", user(3))
    assert [j.state for j in made] == ["expired", "done", "done", "done"]
    assert sorted(directory.iterdir()) == sorted(j.path for j in [*made[1:], other])

    stand_in.failing.add("GX-10")
    failed = await finished(jobs, "GX-10", user(3))
    assert failed.state == "failed" and not failed.path.exists()

    await jobs.close()
    assert list(directory.iterdir()) == []


async def test_a_package_expiring_during_its_download_is_deleted_after_it(
    tmp_path: Path,
) -> None:
    """Expiry while a download is under way keeps the file until the download is over;
    a download after it gets 410 export_expired (not a missing file's 404)."""
    jobs = Exports(StandIn(), tmp_path)  # type: ignore[arg-type]
    job = await finished(jobs, "GX-1", user(1))
    with jobs.downloading(job) as path:
        await jobs._expire(job)
        assert path.read_bytes() == b"partial"
    await wait_until(lambda: not job.path.exists(), what="deleted after the download")
    with pytest.raises(Gone) as gone, jobs.downloading(job):
        pass
    assert gone.value.code == "export_expired"
    await jobs.close()


async def test_old_jobs_are_forgotten(tmp_path: Path, monkeypatch) -> None:
    """A user's jobs are remembered up to JOBS_PER_USER; then the oldest finished ones
    are forgotten (404 export_not_found), other users' kept."""
    monkeypatch.setattr(exports, "JOBS_PER_USER", 2)
    monkeypatch.setattr(exports, "KEEP_PER_USER", 1)
    jobs = Exports(StandIn(), tmp_path)  # type: ignore[arg-type]
    other = await finished(jobs, "GX-9", user(2))
    made = [await finished(jobs, f"GX-{n}", user(1)) for n in range(1, 5)]
    for job in made[:2]:
        with pytest.raises(NotFound):
            jobs.get(job.id, job.case_no, user(1))
    assert [jobs.get(j.id, j.case_no, user(1)).state for j in made[2:]] == ["expired", "done"]
    assert jobs.get(other.id, "GX-9", user(2)).state == "done"
    await jobs.close()


async def test_one_running_export_per_user(tmp_path: Path) -> None:
    """A second export by a user whose first still runs: 409 export_running."""
    release = asyncio.Event()

    class Slow(StandIn):
        async def gather(self, case_no: str, actor: str | None) -> Any:
            await release.wait()
            return SimpleNamespace(media=[])

    jobs = Exports(Slow(), tmp_path)  # type: ignore[arg-type]
    await jobs.start("GX-1", user(1))
    with pytest.raises(Conflict) as refused:
        await jobs.start("GX-2", user(1))
    assert refused.value.code == "export_running"
    release.set()
    await jobs.close()
