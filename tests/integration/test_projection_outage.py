"""The SQL projection through a database outage, on the real broker and a real
PostgreSQL: case events that arrive while the server is down reach the store once it
is back, whether the worker waited it out or was stopped meanwhile."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable, Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, text

from tests.conftest import postgres_cluster_for
from tests.integration.samples import valid_messages
from tests.store.postgres import PostgresCluster
from topics import registry
from topics.local_kafka import free_port

pytestmark = pytest.mark.integration

RETRIES = "gridlink_projection_retries_total"


@pytest.fixture
def postgres() -> Iterator[tuple[PostgresCluster, str]]:
    """A PostgreSQL server of its own (the test stops and restarts it) and a database."""
    with postgres_cluster_for("the outage tests") as cluster:
        yield cluster, cluster.create_database("gridlink")


def _logged(kafka) -> set[tuple[str, int]]:
    """(case_id, seq) of every event on cases.events."""
    return {(e["case_id"], e["seq"])
            for e in (json.loads(r.value) for r in kafka.read(registry.CASE_EVENTS))}


def _stored(url: str) -> set[tuple[str, int]]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return {(case_id, seq) for case_id, seq in
                    connection.execute(text("SELECT case_id, seq FROM case_events"))}
    finally:
        engine.dispose()


def _retries(port: int) -> float:
    """The worker's projection retry counter, as Prometheus would scrape it (0 if absent)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        exposition = response.read().decode()
    return sum(sample.value for family in text_string_to_metric_families(exposition)
               for sample in family.samples if sample.name == RETRIES)


def _until(check: Callable[[], bool], what: str, timeout: float, context: Callable[[], str]
           ) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise AssertionError(f"{what} not seen within {timeout} s\n{context()[-4000:]}")


def _settled(kafka, seconds: float = 3.0) -> set[tuple[str, int]]:
    """cases.events once nothing more has been appended for ``seconds``."""
    deadline = time.monotonic() + 60
    logged = _logged(kafka)
    while time.monotonic() < deadline:
        time.sleep(seconds)
        now = _logged(kafka)
        if now and now == logged:
            return now
        logged = now
    raise AssertionError(f"cases.events still growing after 60 s ({len(logged)} events)")


def test_events_sent_while_the_database_is_down_are_stored_once_it_is_back(
        postgres, start_gridlink, kafka):
    cluster, url = postgres
    messages = valid_messages()
    first, second = messages[: len(messages) // 2], messages[len(messages) // 2 :]
    port = free_port()
    kafka.create_topics()
    worker = start_gridlink("worker", env={"GRIDLINK_DATABASE_URL": url,
                                           "GRIDLINK_WORKER_METRICS_PORT": str(port)})
    worker.wait_for_log("Worker]: Ready", timeout=90)  # it has migrated the database

    # 1. the server goes down while events flow, and comes back: the worker waits it out
    cluster.server_down()
    for topic, key, value in first:
        kafka.produce(topic, value, key=key)
    worker.wait_for_log("OperationalError", timeout=60)  # the projection tried, and was refused
    during = _settled(kafka)
    time.sleep(3)  # a few refusals more
    cluster.server_up()
    _until(lambda: _stored(url) >= during, f"the {len(during)} events of the outage stored",
           60, lambda: worker.log() + f"\nmissing: {sorted(during - _stored(url))}")
    assert _stored(url) == _logged(kafka)
    retried = _retries(port)
    assert retried >= 2, worker.log()[-3000:]
    assert "the database refused a batch" in worker.log()

    # 2. the worker is stopped while the server is down: the batch it could not write is
    # not committed, so the worker started after the outage writes it
    cluster.server_down()
    for topic, key, value in second:
        kafka.produce(topic, value, key=key)
    _until(lambda: _retries(port) > retried, "another refusal", 60, worker.log)
    logged = _settled(kafka)
    assert logged > during
    stopping = time.monotonic()
    worker.stop()
    assert time.monotonic() - stopping < 20, "the worker did not stop promptly"
    cluster.server_up()
    again = start_gridlink("worker", env={"GRIDLINK_DATABASE_URL": url,
                                          "GRIDLINK_WORKER_METRICS_PORT": str(free_port())})
    again.wait_for_log("Worker]: Ready", timeout=90)
    _until(lambda: _stored(url) >= logged, f"all {len(logged)} events stored", 60,
           lambda: again.log() + f"\nmissing: {sorted(logged - _stored(url))}")
    assert _stored(url) == _logged(kafka)


def test_an_event_the_database_refuses_for_good_is_dead_lettered_and_the_rest_stored(
        postgres, start_gridlink, kafka, tmp_path):
    """A case event PostgreSQL cannot hold (a NUL in a text: intake refuses those, but
    anything may reach the log) is dead-lettered with its bytes and the database's
    words; the events after it are stored, and ``gridlink replay`` skips it too."""
    _, url = postgres
    kafka.create_topics()
    worker = start_gridlink("worker", env={"GRIDLINK_DATABASE_URL": url})
    worker.wait_for_log("Worker]: Ready", timeout=90)
    messages = valid_messages()
    first, rest = messages[:3], messages[3:]
    for topic, key, value in first:
        kafka.produce(topic, value, key=key)
    _until(lambda: bool(_stored(url)) and _stored(url) == _settled(kafka), "the first cases",
           60, worker.log)

    opened = next(json.loads(r.value) for r in kafka.read(registry.CASE_EVENTS)
                  if json.loads(r.value)["type"] == "case_opened")
    opened["case_id"] = opened["case_id"][:-4] + "9999"
    opened["event"]["text"] = "化机小区\u0000垃圾满溢"
    poison = json.dumps(opened, ensure_ascii=False).encode()
    kafka.produce(registry.CASE_EVENTS, poison, key=opened["case_id"].encode())
    for topic, key, value in rest:
        kafka.produce(topic, value, key=key)

    def dead_lettered() -> list[dict]:
        return [letter for letter in (json.loads(r.value) for r in kafka.read(registry.DEAD_LETTER))
                if letter["error"]["code"] == "projection_refused"]

    _until(lambda: bool(dead_lettered()), "the refused event dead-lettered", 60, worker.log)
    letter = dead_lettered()[0]
    assert letter["source_topic"].endswith(registry.CASE_EVENTS), letter
    assert "DataError" in letter["error"]["reason"], letter
    assert letter["raw_text"] == poison.decode(), letter
    logged = _settled(kafka) - {(opened["case_id"], opened["seq"])}
    _until(lambda: _stored(url) == logged, "every other event stored", 60,
           lambda: worker.log() + f"\nmissing: {sorted(logged - _stored(url))}")
    worker.stop()

    fresh = postgres[0].create_database("replayed")
    replay = start_gridlink("replay", env={"GRIDLINK_DATABASE_URL": fresh})
    assert replay.proc.wait(timeout=120) == 0, replay.log()
    assert "the database refuses it for good" in replay.log()
    assert _stored(fresh) == logged
