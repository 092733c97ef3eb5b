"""``Outbox.send_burst`` on a real broker: every record lands, in the partition
Kafka's default partitioner gives its key, in order per key, stamped when packed."""

from __future__ import annotations

import asyncio
import time
import uuid
from types import SimpleNamespace

import pytest
from aiokafka import AIOKafkaProducer
from kafka import KafkaAdminClient, KafkaConsumer
from kafka.admin import NewTopic
from kafka.partitioner import murmur2

from agents.outbox import BURST_BATCH_BYTES, Outbox
from agents.partitioner import KeyPartitioner

pytestmark = pytest.mark.integration

PARTITIONS = 4
KEYS = 500
PER_KEY = 12  # 6,000 records of 1 KiB: several full record batches per partition
VALUE_BYTES = 1024


def _app(producer: AIOKafkaProducer) -> SimpleNamespace:
    """What the outbox uses of a Faust app: its producer and partitioner."""
    return SimpleNamespace(producer=SimpleNamespace(_ensure_producer=lambda: producer),
                           conf=SimpleNamespace(producer_partitioner=KeyPartitioner()))


async def _send(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        await Outbox(_app(producer)).send_burst(topic, records)  # type: ignore[arg-type]
        await producer.flush()
    finally:
        await producer.stop()


def test_a_burst_lands_whole_in_key_order_in_the_default_partitions(kafka_broker) -> None:
    bootstrap = kafka_broker.bootstrap
    topic = f"outbox-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
    admin.close()
    keys = [f"C20261127-371502004-{n:08x}".encode() for n in range(KEYS)]
    records = [(key, f"{key.decode()}#{i}#".encode().ljust(VALUE_BYTES, b"."))
               for i in range(PER_KEY) for key in keys]
    assert len(records) * VALUE_BYTES > 2 * PARTITIONS * BURST_BATCH_BYTES  # batches fill up

    before_ms = time.time() * 1000
    asyncio.run(_send(bootstrap, topic, records))
    after_ms = time.time() * 1000

    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             consumer_timeout_ms=5000)
    got = list(consumer)
    consumer.close()
    assert len(got) == len(records)
    # kafka-python's own murmur2, hashed as Java clients and kcat do
    misplaced = [r.key for r in got if r.partition != (murmur2(r.key) & 0x7FFFFFFF) % PARTITIONS]
    assert misplaced == []
    by_key: dict[bytes, list[int]] = {}
    for record in sorted(got, key=lambda r: (r.partition, r.offset)):
        by_key.setdefault(record.key, []).append(int(record.value.split(b"#")[1]))
    assert {key: seen for key, seen in by_key.items() if seen != list(range(PER_KEY))} == {}
    assert all(before_ms - 1 <= r.timestamp <= after_ms + 1 for r in got)
