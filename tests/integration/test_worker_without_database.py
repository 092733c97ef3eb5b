"""A worker started while its database is down, on the real broker and a real
PostgreSQL: it starts, turns ready (intake, the case writers and their timers do not
need the database), opens cases on ``cases.events``; once the server is up, the
projection migrates the database and stores every event the outage held back."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from sqlalchemy.exc import SQLAlchemyError

from tests.conftest import postgres_cluster_for
from tests.integration.samples import valid_messages
from tests.integration.test_projection_outage import _logged, _settled, _stored, _until
from tests.store.postgres import PostgresCluster
from topics import registry
from topics.local_kafka import free_port

pytestmark = pytest.mark.integration


@pytest.fixture
def postgres() -> Iterator[tuple[PostgresCluster, str]]:
    """A PostgreSQL server of its own (the test stops and starts it) and a database."""
    with postgres_cluster_for("the worker's database outage test") as cluster:
        yield cluster, cluster.create_database("gridlink")


def _ready(port: int) -> dict[str, dict[str, object]] | None:
    """The worker's checks once /readyz answers 200, else None."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as answer:
            return json.loads(answer.read())["checks"]  # type: ignore[no-any-return]
    except (urllib.error.URLError, ConnectionError):
        return None


def _stored_once_migrated(url: str) -> set[tuple[str, int]]:
    try:
        return _stored(url)
    except SQLAlchemyError:  # not up yet, or not migrated yet
        return set()


def test_a_worker_starts_and_works_while_the_database_is_down(postgres, start_gridlink,
                                                              kafka):
    cluster, url = postgres
    cluster.server_down()
    kafka.create_topics()
    port = free_port()
    worker = start_gridlink("worker", env={"GRIDLINK_DATABASE_URL": url,
                                           "GRIDLINK_WORKER_METRICS_PORT": str(port)})
    worker.wait_for_log("Worker]: Ready", timeout=90)
    _until(lambda: _ready(port) is not None, "/readyz 200", 30, worker.log)

    messages = valid_messages()
    for topic, key, value in messages:
        kafka.produce(topic, value, key=key)
    logged = _settled(kafka)
    opened = [r for r in kafka.read(registry.CASE_EVENTS)
              if json.loads(r.value)["type"] == "case_opened"]
    assert opened, "no case opened while the database is down"
    worker.wait_for_log("the database refused its migration at start", timeout=30)

    cluster.server_up()
    _until(lambda: _stored_once_migrated(url) >= logged, f"the {len(logged)} events stored",
           90, lambda: worker.log() + f"\nmissing: {sorted(logged - _stored(url))}")
    assert _stored(url) == _logged(kafka)
