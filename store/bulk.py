"""Bulk writes of the projection on SQLite and PostgreSQL: upserts and inserts of
many rows, each statement compiled once per engine and its rows handed to the
driver's ``executemany`` already in the form the database stores.

Why not ``session.execute(statement, rows)``: SQLAlchemy then binds every value of
every row through its column type, one call after another (a time goes through
:class:`store.models.UtcDateTime`, then the dialect's own formatter), and builds
each row's parameters again from the compiled statement. For the projection, which
writes a dozen times per event, that was more CPU than deciding what to write.
Here each column's conversion is chosen once, when the statement is compiled:

- a time (:class:`~store.models.UtcDateTime`) becomes exactly what SQLAlchemy stores
  — on SQLite the UTC text ``YYYY-MM-DD HH:MM:SS.ffffff``, on PostgreSQL the aware
  datetime itself (``timestamptz``) — and a naive one is refused as it is there;
- a JSON value is encoded with msgspec, as the engine's ``json_serializer`` does, so
  an event struct is stored as it is;
- any other column keeps its type's own bind conversion, if it has one.

What is stored is the same as through SQLAlchemy's types, row for row
(``tests/store/test_bulk.py`` compares both), so every reader — the API's queries,
``gridlink replay``, the migrations — sees no difference.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import msgspec
from sqlalchemy import JSON, Dialect, Table, func
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from store.models import UtcDateTime

TIMES_KEPT = 16_384  # SQLite texts of the times converted most recently

Row = Mapping[str, Any]
_Convert = Callable[[Any], Any]
_json = msgspec.json.Encoder()


def upsert(session: Session, table: Table, rows: Sequence[Row], *,
           sticky: frozenset[str] = frozenset(), newer_only: bool = False) -> None:
    """Insert or update ``rows`` by primary key, in one ``executemany``. Sticky columns
    keep their stored value when the new one is NULL; ``newer_only`` updates a row only
    if it brings a later ``last_seq``. Every row holds every column of ``table``."""
    if rows:
        dialect = session.get_bind().dialect
        _execute(session, _statement(dialect, table, "upsert", sticky, newer_only), rows)


def insert_new(session: Session, table: Table, rows: Sequence[Row]) -> None:
    """Insert ``rows``; those already there (same primary key) stay as they are."""
    if rows:
        dialect = session.get_bind().dialect
        _execute(session, _statement(dialect, table, "insert_new", frozenset(), False), rows)


@dataclass(frozen=True)
class _Compiled:
    sql: str
    names: tuple[str, ...]  # the bound columns, in the statement's order
    converts: tuple[tuple[str, _Convert], ...]  # the columns bound in another form
    positional: bool  # qmark (SQLite) or named (psycopg) parameters

    def bind(self, row: Row) -> tuple[Any, ...] | dict[str, Any]:
        if self.converts:
            row = dict(row)
            for name, convert in self.converts:
                row[name] = convert(row[name])
        if self.positional:
            return tuple([row[name] for name in self.names])
        return {name: row[name] for name in self.names}


def _execute(session: Session, compiled: _Compiled, rows: Sequence[Row]) -> None:
    session.connection().exec_driver_sql(compiled.sql, [compiled.bind(row) for row in rows])


_compiled: dict[tuple[str, str, str, frozenset[str], bool], _Compiled] = {}


def _statement(dialect: Dialect, table: Table, kind: str, sticky: frozenset[str],
               newer_only: bool) -> _Compiled:
    """The statement, compiled for ``dialect`` the first time it is asked for."""
    key = (dialect.name, table.name, kind, sticky, newer_only)
    compiled = _compiled.get(key)
    if compiled is None:
        compiled = _compiled[key] = _compile(dialect, table, kind, sticky, newer_only)
    return compiled


def _compile(dialect: Dialect, table: Table, kind: str, sticky: frozenset[str],
             newer_only: bool) -> _Compiled:
    stmt: sqlite.Insert | postgresql.Insert  # the same on-conflict clauses, one per dialect
    if dialect.name == "sqlite":
        stmt = sqlite.insert(table)
    elif dialect.name == "postgresql":
        stmt = postgresql.insert(table)
    else:
        raise ValueError(f"the projection supports SQLite and PostgreSQL, not {dialect.name}")
    keys = [c.name for c in table.primary_key.columns]
    if kind == "insert_new":
        statement = stmt.on_conflict_do_nothing(index_elements=keys)
    else:
        changes = {
            c.name: func.coalesce(stmt.excluded[c.name], c) if c.name in sticky
            else stmt.excluded[c.name]
            for c in table.columns
            if c.name not in keys
        }
        where = table.c.last_seq < stmt.excluded.last_seq if newer_only else None
        statement = stmt.on_conflict_do_update(index_elements=keys, set_=changes, where=where)
    compiled = statement.compile(dialect=dialect)
    positional = compiled.positiontup is not None
    names = tuple(compiled.positiontup or (c.name for c in table.columns))
    if set(names) != {c.name for c in table.columns}:  # each column bound once, by its name
        raise ValueError(f"{table.name}: the statement binds {names}, not the table's columns")
    converts = tuple(
        (column.name, convert)
        for column in table.columns
        if (convert := _conversion(column.type, dialect)) is not None
    )
    return _Compiled(compiled.string, names, converts, positional)


def _conversion(column_type: Any, dialect: Dialect) -> _Convert | None:
    """How a column's values are bound on ``dialect`` (None: as they are)."""
    if isinstance(column_type, UtcDateTime):
        return _sqlite_time if dialect.name == "sqlite" else _aware_time
    if isinstance(column_type.dialect_impl(dialect), JSON):
        return _json_text
    processor: _Convert | None = column_type.dialect_impl(dialect).bind_processor(dialect)
    return processor


@lru_cache(maxsize=TIMES_KEPT)
def _sqlite_time(value: datetime | None) -> str | None:
    """What SQLAlchemy stores for a UtcDateTime on SQLite: UTC, without its zone
    (``+00:00`` cut off). Kept for the times converted recently: the rows of a batch
    share most of theirs (an event's time, a clock's start and due), and two aware
    times that are equal are the same instant, so the same text."""
    if value is None:
        return None
    _refuse_naive(value)
    return value.astimezone(UTC).isoformat(" ", "microseconds")[:-6]


def _aware_time(value: datetime | None) -> datetime | None:
    """On PostgreSQL (``timestamptz``) the instant itself; psycopg sends its offset."""
    if value is not None:
        _refuse_naive(value)
    return value


def _refuse_naive(value: datetime) -> None:
    if value.tzinfo is None:  # as UtcDateTime refuses it: a clock bug
        raise ValueError(f"naive datetime {value.isoformat()} cannot be stored: give it a zone")


def _json_text(value: Any) -> str:
    return _json.encode(value).decode()


__all__ = ["insert_new", "upsert"]
