"""A fetch stalled on partitions that receive nothing holds every partition of its
broker for the whole fetch wait (``agents.fetch_wait``), on a real broker.

The scenario: a consumer holds a busy partition and an idle one. A record of the
busy one is fetched and left untaken longer than aiokafka's prefetch backoff
(100 ms), so the next fetch goes out for the idle partition alone, and the broker
holds it. The busy partition's next record can be fetched only once that fetch
is answered: after the fetch wait, however soon the first record is taken.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

from agents.app import create_app
from settings import Settings
from topics import clients

pytestmark = pytest.mark.integration

FAUST_FETCH_WAIT_MS = 1_500  # what Faust builds its worker consumer with


async def _next_record_delay(consumer: AIOKafkaConsumer, bootstrap: str) -> float:
    """Seconds from sending the busy partition's second record to taking it."""
    run = uuid.uuid4().hex[:8]
    busy, idle = f"fetchwait{run}.busy", f"fetchwait{run}.idle"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(name, 1, 1) for name in (busy, idle)])
    admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    await consumer.start()
    try:
        busy_tp = TopicPartition(busy, 0)
        consumer.assign([busy_tp, TopicPartition(idle, 0)])
        await consumer.seek_to_end()
        for tp in consumer.assignment():
            await consumer.position(tp)
        await asyncio.sleep(0.5)  # the first fetches of both partitions are out

        await producer.send_and_wait(busy, b"first")
        await asyncio.sleep(0.4)  # fetched, and left untaken past the prefetch backoff
        first = await consumer.getmany(busy_tp, timeout_ms=5_000)
        assert [r.value for r in first.get(busy_tp, [])] == [b"first"]

        sent = time.monotonic()
        await producer.send_and_wait(busy, b"second")
        while True:
            batch = await consumer.getmany(busy_tp, timeout_ms=5_000)
            assert batch, "the second record never came"
            if any(r.value == b"second" for r in batch[busy_tp]):
                return time.monotonic() - sent
    finally:
        await consumer.stop()
        await producer.stop()


def test_faust_s_fetch_wait_holds_the_next_record_for_the_whole_wait(kafka_broker):
    async def scenario() -> float:
        consumer = AIOKafkaConsumer(bootstrap_servers=kafka_broker.bootstrap, group_id=None,
                                    enable_auto_commit=False,
                                    fetch_max_wait_ms=FAUST_FETCH_WAIT_MS)
        return await _next_record_delay(consumer, kafka_broker.bootstrap)

    delay = asyncio.run(scenario())
    assert delay > 0.7, f"{delay:.3f} s: the stall this scenario shows did not happen"


def test_gridlink_s_consumers_take_the_next_record_within_a_short_wait(kafka_broker,
                                                                        settings: Settings):
    async def scenario() -> float:
        consumer = clients.aio_consumer(settings, bootstrap=kafka_broker.bootstrap,
                                        group_id=None, enable_auto_commit=False)
        return await _next_record_delay(consumer, kafka_broker.bootstrap)

    delay = asyncio.run(scenario())
    assert delay < 0.5, f"{delay:.3f} s: held by a stalled fetch"


def test_the_consumer_faust_builds_for_a_worker_has_gridlink_s_fetch_wait(
        settings: Settings, tmp_path: Path):
    async def built() -> int:  # create_app installs agents.fetch_wait
        app = create_app(settings, tmp_path)
        thread = app.consumer._thread  # type: ignore[attr-defined]  # Faust's consumer thread
        consumer = thread._create_worker_consumer(app.transport)
        wait: int = consumer._fetch_max_wait_ms
        return wait

    assert asyncio.run(built()) == settings.kafka_fetch_wait_ms != FAUST_FETCH_WAIT_MS
