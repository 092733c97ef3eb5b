"""What agents send, handed straight to the Kafka producer under Faust.

Faust's ``topic.send`` costs a few hundred microseconds of Python per record
(futures, callbacks, sensors); a case command causes half a dozen records, so
that cost, not GridLink's logic, set the case agent's rate. The outbox gives
each record to the same aiokafka producer Faust uses and does not wait for its
delivery:

- **order**: records are appended one after another, so those of one key keep
  their order within their partition, as with awaited sends;
- **at least once**: Faust flushes this producer before every offset commit, so
  an input is never committed before what it caused is on the broker;
- **failures**: a record the producer finally gives up on is logged and counted
  (``gridlink_send_failures_total``), as Faust's own sends are.

A burst of records known all at once (the deadlines falling due together) goes
out through :meth:`Outbox.send_burst`, each partition's share packed into a few
large record batches: about 2 µs a record when :meth:`Outbox.expect` was told its
key ahead (the fire was armed), 13 µs when not (Kafka's murmur2 hash of the key, in
Python), against 30 µs for a ``send``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import faust
from aiokafka.producer.message_accumulator import BatchBuilder

from observability import metrics
from observability.tracing import KafkaHeaders

log = logging.getLogger(__name__)

BURST_BATCH_BYTES = 512 * 1024  # one record batch of a burst, well below the broker's 1 MiB


class Outbox:
    """Sends records of raw bytes to topics by name (see the module's docstring)."""

    def __init__(self, app: faust.App) -> None:
        self.app = app
        self._producer: Any = None

    def _ensure_producer(self) -> Any:
        producer = self._producer
        if producer is None:  # the producer exists once the app has started
            producer = self._producer = self.app.producer._ensure_producer()
        return producer

    async def send(self, topic: str, key: bytes | None, value: bytes,
                   headers: KafkaHeaders | None = None) -> None:
        delivery: asyncio.Future[Any] = await self._ensure_producer().send(
            topic, value, key=key, headers=headers)
        delivery.add_done_callback(lambda done: _delivered(topic, done))

    def expect(self, key: bytes) -> None:
        """A record with ``key`` is to be sent soon: place it now (its partition's hash),
        so that the send itself is quicker."""
        remember = getattr(self.app.conf.producer_partitioner, "remember", None)
        if remember is not None:
            remember(key)

    async def send_burst(self, topic: str, records: Sequence[tuple[bytes, bytes]]) -> None:
        """Send keyed records, each partition's share in as few record batches as fit
        (records of one key keep their order); each record's time is when it is packed."""
        producer = self._ensure_producer()
        partitions = sorted(await producer.partitions_for(topic))
        partition_of = self.app.conf.producer_partitioner
        batches: dict[int, BatchBuilder] = {}
        for key, value in records:
            partition = partition_of(key, partitions, partitions)
            batch = batches.get(partition)
            if batch is None:
                batch = batches[partition] = _batch()
            if batch.append(timestamp=None, key=key, value=value) is None:  # full
                await self._send_batch(producer, batch, topic, partition)
                batch = batches[partition] = _batch()
                batch.append(timestamp=None, key=key, value=value)
        for partition, batch in batches.items():
            await self._send_batch(producer, batch, topic, partition)

    @staticmethod
    async def _send_batch(producer: Any, batch: BatchBuilder, topic: str,
                          partition: int) -> None:
        records = batch.record_count()
        delivery: asyncio.Future[Any] = await producer.send_batch(batch, topic,
                                                                   partition=partition)
        delivery.add_done_callback(lambda done: _delivered(topic, done, records))


def _batch() -> BatchBuilder:
    """An empty record batch, uncompressed like the producer's own."""
    return BatchBuilder(BURST_BATCH_BYTES, compression_type=0)


def _delivered(topic: str, delivery: asyncio.Future[Any], records: int = 1) -> None:
    if delivery.cancelled():
        return
    error = delivery.exception()
    if error is not None:
        metrics.SEND_FAILURES.labels(topic).inc(records)
        log.error("%d record(s) for %s not delivered: %r", records, topic, error)
