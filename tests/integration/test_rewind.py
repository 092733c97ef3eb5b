"""The rewind Faust asks for after discarding a prefetch reaches never-committed
partitions too (``agents.rewind``), on a real broker and a real consumer group."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

from agents.rewind import rewind

pytestmark = pytest.mark.integration

RECORDS = 10


async def _scenario(bootstrap: str) -> dict[str, int]:
    run = uuid.uuid4().hex[:8]
    stream, committed, changelog = (f"rewind{run}.{name}"
                                    for name in ("never", "committed", "changelog"))
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(name, 1, 1) for name in (stream, committed, changelog)])
    admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for topic in (stream, committed, changelog):
            for n in range(RECORDS):
                await producer.send_and_wait(topic, str(n).encode())
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=f"rewind-{run}",
                                enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    try:
        tps = [TopicPartition(topic, 0) for topic in (stream, committed, changelog)]
        consumer.assign(tps)
        await consumer.commit({TopicPartition(committed, 0): 4})
        await consumer.seek_to_beginning(*tps)
        read = 0
        while read < 3 * RECORDS:  # a prefetch that is then thrown away
            batches = await consumer.getmany(timeout_ms=1000)
            read += sum(len(records) for records in batches.values())
        assert all([await consumer.position(tp) == RECORDS for tp in tps])

        await rewind(consumer, changelogs={changelog})
        return {tp.topic: await consumer.position(tp) for tp in tps}
    finally:
        await consumer.stop()


def test_rewind_sends_never_committed_partitions_back_to_their_start(kafka_broker):
    positions = asyncio.run(_scenario(kafka_broker.bootstrap))
    by_name = {topic.rsplit(".", 1)[1]: position for topic, position in positions.items()}
    assert by_name == {
        "never": 0,  # nothing committed: read again from the beginning, nothing skipped
        "committed": 4,  # committed: back to the committed offset, as before
        "changelog": RECORDS,  # changelogs: Faust positions them itself, left alone
    }
