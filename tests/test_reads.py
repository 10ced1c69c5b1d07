"""Reads on a reader thread (signaling/storage/reads.py), against a real SQLite database: they
see what the async engine committed, cannot write, and without a database file run the
same function through the async engine."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import Connection, func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from signaling.storage.db import create_engine, migrate
from signaling.storage.reads import THREADS, Reads
from signaling.storage.tables import counters
from tests.helpers import wait_until


def _count(conn: Connection) -> tuple[int, str]:
    found = conn.scalar(select(func.count()).select_from(counters))
    return int(found or 0), threading.current_thread().name


@contextlib.asynccontextmanager
async def database(tmp_path: Path, *, file: bool) -> AsyncIterator[tuple[AsyncEngine, Reads]]:
    """A migrated SQLite database and its reads (``file=False``: as if named by URL only)."""
    path = tmp_path / "db.sqlite3"
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    reads = Reads(engine, path if file else None)
    try:
        await migrate(engine)
        yield engine, reads
    finally:
        reads.close()
        await engine.dispose()


async def test_reads_run_on_a_reader_thread_and_see_committed_writes(tmp_path: Path):
    async with database(tmp_path, file=True) as (engine, reads):
        assert (await reads.run(_count))[0] == 0
        async with engine.begin() as conn:
            await conn.execute(counters.insert().values(name="seen", value=1))
        count, thread = await reads.run(_count)
        assert count == 1
        assert thread.startswith("coreview-read")


async def test_the_reader_cannot_write(tmp_path: Path):
    async with database(tmp_path, file=True) as (engine, reads):

        def write(conn: Connection) -> None:
            conn.execute(counters.insert().values(name="written", value=1))
            conn.commit()

        with pytest.raises(OperationalError, match="readonly"):
            await reads.run(write)
        async with engine.connect() as conn:
            assert await conn.scalar(select(func.count()).select_from(counters)) == 0


async def test_without_a_database_file_reads_go_through_the_async_engine(tmp_path: Path):
    """``database_url`` set (here: SQLite named by URL only): the same read function runs
    through ``run_sync`` on the async engine's connection."""
    async with database(tmp_path, file=False) as (engine, reads):
        async with engine.begin() as conn:
            await conn.execute(counters.insert().values(name="seen", value=1))
        count, thread = await reads.run(_count)
        assert count == 1
        assert not thread.startswith("coreview-read")


async def test_a_read_raises_in_its_caller_and_a_cancelled_one_never_starts(tmp_path: Path):
    async with database(tmp_path, file=True) as (_engine, reads):

        def fails(_conn: Connection) -> None:
            raise LookupError("gone")

        with pytest.raises(LookupError, match="gone"):
            await reads.run(fails)

        release, ran = threading.Event(), threading.Event()
        running: list[str] = []

        def blocks(_conn: Connection) -> None:
            running.append(threading.current_thread().name)
            assert release.wait(10)

        def records(_conn: Connection) -> None:
            ran.set()

        busy = [asyncio.ensure_future(reads.run(blocks)) for _ in range(THREADS)]
        await wait_until(lambda: len(running) == THREADS, what="every reader thread busy")
        queued = asyncio.ensure_future(reads.run(records))
        await asyncio.sleep(0)  # the task runs up to its wait: the read is queued
        queued.cancel()
        with pytest.raises(asyncio.CancelledError):
            await queued  # the cancellation taken (not merely asked for) before a thread frees
        release.set()
        await asyncio.gather(*busy)
        assert (await reads.run(_count))[0] == 0  # the threads are free again
        assert not ran.is_set()
