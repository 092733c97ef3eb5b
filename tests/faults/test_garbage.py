"""Garbage produced with ``kcat`` onto the topics a worker reads — ``cases.commands``
(the writer's input: located events and case commands) and ``cases.events`` (the
projection's input, and the log the writer recovers from): every record lands in the
dead-letter topic with its bytes, where it was and why, and the pipeline goes on,
through a restart too."""

from __future__ import annotations

import base64
import json
import subprocess
import time

import pytest

from clock import wall_clock
from streams.parse import PARSERS
from tests.faults.harness import (
    Report,
    check_log,
    check_projection,
    check_stores,
    read_topic,
    settings_of,
    wait_drained,
)
from tests.integration.samples import valid_messages
from topics import registry

pytestmark = [pytest.mark.faults, pytest.mark.integration]

GARBAGE = {
    registry.CASE_COMMANDS: [
        (b"C1", b"not json at all"),
        (b"371502004", b'{"type": "located_event", "event": {"event_id": 7}}'),
        (b"C2", b'{"type": "claim", "case_id": "C2", "command_id": "x", "actor": "a", '
                b'"at": "2026-12-07T10:00:00+08:00", "assignment_id": "A1", '
                b'"department": "chengguan"}'),  # no township in its case id
        (b"C3", b'{"type": "no_such_command", "case_id": "C3"}'),
        (b"\xff\xfe", b"\x00\x01\x02 binary"),
    ],
    registry.CASE_EVENTS: [
        (b"C20261207-371502004-deadbeef", b"{{{"),
        (b"C20261207-371502004-deadbeef", b'{"type": "case_opened", "case_id": 5}'),
    ],
}


def kcat(bootstrap: str, topic: str, partition: int, key: bytes, value: bytes) -> None:
    """Produce one record with Debian's kcat, as any outside client may."""
    subprocess.run(["kcat", "-b", bootstrap, "-P", "-t", topic, "-p", str(partition),
                    "-k", key.decode("latin-1"), "-K", "\x1f", "-D", "\x1e"],
                   input=key + b"\x1f" + value + b"\x1e", check=True, timeout=30)


def _opened(settings, source_ids: set[bytes]) -> set[bytes]:  # type: ignore[no-untyped-def]
    found = set()
    for record in read_topic(settings, registry.CASE_EVENTS):
        try:
            event = json.loads(record.value)
        except ValueError:
            continue
        if isinstance(event, dict) and isinstance(event.get("event"), dict):
            found.add(event["event"]["source_id"].encode())
    return found & source_ids


@pytest.mark.timeout(600)
def test_garbage_on_every_topic_a_worker_reads_is_dead_lettered(fault_env, start_gridlink,
                                                                 kafka, tmp_path, fault_table):
    settings = settings_of(fault_env)
    kafka.create_topics()
    worker = start_gridlink("worker")
    worker.wait_for_log("Worker]: Ready", timeout=90)
    samples = valid_messages()
    first, second = samples[: len(samples) // 2], samples[len(samples) // 2:]
    report = Report("garbage with `kcat` on cases.commands and cases.events, and a restart")
    for topic, key, value in first:
        kafka.produce(topic, value, key=key)
    sent = 0
    for topic, records in GARBAGE.items():
        for partition, (key, value) in enumerate(records):
            kcat(settings.kafka_bootstrap, settings.topic(topic), partition % 4, key, value)
            sent += 1
    worker.stop(9)  # a restart reads the log's tail, garbage and all
    worker = start_gridlink("worker")
    restarted = time.monotonic()
    for topic, key, value in second:
        kafka.produce(topic, value, key=key)
    later = {key for _, key, _ in second}
    while not _opened(settings, later) and time.monotonic() - restarted < 90:
        time.sleep(0.5)
    report.recovery_seconds.append(time.monotonic() - restarted)

    letters = [json.loads(r.value) for r in kafka.read(registry.DEAD_LETTER, count=sent,
                                                       timeout=60)]
    garbage = [letter for letter in letters
               if letter["source_topic"] in {settings.topic(t) for t in GARBAGE}]
    for topic, records in GARBAGE.items():  # each at least once (a restart may repeat one)
        got = {base64.b64decode(letter["raw_base64"]) for letter in garbage
               if letter["source_topic"] == settings.topic(topic)}
        assert got == {value for _, value in records}, topic
    assert all(letter["error"]["reason"] and letter["offset"] >= 0 for letter in garbage)
    # and the pipeline went on: every valid sample, before and after, is in a case
    wait_drained(settings, timeout=120)
    assert worker.stop() == 0
    valid = {PARSERS[registry.INGEST_SOURCES[topic]](value).event_id
             for topic, _, value in samples}
    states = check_log(report, settings, valid, stopped_at=wall_clock())
    check_stores(report, settings, states)
    check_projection(report, settings, fault_env, tmp_path)
    fault_table.append(report)
    assert report.failures == [], "\n".join(report.failures)
    assert (report.lost, report.holes, report.different, report.foreign) == (0, 0, 0, len(
        GARBAGE[registry.CASE_EVENTS]))
    assert report.events == len(samples) and report.cases == 10  # two samples join others
