"""A hot read's statement run straight on SQLite's own cursor.

SQLAlchemy costs ~60 µs a run of even a compiled, cached statement (its execution
context, the parameters' processing, a Row per row); the case list's query itself takes
~40 µs in SQLite. Here a statement is compiled once (per statement object: callers keep
theirs, e.g. ``CaseSql.statements``) to its SQL text, its parameters' order and
defaults, and SQLAlchemy's own processors for the parameters and columns that need one
(times); a run is then one ``execute`` on the driver's connection.

Only for SQLite through the standard driver (the reader threads' engine,
signaling/storage/reads.py), and only for statements with no expanding ``IN`` (a list rendered
at each run); anything else runs through SQLAlchemy as usual, with the same result.
The compiled statement's private parts it reads (``_bind_processors``,
``_result_columns``) are SQLAlchemy 2.0-2.1's; tests/test_compiled_select.py checks its
rows against SQLAlchemy's own.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import Connection, Select
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import InvalidRequestError


class CompiledSelect:
    def __init__(self, statement: Select[Any], dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        columns = compiled._result_columns  # names and types of the columns
        self.keys = tuple(column.keyname for column in columns)
        self.sql = compiled.string
        self.names = tuple(compiled.positiontup or ())
        binds = [compiled.binds[name] for name in self.names]
        self.direct = (
            not compiled.post_compile_params
            and not compiled.literal_execute_params
            and all(bind.callable is None for bind in binds)  # a value made at each run
            and len(set(self.keys)) == len(self.keys)
        )
        self.defaults = compiled.params  # literals' values; None for the caller's
        self.required = frozenset(
            n for n, bind in zip(self.names, binds, strict=True) if bind.required
        )
        # SQLAlchemy's own (private) tables: the processors it would apply at each run
        bind_processors: Mapping[str, Any] = compiled._bind_processors
        self.bind_processors: dict[int, Callable[[Any], Any]] = {
            i: bind_processors[name] for i, name in enumerate(self.names) if name in bind_processors
        }
        self.column_processors: dict[int, Callable[[Any], Any]] = {}
        for i, column in enumerate(columns):
            processor = column.type._cached_result_processor(dialect, None)
            if processor is not None:
                self.column_processors[i] = processor

    def parameters(self, values: Mapping[str, Any]) -> list[Any]:
        if missing := self.required.difference(values):
            raise InvalidRequestError(f"A value is required for bind parameter {min(missing)!r}")
        defaults = self.defaults
        found = [values[name] if name in values else defaults[name] for name in self.names]
        for i, process in self.bind_processors.items():
            found[i] = process(found[i])
        return found

    def rows(self, cursor_rows: list[tuple[Any, ...]]) -> list[Mapping[Any, Any]]:
        keys, processors = self.keys, self.column_processors.items()
        mapped: list[Mapping[Any, Any]] = []
        for values in cursor_rows:
            row = dict(zip(keys, values, strict=True))
            for i, process in processors:
                row[keys[i]] = process(values[i])
            mapped.append(row)
        return mapped


@functools.lru_cache(maxsize=256)
def _compiled(statement: Select[Any], dialect: Dialect) -> CompiledSelect:
    return CompiledSelect(statement, dialect)


def mappings(
    conn: Connection, statement: Select[Any], values: Mapping[str, Any]
) -> list[Mapping[Any, Any]]:
    """The rows of ``statement`` with ``values`` bound, as mappings by column name (dicts
    when run directly, SQLAlchemy's ``RowMapping`` otherwise)."""
    dialect = conn.dialect
    if dialect.name == "sqlite" and dialect.driver == "pysqlite":
        compiled = _compiled(statement, dialect)
        driver = conn.connection.driver_connection
        if compiled.direct and driver is not None:
            cursor = driver.execute(compiled.sql, compiled.parameters(values))
            return compiled.rows(cursor.fetchall())
    return list(conn.execute(statement, values).mappings())
