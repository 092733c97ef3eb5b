"""The projection's bulk writes store exactly what SQLAlchemy's typed path stores."""

from __future__ import annotations

from collections.abc import Generator
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy import Engine, Table, insert, select
from sqlalchemy.orm import Session, sessionmaker

from simulation.case_logs import batches, case_logs, merged_log
from store.bulk import upsert
from store.db import create_engine, session_factory
from store.migrate import upgrade
from store.models import AssignmentRow, Case, CaseEventRow, DeadlineRow, EvaluationRow
from store.projector import project
from tests.store.conftest import new_database

TABLES = [cast(Table, model.__table__)
          for model in (Case, AssignmentRow, DeadlineRow, CaseEventRow, EvaluationRow)]


def _raw(engine: Engine, table: Table) -> list[tuple[Any, ...]]:
    """The rows as the driver returns them: times and JSON in their stored form."""
    order = ", ".join(c.name for c in table.primary_key.columns)
    columns = ", ".join(c.name for c in table.columns)
    with engine.connect() as connection:
        return list(connection.exec_driver_sql(
            f"SELECT {columns} FROM {table.name} ORDER BY {order}").all())  # noqa: S608


def test_rows_are_stored_as_sqlalchemys_types_store_them(
    request: pytest.FixtureRequest, tmp_path: Path, database_url: str
):
    upgrade(database_url)
    projected = create_engine(database_url)
    kind = projected.dialect.name
    databases = cast(Generator[str], new_database(request, kind, tmp_path / "typed"))
    typed_url = next(databases)
    upgrade(typed_url)
    typed = create_engine(typed_url)
    try:
        sessions = session_factory(projected)
        for part in batches(merged_log(case_logs(25, seed=5)), 30):
            with sessions.begin() as session:
                project(session, part)
        with sessions() as session, session_factory(typed).begin() as other:
            for table in TABLES:
                rows = [dict(row) for row in session.execute(select(table)).mappings()]
                assert rows, table.name
                other.execute(insert(table), rows)  # each value through its column type
        for table in TABLES:
            assert _raw(projected, table) == _raw(typed, table), table.name
    finally:
        projected.dispose()
        typed.dispose()
        databases.close()


def test_a_naive_time_is_refused(sessions: sessionmaker[Session]):
    deadline = {c.name: None for c in cast(Table, DeadlineRow.__table__).columns}
    deadline |= {"case_id": "C1", "deadline_id": "case.register", "step": "register",
                 "started_at": datetime(2026, 12, 7, 9, 0), "budget_seconds": 60,
                 "working_days": False, "due_at": datetime(2026, 12, 7, 9, 1),
                 "yellow_fired": False, "red_fired": False, "over_fired": False,
                 "paused": False, "extended": 0, "active": True,
                 "updated_at": datetime(2026, 12, 7, 9, 0)}
    with sessions.begin() as session, pytest.raises(ValueError, match="naive datetime"):
        upsert(session, cast(Table, DeadlineRow.__table__), [deadline])
