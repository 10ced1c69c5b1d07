"""The migrations create exactly the schema the queries use (signaling/tables.py)."""

from __future__ import annotations

from sqlalchemy import inspect

from signaling.db import create_engine, migrate, schema_revision
from signaling.tables import metadata


async def test_migrated_schema_matches_table_definitions(tmp_path):
    """Every table and column in tables.py exists after migrating, with nothing extra."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'm.sqlite3'}")
    try:
        assert await schema_revision(engine) is None
        await migrate(engine)
        await migrate(engine)  # applying twice is a no-op
        assert await schema_revision(engine) == "0007"
        async with engine.connect() as conn:
            found = await conn.run_sync(
                lambda sync: {
                    name: {c["name"]: c["nullable"] for c in inspect(sync).get_columns(name)}
                    for name in inspect(sync).get_table_names()
                }
            )
        found.pop("alembic_version")
        expected = {
            table.name: {c.name: bool(c.nullable) for c in table.columns}
            for table in metadata.tables.values()
        }
        assert found == expected
    finally:
        await engine.dispose()


async def test_sqlite_runs_in_wal_mode(tmp_path):
    """The embedded database uses write-ahead logging and enforces foreign keys."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'w.sqlite3'}")
    try:
        async with engine.connect() as conn:
            mode = (await conn.exec_driver_sql("PRAGMA journal_mode")).scalar()
            keys = (await conn.exec_driver_sql("PRAGMA foreign_keys")).scalar()
        assert (mode, keys) == ("wal", 1)
    finally:
        await engine.dispose()
