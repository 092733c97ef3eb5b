"""The projection's tables row by row, each in one stable order: how a live projection
and a replay of the log into an empty database are compared."""

from __future__ import annotations

from typing import Any

from sqlalchemy import create_engine, text

# table → the columns that order its rows
TABLES = {
    "cases": "case_id",
    "case_events": "case_id, seq",
    "assignments": "case_id, assignment_id",
    "deadlines": "case_id, deadline_id",
}


def projection_rows(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of each table of ``TABLES`` in the database at ``url``."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return {table: [tuple(row) for row in connection.execute(
                text(f"SELECT * FROM {table} ORDER BY {order}"))]
                for table, order in TABLES.items()}
    finally:
        engine.dispose()
