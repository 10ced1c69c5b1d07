"""Database engine and schema migrations (alembic, applied at start)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, event, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from signaling.storage.tables import counters

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def _rollback_if_open(rollback: Callable[[Any], None]) -> Callable[[Any], None]:
    """SQLite: a rollback with no transaction open does nothing (the driver itself checks
    ``in_transaction``) but costs a round trip to aiosqlite's thread; every read's
    connection ends with one. Skip it when nothing is open."""

    def do_rollback(dbapi_connection: Any) -> None:
        if dbapi_connection.driver_connection.in_transaction:
            rollback(dbapi_connection)

    return do_rollback


def create_engine(url: str) -> AsyncEngine:
    engine = create_async_engine(url)
    if engine.dialect.name == "sqlite":
        event.listen(engine.sync_engine, "connect", sqlite_pragmas)
        dialect = engine.sync_engine.dialect
        if dialect.driver == "aiosqlite":
            dialect.do_rollback = _rollback_if_open(dialect.do_rollback)  # type: ignore[method-assign,assignment]
    return engine


def _alembic_config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


async def migrate(engine: AsyncEngine) -> None:
    """Bring the schema to the newest revision."""
    async with engine.begin() as conn:
        await conn.run_sync(lambda sync: command.upgrade(_alembic_config(sync), "head"))


async def schema_revision(engine: AsyncEngine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    async with engine.connect() as conn:
        return await conn.run_sync(
            lambda sync: MigrationContext.configure(sync).get_current_revision()
        )


async def ensure_counter(conn: AsyncConnection, name: str) -> None:
    """Create the ``counters`` row ``name`` at 0 unless it exists, inside the caller's
    transaction (ON CONFLICT DO NOTHING: two first users cannot both insert it)."""
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    await conn.execute(insert(counters).values(name=name, value=0).on_conflict_do_nothing())


async def next_value(conn: AsyncConnection, name: str) -> int:
    """Move the ``counters`` row ``name`` on by one (the first value is 1) inside the
    caller's transaction; returns the new value."""
    await ensure_counter(conn, name)
    value = await conn.scalar(
        update(counters)
        .where(counters.c.name == name)
        .values(value=counters.c.value + 1)
        .returning(counters.c.value)
    )
    return int(value)
