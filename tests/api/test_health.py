"""Liveness and readiness of the API on the real broker and a real database: ready when
the broker, the database and the engine's replies all answer; a 503 naming the
database, within the check's bound, while a real PostgreSQL server is stopped, and
naming the broker while a real broker of the test's own is stopped; ready again once
each is back."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.health import CHECK_TIMEOUT_SECONDS
from settings import Settings
from tests.api.conftest import eventually
from tests.conftest import postgres_cluster_for
from tests.integration.conftest import GridlinkProcess
from tests.integration.kafka_client import KafkaTestClient
from tests.store.postgres import PostgresCluster
from topics.local_kafka import LocalKafka, free_ports

CHECKS = {"broker", "database", "replies"}


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresCluster]:
    """A PostgreSQL server of its own: a test stops and restarts it."""
    with postgres_cluster_for("the readiness tests") as cluster:
        yield cluster


def test_liveness_answers_without_a_key(client: TestClient) -> None:
    for path in ("/healthz", "/health"):
        answer = client.get(path)
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"status": "ok"}


def test_ready_when_the_broker_the_database_and_the_replies_answer(client: TestClient) -> None:
    answer = client.get("/readyz")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["status"] == "ready"
    assert set(body["checks"]) == CHECKS
    assert all(check["ok"] for check in body["checks"].values()), body


def test_not_ready_before_the_gateway_has_started(api_worker: GridlinkProcess,
                                                  api_settings: Settings) -> None:
    """Without its lifespan the app has no producer and no reply consumer: the broker
    and the replies are named, the database (there) is not."""
    app = create_app(api_settings)
    try:
        answer = TestClient(app, raise_server_exceptions=False).get("/readyz")
    finally:
        app.state.store.close()
    assert answer.status_code == 503, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    body = answer.json()
    assert body["code"] == "not_ready"
    assert body["failed"] == ["broker", "replies"]
    assert body["checks"]["database"]["ok"] is True
    assert "broker: the command gateway is not started" in body["detail"]


def test_not_ready_naming_the_database_while_postgresql_is_down(
        api_worker: GridlinkProcess, api_settings: Settings, postgres: PostgresCluster) -> None:
    url = postgres.create_database("readiness")
    settings = api_settings.model_copy(update={"database_url": url})
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        assert client.get("/readyz").status_code == 200
        postgres.server_down()
        try:
            started = time.monotonic()
            answer = client.get("/readyz")
            elapsed = time.monotonic() - started
            assert answer.status_code == 503, answer.text
            body = answer.json()
            assert body["failed"] == ["database"], body
            assert body["detail"].startswith("database: "), body
            assert body["checks"]["broker"]["ok"] and body["checks"]["replies"]["ok"], body
            assert elapsed < CHECK_TIMEOUT_SECONDS + 1.0, f"answered after {elapsed:.1f} s"
            assert client.get("/healthz").status_code == 200  # alive all the same
        finally:
            postgres.server_up()
        eventually(lambda: client.get("/readyz").status_code == 200, timeout=20,
                   what="/readyz ready again once PostgreSQL is back")


def test_not_ready_naming_the_broker_while_it_is_down(api_settings: Settings,
                                                      tmp_path: Path) -> None:
    """A broker of this test's own (the shared one serves the other tests), stopped and
    started again under a running API."""
    port, controller_port = free_ports(2)
    broker = LocalKafka(data_dir=tmp_path / "kafka", cache_dir=api_settings.kafka_cache_dir,
                        port=port, controller_port=controller_port, heap="512m")
    broker.up(timeout_seconds=120, echo=lambda msg: print(msg, file=sys.stderr))
    try:
        settings = api_settings.model_copy(update={"kafka_bootstrap": broker.bootstrap})
        kafka = KafkaTestClient(settings)
        kafka.create_topics()
        kafka.close()
        with TestClient(create_app(settings), raise_server_exceptions=False) as client:
            assert client.get("/readyz").status_code == 200
            broker.down(echo=lambda *_: None)
            started = time.monotonic()
            answer = client.get("/readyz")
            elapsed = time.monotonic() - started
            assert answer.status_code == 503, answer.text
            body = answer.json()
            assert "broker" in body["failed"], body
            assert body["checks"]["database"]["ok"], body
            assert elapsed < CHECK_TIMEOUT_SECONDS + 1.0, f"answered after {elapsed:.1f} s"
            broker.up(timeout_seconds=120, echo=lambda *_: None)
            eventually(lambda: client.get("/readyz").status_code == 200, timeout=60,
                       what="/readyz ready again once the broker is back")
    finally:
        broker.down(echo=lambda *_: None)
