"""Statements run straight on SQLite's cursor (signaling/storage/compiled_select.py) give what
SQLAlchemy gives for the same statement and values, on a real SQLite file."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    create_engine,
    func,
    literal,
    select,
)
from sqlalchemy.exc import SQLAlchemyError

from signaling.storage import compiled_select
from signaling.storage.compiled_select import mappings

metadata = MetaData()
visits = Table(
    "visits",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String, nullable=False),
    Column("at", DateTime, nullable=False),
    Column("done", Boolean, nullable=False),
    Column("ended_at", DateTime),
)
AT = dt.datetime(2026, 11, 30, 8, 15, 30, 123456)
NOW = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = create_engine(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(
            visits.insert(),
            [
                {"name": "甲", "at": AT, "done": True, "ended_at": AT + dt.timedelta(hours=1)},
                {"name": "乙", "at": AT + dt.timedelta(hours=2), "done": False, "ended_at": None},
                {"name": "丙", "at": AT + dt.timedelta(days=1), "done": False, "ended_at": None},
            ],
        )
    yield engine
    engine.dispose()


def _both(engine: Engine, statement: Any, values: dict[str, Any]) -> tuple[list[Any], list[Any]]:
    with engine.connect() as conn:
        direct = [dict(row) for row in mappings(conn, statement, values)]
        through = [dict(row) for row in conn.execute(statement, values).mappings()]
    return direct, through


def test_a_statement_runs_on_the_cursor_with_the_same_rows(engine: Engine):
    statement = (
        select(
            visits,
            (literal("访客:") + visits.c.name).label("label"),
            (
                func.julianday(func.coalesce(visits.c.ended_at, bindparam("now", type_=DateTime)))
                - func.julianday(visits.c.at)
            ).label("days"),
            select(func.count()).select_from(visits).scalar_subquery().label("total"),
        )
        .where(visits.c.at < bindparam("now", type_=DateTime), visits.c.name != bindparam("not"))
        .order_by(visits.c.at.desc())
        .limit(bindparam("limit"))
    )
    values = {"now": NOW, "not": "丙", "limit": 5}
    assert compiled_select._compiled(statement, engine.dialect).direct
    direct, through = _both(engine, statement, values)
    assert direct == through
    assert [row["name"] for row in direct] == ["乙", "甲"]
    assert direct[1]["at"] == AT and direct[1]["done"] is True and direct[0]["ended_at"] is None
    assert direct[1]["label"] == "访客:甲" and direct[0]["total"] == 3


def test_an_expanding_in_list_runs_through_sqlalchemy(engine: Engine):
    statement = select(visits.c.name).where(visits.c.name.in_(bindparam("names", expanding=True)))
    assert not compiled_select._compiled(statement, engine.dialect).direct
    direct, through = _both(engine, statement, {"names": ["甲", "丙"]})
    assert direct == through == [{"name": "甲"}, {"name": "丙"}]


def test_columns_of_the_same_name_run_through_sqlalchemy(engine: Engine):
    """SQLAlchemy refuses such a row's ambiguous name; a dict would keep the last."""
    statement = select(visits.c.name, literal("别名").label("name"))
    assert not compiled_select._compiled(statement, engine.dialect).direct


def test_a_missing_value_is_refused_as_sqlalchemy_refuses_it(engine: Engine):
    statement = select(visits.c.name).where(visits.c.name == bindparam("name"))
    with engine.connect() as conn:
        with pytest.raises(SQLAlchemyError, match="required for bind parameter 'name'"):
            mappings(conn, statement, {})
        with pytest.raises(SQLAlchemyError, match="required for bind parameter 'name'"):
            conn.execute(statement, {}).all()


def test_a_value_made_at_each_run_runs_through_sqlalchemy(engine: Engine):
    current = {"name": "甲"}
    statement = select(visits.c.name).where(
        visits.c.name == bindparam("name", callable_=lambda: current["name"])
    )
    assert not compiled_select._compiled(statement, engine.dialect).direct
    with engine.connect() as conn:
        assert [dict(row) for row in mappings(conn, statement, {})] == [{"name": "甲"}]
        current["name"] = "乙"
        assert [dict(row) for row in mappings(conn, statement, {})] == [{"name": "乙"}]
