"""Reads on the hot path (every request's login lookup, the case list) run whole on a
synchronous connection in a thread of their own.

Through SQLAlchemy's asyncio layer each statement costs several hand-offs to aiosqlite's
thread and back (connect, execute, fetch), ~200 µs of the event loop's time even for
``SELECT 1``; the same read on a plain connection costs ~30 µs. Here a read is one
function of a synchronous ``Connection``, handed to the reader thread once. The embedded
database is opened read-only there (``mode=ro``): these connections cannot write.

Other databases (``database_url``) run the same function through the async engine's
``run_sync``, so a read's code is the same for both.
"""

from __future__ import annotations

import asyncio
from asyncio import Future
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar, cast

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.ext.asyncio import AsyncEngine

from signaling.storage.db import sqlite_pragmas

T = TypeVar("T")

THREADS = 2
"""Reader threads: a slow search does not hold up every login lookup behind it."""


def _read_on(
    engine: Engine,
    read: Callable[[Connection], T],
    loop: asyncio.AbstractEventLoop,
    done: Future[T],
) -> None:
    """On a reader thread: run ``read`` and hand its outcome to the loop (one callback;
    ``run_in_executor``'s chained futures cost ~15 µs more a read)."""
    try:
        with engine.connect() as conn:
            result = read(conn)
    except BaseException as exc:
        loop.call_soon_threadsafe(_settle, done, None, exc)
    else:
        loop.call_soon_threadsafe(_settle, done, result, None)


def _settle(done: Future[T], result: T | None, exc: BaseException | None) -> None:
    if done.cancelled():
        return
    if exc is not None:
        done.set_exception(exc)
    else:
        done.set_result(cast(T, result))


class Reads:
    def __init__(self, engine: AsyncEngine, sqlite_path: Path | None) -> None:
        self._engine = engine
        self._sync: Engine | None = None
        self._threads: ThreadPoolExecutor | None = None
        if sqlite_path is not None:
            self._sync = create_engine(
                f"sqlite:///file:{sqlite_path}?mode=ro&uri=true", pool_size=THREADS
            )
            event.listen(self._sync, "connect", sqlite_pragmas)
            self._threads = ThreadPoolExecutor(THREADS, thread_name_prefix="coreview-read")

    @property
    def engine(self) -> Engine | None:
        """The reader threads' engine (None: reads go through the async engine)."""
        return self._sync

    async def run(self, read: Callable[[Connection], T]) -> T:
        """``read(connection)`` on a reader thread (or through the async engine)."""
        if self._threads is None or self._sync is None:
            async with self._engine.connect() as conn:
                return await conn.run_sync(read)
        loop = asyncio.get_running_loop()
        done: Future[T] = loop.create_future()
        work = self._threads.submit(_read_on, self._sync, read, loop, done)
        try:
            return await done
        except asyncio.CancelledError:
            work.cancel()  # not started yet: it never runs
            raise

    def close(self) -> None:
        if self._threads is not None:
            self._threads.shutdown()
        if self._sync is not None:
            self._sync.dispose()
