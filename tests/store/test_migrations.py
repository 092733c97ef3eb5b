"""Migrations create the schema the models describe, on both engines."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from store.db import SQLITE_BUSY_TIMEOUT_MS, create_engine, normalise_url, sqlite_file
from store.migrate import current_revision, downgrade, head_revision, upgrade
from store.models import Base

TABLES = {
    "cases",
    "case_events",
    "assignments",
    "deadlines",
    "evaluations",
    "departments",
    "regions",
}


def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def test_upgrade_creates_every_table_at_the_head_revision(database_url: str):
    upgrade(database_url)
    assert _tables(database_url) == TABLES
    engine = create_engine(database_url)
    with engine.connect() as connection:
        assert current_revision(connection) == head_revision()
    engine.dispose()


def test_the_migrated_schema_matches_the_models(database_url: str):
    upgrade(database_url)
    engine = create_engine(database_url)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, Base.metadata)
    engine.dispose()
    assert differences == []


def test_upgrade_twice_is_harmless_and_downgrade_empties(database_url: str):
    upgrade(database_url)
    upgrade(database_url)
    downgrade(database_url, revision="base")
    assert _tables(database_url) == set()
    upgrade(database_url)
    assert _tables(database_url) == TABLES


def test_a_sqlite_file_database_gets_its_directory_wal_and_foreign_keys(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'not' / 'yet' / 'there.db'}"
    upgrade(url)
    engine = create_engine(url)
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == SQLITE_BUSY_TIMEOUT_MS
    engine.dispose()
    assert (tmp_path / "not" / "yet" / "there.db").exists()


@pytest.mark.parametrize(
    ("url", "driver"),
    [
        ("postgresql://gridlink@db.example/gridlink", "postgresql+psycopg"),
        ("postgres://gridlink@db.example/gridlink", "postgresql+psycopg"),
        ("postgresql+psycopg://gridlink@db.example/gridlink", "postgresql+psycopg"),
        ("sqlite:///data/gridlink.db", "sqlite"),
    ],
)
def test_urls_map_to_the_supported_drivers(url: str, driver: str):
    assert normalise_url(url).drivername == driver


def test_other_databases_are_refused():
    with pytest.raises(ValueError, match="unsupported database URL"):
        normalise_url("mysql://gridlink@db.example/gridlink")


def test_in_memory_sqlite_has_no_file():
    assert sqlite_file(normalise_url("sqlite://")) is None
    assert sqlite_file(normalise_url("sqlite:///data/gridlink.db")) == Path("data/gridlink.db")


def _upgrade_in_a_process(url: str) -> None:
    upgrade(url)


def test_processes_starting_together_on_a_fresh_database_all_migrate(database_url: str):
    """A worker and the API start at once on an empty database: each upgrade
    waits for the other's, and none fails on a table the other just created."""
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_upgrade_in_a_process, args=(database_url,))
                 for _ in range(4)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(120)
    assert [p.exitcode for p in processes] == [0, 0, 0, 0]
    assert _tables(database_url) == TABLES
