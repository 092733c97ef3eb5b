"""The three-node local cluster (``gridlink kafka up --brokers 3``): ``acks=all``
writes that survive a broker killed with -9, and the broker rejoining when started
again."""

from __future__ import annotations

import signal
import time
import uuid

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic

from cli.kafka_local import LocalCluster

pytestmark = pytest.mark.integration


def _partitions(admin: KafkaAdminClient, topic: str) -> list[dict]:
    (described,) = admin.describe_topics([topic])
    return sorted(described["partitions"], key=lambda p: p["partition_index"])


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
