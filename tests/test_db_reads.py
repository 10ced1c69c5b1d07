"""SQLite reads end without a rollback round trip to aiosqlite's thread, while a
connection left with an unfinished write is still rolled back (real database)."""

from __future__ import annotations

from pathlib import Path

import aiosqlite
import pytest
from sqlalchemy import func, select

from signaling.storage.db import create_engine, migrate
from signaling.storage.tables import counters


async def test_reads_skip_the_rollback_and_unfinished_writes_keep_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """A read makes no driver rollback; a write never committed is rolled back when its
    connection closes (the row is gone, and another writer is not locked out)."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}")
    try:
        await migrate(engine)
        rollbacks: list[object] = []
        rollback = aiosqlite.Connection.rollback

        async def counted(self: aiosqlite.Connection) -> None:
            rollbacks.append(self)
            await rollback(self)

        monkeypatch.setattr(aiosqlite.Connection, "rollback", counted)
        async with engine.connect() as conn:
            assert await conn.scalar(select(func.count()).select_from(counters)) == 0
        assert rollbacks == []
        async with engine.connect() as conn:
            await conn.execute(counters.insert().values(name="unfinished", value=1))
        assert len(rollbacks) == 1
        async with engine.begin() as conn:  # would wait for the lock, then fail
            await conn.execute(counters.insert().values(name="other", value=1))
        async with engine.connect() as conn:
            names = (await conn.execute(select(counters.c.name))).scalars().all()
        assert names == ["other"]
    finally:
        await engine.dispose()
