"""Store fixtures: every store test runs on SQLite and on a real PostgreSQL.

``database_url`` is parametrised over both engines and names an empty
database; ``engine`` migrates it to the newest revision first. The PostgreSQL
cluster is started once per session from the Debian server binaries; if they
are missing the PostgreSQL half of the tests fails (it is never skipped: a
store test that did not run on PostgreSQL has not passed).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from store.db import create_engine, session_factory
from store.migrate import upgrade
from tests.conftest import postgres_cluster_for
from tests.store.postgres import PostgresCluster

ENGINES = ("sqlite", "postgresql")


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    with postgres_cluster_for("the store tests") as cluster:
        yield cluster


def new_database(request: pytest.FixtureRequest, kind: str, tmp_path: Path) -> Iterator[str]:
    """An empty database of ``kind``; a PostgreSQL one is dropped afterwards."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / kind / 'gridlink.db'}"
        return
    cluster: PostgresCluster = request.getfixturevalue("postgres_cluster")
    name = f"gridlink_{uuid.uuid4().hex[:12]}"
    url = cluster.create_database(name)
    try:
        yield url
    finally:
        cluster.drop_database(name)


@pytest.fixture(params=ENGINES)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from new_database(request, request.param, tmp_path)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """The database at ``database_url``, migrated to the newest revision."""
    upgrade(database_url)
    engine = create_engine(database_url)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return session_factory(engine)
