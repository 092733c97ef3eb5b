"""Faust's consumer waits at most ``GRIDLINK_KAFKA_FETCH_WAIT_MS`` on a broker.

aiokafka keeps one fetch request in flight per broker, and leaves out of it every
partition whose records the application has not taken yet. Once such records
have waited longer than the prefetch backoff (100 ms), the next request goes out
for the other partitions alone — and if none of those receives a record, the
broker holds it for the whole fetch wait. Until it answers, nothing new is
fetched from that broker, for any partition, however soon the records are taken.

Faust builds its consumer with a fetch wait of 1,500 ms, and its consumer always
holds partitions that receive nothing (the assignor's leader topic, for one). So
whenever the writer took more than 100 ms to get to a fetch's records — which
happens under load — the next fetch came 1.5 s later with 1.5 s of inputs, which
again took more than 100 ms: inputs reached the writer 1.5 s old and more (up to
10 s), at half the rate one worker drains (``docs/adr/0003-fetch-wait.md``).
With a short wait a stalled request answers within it.

``install(settings)`` gives the consumer Faust builds for a worker GridLink's fetch
wait, the one :func:`topics.clients.aio_consumer` gives every other consumer.
"""

from __future__ import annotations

from typing import Any

from aiokafka import AIOKafkaConsumer
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

from settings import Settings

_faust_create = AIOKafkaConsumerThread._create_worker_consumer
_wait_ms = Settings.model_fields["kafka_fetch_wait_ms"].default


def _create_worker_consumer(self: AIOKafkaConsumerThread, transport: Any) -> AIOKafkaConsumer:
    consumer = _faust_create(self, transport)
    # read once, when the consumer starts and builds its fetcher; Faust passes no setting
    consumer._fetch_max_wait_ms = _wait_ms
    return consumer


def install(settings: Settings) -> None:
    """Wrap Faust's worker consumer factory (idempotent): its consumers wait at most
    ``settings.kafka_fetch_wait_ms``."""
    global _wait_ms
    _wait_ms = settings.kafka_fetch_wait_ms
    AIOKafkaConsumerThread._create_worker_consumer = (  # type: ignore[method-assign]
        _create_worker_consumer)
