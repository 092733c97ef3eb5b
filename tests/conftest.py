"""Shared test fixtures: paths of the project's own copy of the contract."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from settings import Settings
from tests.store.postgres import PostgresCluster, PostgresUnavailable
from topics.local_kafka import LocalCluster, LocalKafka, free_ports

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


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    defaults = Settings()
    port, controller_port = free_ports(2)
    broker = LocalKafka(
        data_dir=tmp_path_factory.mktemp("kafka"),
        cache_dir=defaults.kafka_cache_dir,
        port=port,
        controller_port=controller_port,
        heap="768m",
    )
    broker.up(timeout_seconds=120, echo=lambda msg: print(msg, file=sys.stderr))
    yield broker
    broker.down(echo=lambda *_: None)


# Three real Apache Kafka nodes (each a broker and a controller-quorum voter), as
# `gridlink kafka up --brokers 3` runs them, for the tests that need replication or
# kill a broker: started only when a test asks, on free ports in a temporary
# directory. A test that kills or freezes a node (``cluster.nodes[i].kill(signal)``)
# starts it again (``.start()``) before it ends, so the next test finds three.


@pytest.fixture(scope="session")
def kafka_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    ports = free_ports(6)
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
