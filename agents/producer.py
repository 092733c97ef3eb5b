"""The worker's one Kafka producer, and the record batches it sends.

Everything a worker writes goes through :class:`Producer`: an idempotent aiokafka
producer (``acks=all``; a retried request is never appended twice, and the
records of one partition land in the order they were sent). Records are
collected in :class:`Batches` — one Kafka record batch per topic partition,
packed without a future per record — and :meth:`Batches.send` returns only
when the broker has acknowledged every one of them, or raises
:class:`DeliveryFailed`: a record that could not be delivered is never
forgotten, the caller stops.

A *group* of records (:meth:`Batches.add_group`) always lands in one record
batch, which the broker appends whole or not at all: the events one input
causes are written atomically.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from aiokafka import AIOKafkaProducer
from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.structs import RecordMetadata

from observability import metrics
from settings import Settings
from topics import clients, registry

log = logging.getLogger(__name__)

BATCH_BYTES = 512 * 1024  # a record batch is closed past this (a group may make it larger)
GROUP_MAX_BYTES = registry.INGEST_MAX_BYTES  # the largest batch the case topics accept
REQUEST_TIMEOUT_MS = 30_000  # a request the broker does not answer in time is retried …
DELIVERY_TIMEOUT_S = 120.0  # … until a batch has waited this long: then it has failed

Header = tuple[str, bytes]


class DeliveryFailed(RuntimeError):
    """A record batch the broker did not take after every retry."""

    def __init__(self, topic: str, partition: int, records: int, error: BaseException,
                 what: str) -> None:
        super().__init__(f"{records} record(s) for {topic}[{partition}] ({what}) not delivered: "
                         f"{error!r}")
        self.topic, self.partition, self.records, self.error = topic, partition, records, error


class Producer:
    """The worker's idempotent producer (see the module's docstring)."""

    def __init__(self, settings: Settings, *, client_id: str = "gridlink-worker") -> None:
        self.settings = settings
        self.client_id = client_id
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        self._producer = clients.aio_producer(
            self.settings,
            client_id=self.client_id,
            enable_idempotence=True,  # acks=all; retries never duplicate nor reorder
            linger_ms=0,
            max_request_size=registry.DEAD_LETTER_MAX_BYTES,
            request_timeout_ms=REQUEST_TIMEOUT_MS,
        )
        await self._producer.start()

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()

    @property
    def client(self) -> AIOKafkaProducer:
        if self._producer is None:
            raise RuntimeError("the producer is not started")
        return self._producer

    async def partitions(self, topic: str) -> list[int]:
        return sorted(await self.client.partitions_for(topic))

    def batches(self) -> Batches:
        return Batches(self.client)


@dataclass
class _Open:
    """A record batch being filled, and what is in it (for the error message)."""

    builder: BatchBuilder
    what: list[str] = field(default_factory=list)


class Batches:
    """Records to send together, one record batch per topic partition (in order)."""

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self._producer = producer
        self._open: dict[tuple[str, int], _Open] = {}
        self._full: list[tuple[str, int, _Open]] = []
        self.records = 0

    def add(self, topic: str, partition: int, key: bytes | None, value: bytes,
            headers: Sequence[Header] | None = (), *, timestamp_ms: int | None = None,
            what: str = "") -> None:
        """One record, after those added before to the same partition."""
        batch = self._batch(topic, partition, len(value))
        if batch.builder.append(key=key, value=value, timestamp=timestamp_ms,
                                headers=list(headers or ())) is None:
            self._close(topic, partition)
            batch = self._batch(topic, partition, len(value))
            batch.builder.append(key=key, value=value, timestamp=timestamp_ms,
                                 headers=list(headers or ()))
        if what:
            batch.what.append(what)
        self.records += 1

    def add_group(self, topic: str, partition: int,
                  records: Sequence[tuple[bytes | None, bytes, Sequence[Header] | None]],
                  *, what: str = "") -> None:
        """Records that must land together: in one record batch, whole or not at all."""
        size = sum(len(value) + len(key or b"") + 64 for key, value, _ in records)
        batch = self._open.get((topic, partition))
        if batch is not None and batch.builder.size() + size > BATCH_BYTES:
            self._close(topic, partition)
        batch = self._batch(topic, partition, size)
        for key, value, headers in records:
            if batch.builder.append(key=key, value=value, timestamp=None,
                                    headers=list(headers or ())) is None:
                raise ValueError(f"{len(records)} records of {size} bytes do not fit in one "
                                 f"record batch for {topic}")
        if what:
            batch.what.append(what)
        self.records += len(records)

    async def send(self) -> list[tuple[str, int, RecordMetadata, int]]:
        """Send every batch and wait until the broker has them all; returns, per batch in
        the order added, its topic, partition, where it landed and how many records it
        holds."""
        for key in list(self._open):
            self._close(*key)
        pending = []
        for topic, partition, batch in self._full:
            delivery = await self._producer.send_batch(batch.builder, topic, partition=partition)
            pending.append((topic, partition, batch, delivery))
        self._full = []
        landed: list[tuple[str, int, RecordMetadata, int]] = []
        failure: DeliveryFailed | None = None
        for topic, partition, batch, delivery in pending:
            try:
                metadata = await asyncio.wait_for(asyncio.shield(delivery), DELIVERY_TIMEOUT_S)
            except Exception as error:  # noqa: BLE001 — every failure is reported below
                count = batch.builder.record_count()
                metrics.SEND_FAILURES.labels(topic).inc(count)
                failure = failure or DeliveryFailed(topic, partition, count, error,
                                                    ", ".join(batch.what[:5]) or "records")
                continue
            landed.append((topic, partition, metadata, batch.builder.record_count()))
        if failure is not None:
            raise failure
        return landed

    def _batch(self, topic: str, partition: int, size: int) -> _Open:
        batch = self._open.get((topic, partition))
        if batch is None:
            batch = self._open[(topic, partition)] = _Open(
                BatchBuilder(max(BATCH_BYTES, min(size + 1024, GROUP_MAX_BYTES)),
                             compression_type=0))
        return batch

    def _close(self, topic: str, partition: int) -> None:
        batch = self._open.pop((topic, partition), None)
        if batch is not None and batch.builder.record_count():
            self._full.append((topic, partition, batch))

