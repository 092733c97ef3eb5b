"""The worker's producer (agents/producer.py) on a real broker: a group of records lands
whole in one record batch, the records of a partition keep their order, and a batch the
broker refuses is reported, never forgotten."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.admin import NewTopic

from agents.producer import BATCH_BYTES, DeliveryFailed, Producer
from settings import Settings

pytestmark = pytest.mark.integration

PARTITIONS = 3
GROUPS = 2_400  # inputs, each a group of records (one input's case events)
VALUE_BYTES = 700


def _topic(bootstrap: str, **configs: str) -> str:
    topic = f"producer-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(topic, PARTITIONS, 1, topic_configs=configs)])
    admin.close()
    return topic


async def _send(bootstrap: str, fill) -> list:  # type: ignore[no-untyped-def]
    producer = Producer(Settings(kafka_bootstrap=bootstrap))
    await producer.start()
    try:
        batches = producer.batches()
        fill(batches)
        return await batches.send()
    finally:
        await producer.stop()


def test_groups_land_whole_and_in_order_and_the_landing_is_told(kafka_broker) -> None:
    bootstrap = kafka_broker.bootstrap
    topic = _topic(bootstrap)

    def fill(batches) -> None:  # type: ignore[no-untyped-def]
        for n in range(GROUPS):
            size = 1 + n % 5
            batches.add_group(topic, n % PARTITIONS, [
                (f"C-{n}".encode(), f"{n}#{i}#".encode().ljust(VALUE_BYTES, b"."), [
                    ("gridlink-input", str(n).encode())]) for i in range(size)],
                what=f"input {n}")

    landed = asyncio.run(_send(bootstrap, fill))
    assert GROUPS * 3 * VALUE_BYTES > 2 * PARTITIONS * BATCH_BYTES  # several batches each
    assert sum(records for _, _, _, records in landed) == sum(1 + n % 5 for n in range(GROUPS))
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, consumer_timeout_ms=3000)
    tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    got = sorted(consumer, key=lambda r: (r.partition, r.offset))
    consumer.close()
    # each partition holds its groups in the order added, each group's records together
    for partition in range(PARTITIONS):
        values = [r.value.split(b"#")[:2] for r in got if r.partition == partition]
        expected = [[str(n).encode(), str(i).encode()] for n in range(partition, GROUPS,
                                                                      PARTITIONS)
                    for i in range(1 + n % 5)]
        assert values == expected
    # each landed batch starts where the previous one of its partition ended
    nexts: dict[int, int] = {}
    for _, partition, metadata, records in landed:
        assert metadata.offset == nexts.get(partition, 0)
        nexts[partition] = metadata.offset + records
    # a group never straddles two batches: the batch boundaries fall between inputs
    starts = {(p, metadata.offset) for _, p, metadata, _ in landed}
    for record in got:
        if (record.partition, record.offset) in starts:
            n, i = record.value.split(b"#")[:2]
            assert i == b"0", (record.partition, record.offset)


def test_a_batch_the_broker_refuses_is_reported(kafka_broker) -> None:
    bootstrap = kafka_broker.bootstrap
    topic = _topic(bootstrap, **{"max.message.bytes": "2000"})

    def fill(batches) -> None:  # type: ignore[no-untyped-def]
        batches.add_group(topic, 0, [(b"C-1", b"x" * 1500, []), (b"C-1", b"y" * 1500, [])],
                          what="case C-1")

    with pytest.raises(DeliveryFailed) as failure:
        asyncio.run(_send(bootstrap, fill))
    assert failure.value.topic == topic and failure.value.partition == 0
    assert "case C-1" in str(failure.value)
