"""Shared test fixtures: paths of the project's own copy of the contract."""

from __future__ import annotations

import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from settings import Settings
from tests.store.postgres import PostgresCluster, PostgresUnavailable
from topics.local_kafka import LocalCluster, LocalKafka

TESTS_DIR = Path(__file__).resolve().parent
CONTRACT_DIR = TESTS_DIR / "data" / "contract"
SAMPLES_DIR = CONTRACT_DIR / "samples"
PROJECT_DIR = TESTS_DIR.parent


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    return SAMPLES_DIR


@pytest.fixture(scope="session")
def contract_reference_dir() -> Path:
    return CONTRACT_DIR / "reference"


# One real Apache Kafka broker for the whole test session, started only when a
# test asks for it: the same broker `gridlink kafka up` runs (Maven-fetched
# jars, KRaft, loopback), on free ports in a temporary directory.


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    defaults = Settings()
    broker = LocalKafka(
        data_dir=tmp_path_factory.mktemp("kafka"),
        cache_dir=defaults.kafka_cache_dir,
        port=_free_port(),
        controller_port=_free_port(),
        heap="768m",
    )
    broker.up(timeout_seconds=120, echo=lambda msg: print(msg, file=sys.stderr))
    yield broker
    broker.down(echo=lambda *_: None)


def _free_ports(count: int) -> list[int]:
    """``count`` distinct free ports (all held open until each is chosen)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


# Three real Apache Kafka nodes (each a broker and a controller-quorum voter), as
# `gridlink kafka up --brokers 3` runs them, for the tests that need replication or
# kill a broker: started only when a test asks, on free ports in a temporary
# directory. A test that kills or freezes a node (``cluster.nodes[i].kill(signal)``)
# starts it again (``.start()``) before it ends, so the next test finds three.


@pytest.fixture(scope="session")
def kafka_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    ports = _free_ports(6)
    cluster = LocalCluster.on_ports(
        data_dir=tmp_path_factory.mktemp("kafka-cluster"),
        cache_dir=Settings().kafka_cache_dir,
        ports=list(zip(ports[::2], ports[1::2], strict=True)),
        heap="512m",
    )
    cluster.up(timeout_seconds=180, echo=lambda msg: print(msg, file=sys.stderr))
    yield cluster
    cluster.down(echo=lambda *_: None)


@contextmanager
def postgres_cluster_for(who: str) -> Iterator[PostgresCluster]:
    """A PostgreSQL server started for ``who`` and stopped after; without PostgreSQL
    the test fails and says why (it is never skipped)."""
    try:
        cluster = PostgresCluster()
        cluster.start()
    except PostgresUnavailable as error:
        pytest.fail(f"{who} need PostgreSQL: {error}", pytrace=False)
    try:
        yield cluster
    finally:
        cluster.stop()


_STARTED = time.time()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The fault suite's table (tests/faults), when it ran in this session."""
    table = PROJECT_DIR / "artifacts" / "faults.md"
    if table.exists() and table.stat().st_mtime >= _STARTED:
        terminalreporter.write_sep("=", "fault table (artifacts/faults.md)")
        terminalreporter.write(table.read_text(encoding="utf-8"))
