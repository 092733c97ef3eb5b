"""A tiny run of the atomic-write prototype benchmark on the session's broker, so it
cannot rot: every figure is there, and what each candidate wrote is in the log —
each input's three events exactly once, in its own partition (read_committed, so a
transaction's records count only once committed)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest
from kafka import KafkaConsumer, TopicPartition

from tests.conftest import PROJECT_DIR
from topics.local_kafka import LocalKafka

pytestmark = pytest.mark.integration

TINY = ["--runs", "1", "--warmup-inputs", "0", "--inputs", "300", "--partitions", "2",
        "--rate", "100", "--slow-rate", "20", "--latency-seconds", "1.5", "--warmup-seconds", "0.5"]


def _events_by_input(bootstrap: str, topic: str, partitions: int) -> dict[bytes, list]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                             isolation_level="read_committed")
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        found: dict[bytes, list] = defaultdict(list)
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            for tp, records in consumer.poll(timeout_ms=1000).items():
                for record in records:
                    ident, seq, partition, _ = record.value.split(b"|", 3)
                    found[ident].append((int(seq), int(partition), tp.partition))
        return found
    finally:
        consumer.close()


@pytest.mark.timeout(300)
def test_a_tiny_atomic_write_bench_gives_every_figure_and_loses_nothing(
        kafka_broker: LocalKafka, tmp_path: Path):
    out = tmp_path / "atomic.json"
    run = subprocess.run([sys.executable, "-m", "benchmarks.atomic_write",
                          "--bootstrap", kafka_broker.bootstrap,
                          "--broker-pids", str(kafka_broker.pid()), *TINY, "--out", str(out)],
                         cwd=PROJECT_DIR, capture_output=True, text=True, timeout=280)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-5000:]
    for heading in ("writer µs/event", "CPU per input while paced", "P1 p99"):
        assert heading in run.stdout, heading
    results = json.loads(out.read_text(encoding="utf-8"))
    assert results["machine"]["cores"] > 0 and results["machine"]["cpu_model"]
    assert results["command"].startswith("python -m benchmarks.atomic_write --bootstrap")
    assert [r["mode"] for r in results["runs"]] == ["log", "txn"]
    assert {row["mode"] for row in results["summary"]} == {"log", "txn"}

    for result in results["runs"]:
        drain = result["drain"]
        assert drain["inputs"] == 300 and drain["events"] == 900
        for key in ("events_per_second", "writer_cpu_us_per_event", "writer_cpu_us_per_input",
                    "broker_cpu_seconds", "broker_cpu_us_per_input"):
            assert drain[key] is not None and drain[key] >= 0, (result["mode"], key)
        assert drain["write_stages"]["writes"] > 0
        for phase in ("rate", "slow"):
            latency = result["latency"][phase]
            assert latency["writer_cpu_us_per_input"] > 0
            assert latency["broker_cpu_us_per_input"] is not None
            assert latency["department_messages_missing"] == {"read_uncommitted": 0,
                                                              "read_committed": 0}
            for level in ("read_uncommitted", "read_committed"):
                figures = latency[level]
                for stat in ("p50", "p99", "p99.9", "p1_p99"):
                    assert figures[stat] is not None and figures[stat] > 0, (phase, level, stat)
                assert figures["p50"] <= figures["p99"] <= figures["p99.9"] <= figures["max"]
        check = result["check"]
        assert check["inputs"] == 300 + 200 + 40  # the backlog, then (1.5 + 0.5) s × each rate
        assert {key: value for key, value in check.items() if key != "inputs"} == {
            "inputs_lost": 0, "events_duplicated": 0, "events_misplaced": 0,
            "events_unexpected": 0, "fan_out_missing": 0, "fan_out_extra": 0}

        # read back apart from the benchmark's own check: every input's three events,
        # once each, in the partition the input came from
        events = _events_by_input(kafka_broker.bootstrap, f"{result['topic_prefix']}events", 2)
        assert len(events) == check["inputs"], result["mode"]
        for ident, found in events.items():
            assert sorted(seq for seq, _, _ in found) == [1, 2, 3], (result["mode"], ident)
            assert all(origin == partition for _, origin, partition in found), ident
