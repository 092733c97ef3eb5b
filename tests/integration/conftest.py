"""Integration fixtures: one real Apache Kafka broker for the whole session.

The broker is the same one ``gridlink kafka up`` runs (Maven-fetched jars,
KRaft, loopback), started on free ports in a temporary directory and stopped
at the end. Each test gets its own topic prefix and consumer group, so tests
never see each other's messages.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from settings import Settings
from tests.integration.kafka_client import KafkaTestClient
from topics.local_kafka import LocalKafka

pytestmark = pytest.mark.integration


@pytest.fixture
def gridlink_env(kafka_broker: LocalKafka, tmp_path: Path) -> dict[str, str]:
    """``GRIDLINK_`` settings isolating one test: its own topics and consumer group."""
    run = uuid.uuid4().hex[:8]
    return {
        "GRIDLINK_KAFKA_BOOTSTRAP": kafka_broker.bootstrap,
        "GRIDLINK_TOPIC_PREFIX": f"t{run}.",
        "GRIDLINK_APP_ID": f"gridlink-test-{run}",
        "GRIDLINK_DATABASE_URL": f"sqlite:///{tmp_path / 'gridlink.db'}",
        "GRIDLINK_PARTITIONS": "2",
        "GRIDLINK_STATE_DIR": str(tmp_path / "state"),  # the workers' tables, per test
    }


@pytest.fixture
def settings(gridlink_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    for key, value in gridlink_env.items():
        monkeypatch.setenv(key, value)
    return Settings()


@pytest.fixture
def kafka(settings: Settings) -> Iterator[KafkaTestClient]:
    client = KafkaTestClient(settings)
    yield client
    client.close()


class GridlinkProcess:
    """A ``gridlink`` subcommand running as its own process, as an operator starts it."""

    def __init__(self, args: list[str], env: dict[str, str], log_path: Path) -> None:
        self.args = args
        self.log_path = log_path
        self._log = log_path.open("wb")
        full_env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cli.main", *args],
            env=full_env, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, text: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log():
                return
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"gridlink {' '.join(self.args)} exited with {self.proc.returncode}:\n"
                    + self.log()[-4000:]
                )
            time.sleep(0.1)
        raise AssertionError(f"{text!r} not seen within {timeout} s:\n" + self.log()[-4000:])

    def stop(self, sig: int = 15, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


@pytest.fixture
def start_gridlink(gridlink_env: dict[str, str], tmp_path: Path):
    """Start ``gridlink <args>`` processes; all are stopped after the test."""
    started: list[GridlinkProcess] = []

    def start(*args: str, env: dict[str, str] | None = None) -> GridlinkProcess:
        name = "-".join(args) + f"-{len(started)}"
        process = GridlinkProcess(list(args), {**gridlink_env, **(env or {})},
                                  tmp_path / f"{name}.log")
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


@pytest.fixture
def worker(start_gridlink, kafka: KafkaTestClient) -> GridlinkProcess:
    """A running ``gridlink worker`` over freshly created contract topics."""
    kafka.create_topics()
    process = start_gridlink("worker")
    process.wait_for_log("Worker]: Ready", timeout=90)
    return process
