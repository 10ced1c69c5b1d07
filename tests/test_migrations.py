"""The migrations create exactly the schema the queries use (signaling/storage/tables.py)."""

from __future__ import annotations

from sqlalchemy import inspect, select

from signaling.storage.db import create_engine, migrate, schema_revision
from signaling.storage.tables import metadata


async def test_migrated_schema_matches_table_definitions(tmp_path):
    """Every table and column in tables.py exists after migrating, with nothing extra;
    evidence files are unique per case, session, role and hash."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'm.sqlite3'}")
    try:
        assert await schema_revision(engine) is None
        await migrate(engine)
        await migrate(engine)  # applying twice is a no-op
        assert await schema_revision(engine) == "0018"
        async with engine.connect() as conn:
            found = await conn.run_sync(
                lambda sync: {
                    name: {c["name"]: c["nullable"] for c in inspect(sync).get_columns(name)}
                    for name in inspect(sync).get_table_names()
                }
            )
        found.pop("alembic_version")
        async with engine.connect() as conn:
            unique = await conn.run_sync(
                lambda sync: [
                    c["column_names"]
                    for c in inspect(sync).get_unique_constraints("evidence_files")
                ]
            )
        assert unique == [["case_id", "session_id", "role", "sha256"]]
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


async def test_migration_0005_reseals_existing_events_and_adds_triggers(tmp_path):
    """Events written before 0005 are re-sealed in order into the Merkle log form (per
    chain sequence and links, a log_resealed event), they verify, and the new tables
    refuse UPDATE and DELETE."""
    from alembic import command
    from sqlalchemy import text

    from recorder.auditlog import event_from_row
    from recorder.logverify import check_log
    from recorder.schema import audit_events
    from signaling.storage.db import _alembic_config

    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'r.sqlite3'}")
    try:
        async with engine.begin() as conn:
            await conn.run_sync(lambda sync: command.upgrade(_alembic_config(sync), "0004"))
            for n, chain in enumerate(["system", "case:GX-1", "case:GX-1", "system"]):
                await conn.execute(
                    text(
                        "INSERT INTO audit_events (chain, seq, at, kind, actor, detail, "
                        "prev_hash, hash) VALUES (:chain, :seq, '2026-01-02 03:04:05.000006', "
                        "'note', 'a', :detail, 'old', 'old')"
                    ),
                    {"chain": chain, "seq": n, "detail": f'{{"n": {n}}}'},
                )
        await migrate(engine)
        async with engine.connect() as conn:
            query = select(audit_events).order_by(audit_events.c.log_index)
            events = [event_from_row(row) for row in await conn.execute(query)]
        assert [(e.chain, e.case_seq, e.detail) for e in events] == [
            ("system", 1, {"n": 0}),
            ("case:GX-1", 1, {"n": 1}),
            ("case:GX-1", 2, {"n": 2}),
            ("system", 2, {"n": 3}),
            ("system", 3, {"events": 4}),
        ]
        assert events[-1].kind == "log_resealed"
        assert check_log(events, [], []).ok  # hashes, links and indices hold
        async with engine.begin() as conn:
            for table in ("audit_events", "log_checkpoints", "log_keys"):
                triggers = await conn.scalar(
                    text(
                        "SELECT count(*) FROM sqlite_master "
                        "WHERE type = 'trigger' AND tbl_name = :t"
                    ),
                    {"t": table},
                )
                assert triggers == 2
    finally:
        await engine.dispose()
