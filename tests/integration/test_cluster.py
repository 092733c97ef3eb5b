"""The three-node local cluster (``gridlink kafka up --brokers 3``): contract topics
replicated three times with two in sync, ``acks=all`` writes that survive a broker
killed with -9, the broker rejoining when started again, and ``topics create``
reporting an existing topic that is not as specified."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic

from tests.conftest import PROJECT_DIR
from topics.local_kafka import LocalCluster

pytestmark = pytest.mark.integration


def _partitions(admin: KafkaAdminClient, topic: str) -> list[dict]:
    (described,) = admin.describe_topics([topic])
    return sorted(described["partitions"], key=lambda p: p["partition_index"])


def _topics_create(cluster: LocalCluster, prefix: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "GRIDLINK_KAFKA_BOOTSTRAP": cluster.bootstrap,
           "GRIDLINK_TOPIC_PREFIX": prefix, "GRIDLINK_PARTITIONS": "2"}
    env.pop("GRIDLINK_REPLICATION", None)  # the cluster decides
    return subprocess.run([sys.executable, "-m", "cli.main", "topics", "create"], env=env,
                          cwd=PROJECT_DIR, capture_output=True, text=True, timeout=120)


def test_contract_topics_get_three_copies_and_two_in_sync(kafka_cluster: LocalCluster):
    prefix = f"r{uuid.uuid4().hex[:8]}."
    run = _topics_create(kafka_cluster, prefix)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "3 broker(s): replication 3, min.insync.replicas 2" in run.stdout
    assert "differs" not in run.stdout
    admin = KafkaAdminClient(bootstrap_servers=kafka_cluster.bootstrap)
    try:
        names = sorted(t for t in admin.list_topics() if t.startswith(prefix))
        assert f"{prefix}cases.events" in names and len(names) > 10
        for name in names:
            assert {len(p["replica_nodes"]) for p in _partitions(admin, name)} == {3}, name
        configs = admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name, configs={"min.insync.replicas": None})
             for name in names], config_filter="all")["topic"]
        assert {configs[name]["min.insync.replicas"]["value"] for name in names} == {"2"}
    finally:
        admin.close()


def test_topics_create_reports_an_existing_topic_that_differs_and_leaves_it(
        kafka_cluster: LocalCluster):
    prefix = f"d{uuid.uuid4().hex[:8]}."
    events = f"{prefix}cases.events"
    admin = KafkaAdminClient(bootstrap_servers=kafka_cluster.bootstrap)
    try:
        # the spec: 2 partitions, 3 copies, kept forever
        admin.create_topics([NewTopic(events, 1, 1)], wait_for_metadata=True)
        run = _topics_create(kafka_cluster, prefix)
        assert run.returncode == 0, run.stdout + run.stderr
        differs = [line for line in run.stdout.splitlines() if line.startswith("differs")]
        assert len(differs) == 1, run.stdout
        assert differs[0].startswith(f"differs  {events}: partitions 1 (spec 2), "
                                     "replication factor 1 (spec 3), ")
        assert "retention.ms 604800000 (spec -1)" in differs[0]
        assert "min.insync.replicas 1 (spec 2)" in differs[0]
        assert "(1 differ from the spec and were left as they are)" in run.stdout
        partitions = _partitions(admin, events)  # never changed
        assert len(partitions) == 1 and len(partitions[0]["replica_nodes"]) == 1
    finally:
        admin.close()


def test_acks_all_writes_survive_a_broker_killed_and_it_rejoins(kafka_cluster: LocalCluster):
    topic = f"fault-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=kafka_cluster.bootstrap)
    admin.create_topics([NewTopic(topic, 2, 3, topic_configs={"min.insync.replicas": "2"})],
                        wait_for_metadata=True)
    producer = KafkaProducer(bootstrap_servers=kafka_cluster.bootstrap, acks="all",
                             enable_idempotence=True, linger_ms=5, delivery_timeout_ms=60_000,
                             request_timeout_ms=10_000)
    victim = kafka_cluster.node(_partitions(admin, topic)[0]["leader_id"])
    total, sent = 600, []
    try:
        for i in range(total):  # over about 6 s; the leader of partition 0 dies a third in
            if i == total // 3:
                victim.kill(signal.SIGKILL)
            sent.append(producer.send(topic, value=str(i).encode(), partition=i % 2))
            time.sleep(0.01)
        acknowledged = [future.get(timeout=90) for future in sent]  # raises if any failed
        assert len(acknowledged) == total

        # the node starts again on its data and is back in every partition's ISR
        victim.start(timeout_seconds=120)
        deadline = time.monotonic() + 90
        while any(victim.node_id not in p["isr_nodes"] for p in _partitions(admin, topic)):
            assert time.monotonic() < deadline, _partitions(admin, topic)
            time.sleep(0.5)
    finally:
        producer.close()
        if victim.pid() is None:  # leave three nodes for the next test
            victim.start(timeout_seconds=120)
        admin.close()

    consumer = KafkaConsumer(bootstrap_servers=kafka_cluster.bootstrap, enable_auto_commit=False)
    try:
        tps = [TopicPartition(topic, p) for p in (0, 1)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        values: list[int] = []
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            for records in consumer.poll(timeout_ms=1000).values():
                values += [int(record.value) for record in records]
    finally:
        consumer.close()
    assert sorted(values) == list(range(total))  # every acknowledged write, exactly once
