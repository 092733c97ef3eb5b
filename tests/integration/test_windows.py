"""``agents.batches.windows`` on a real broker, through a real Faust worker: every
event is handed over, and a window the agent fails in is not committed, so a
restarted worker reads it again (Faust's ``take_events`` would have committed it)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic

from tests.conftest import PROJECT_DIR

pytestmark = pytest.mark.integration

RECORDS = 40
FAIL_AT = 21  # the agent raises on this one, inside a window of four


def _worker(bootstrap: str, topic: str, group: str, seen: Path, fail_at: str
            ) -> subprocess.Popen[bytes]:
    env = {**os.environ, "WINDOWS_BROKER": bootstrap, "WINDOWS_TOPIC": topic,
           "WINDOWS_GROUP": group, "WINDOWS_SEEN": str(seen), "WINDOWS_FAIL_AT": fail_at}
    return subprocess.Popen([sys.executable, "-m", "tests.integration.windows_app"],
                            cwd=PROJECT_DIR, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)


def _seen(path: Path) -> list[int]:
    return [int(line) for line in path.read_text().split()] if path.exists() else []


def _committed(bootstrap: str, topic: str, group: str) -> int:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                             enable_auto_commit=False)
    try:
        return consumer.committed(TopicPartition(topic, 0)) or 0
    finally:
        consumer.close()


def _until(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not seen within {seconds} s")
        time.sleep(0.2)


def _stop(worker: subprocess.Popen[bytes]) -> str:
    worker.send_signal(signal.SIGTERM)
    try:
        _, err = worker.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        worker.kill()
        _, err = worker.communicate()
        raise AssertionError(f"the worker did not stop:\n{err.decode()[-3000:]}") from None
    return err.decode()


def test_a_window_the_agent_fails_in_is_read_again(kafka_broker, tmp_path: Path) -> None:
    bootstrap = kafka_broker.bootstrap
    run = uuid.uuid4().hex[:8]
    topic, group = f"windows{run}.events", f"windows-{run}"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(topic, 1, 1)])
    admin.close()
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    for n in range(RECORDS):
        producer.send(topic, key=b"k", value=str(n).encode())
    producer.flush()
    producer.close()

    first = tmp_path / "first.txt"
    worker = _worker(bootstrap, topic, group, first, str(FAIL_AT))
    try:
        _until(lambda: FAIL_AT in _seen(first), 90, "the failing event")
        time.sleep(2)  # ten commit intervals: whatever was acked is committed by now
        committed = _committed(bootstrap, topic, group)
    finally:
        log = _stop(worker)
    assert "failing at 21" in log  # the agent did fail there
    handed = _seen(first)
    assert handed[: FAIL_AT + 1] == list(range(FAIL_AT + 1))  # each once, in order
    # the windows before the failed one are committed; nothing from the failed window
    # on is (a window holds at most four events, so it began at FAIL_AT - 3 or later)
    assert FAIL_AT - 3 <= committed <= FAIL_AT
    assert _committed(bootstrap, topic, group) <= FAIL_AT  # not even when the worker stops

    second = tmp_path / "second.txt"
    worker = _worker(bootstrap, topic, group, second, "")
    try:
        _until(lambda: len(_seen(second)) and _seen(second)[-1] == RECORDS - 1, 90,
               "the last event, read by a restarted worker")
        _until(lambda: _committed(bootstrap, topic, group) == RECORDS, 30,
               "every offset committed")
    finally:
        _stop(worker)
    again = _seen(second)
    assert again[0] <= FAIL_AT and again == list(range(again[0], RECORDS))
