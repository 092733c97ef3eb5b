"""The stateless stages — intake and the SQL projection — as plain consumer loops.

Neither keeps state between records, so neither needs Faust's streams: each is
one aiokafka consumer in a consumer group of its own, which fetches a batch,
hands it to its stage, and commits the batch's offsets only once the stage
returns — that is, once everything the stage wrote is acknowledged by the broker
or stored by the database. A crash before the commit reads the batch again
(the writer and the store drop what they already have). A rebalance during a
batch makes its commit fail: the batch's partitions' next owner reads it again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from mode import Service

from settings import Settings
from topics import clients

log = logging.getLogger(__name__)

MAX_RECORDS = 500  # records handed to a stage at once
FETCH_MS = 200  # longest wait for records when there are none

Stage = Callable[[Sequence[ConsumerRecord]], Awaitable[None]]


class ConsumerLoop(Service):
    """One consumer group member running ``stage`` over its records, batch by batch."""

    def __init__(self, settings: Settings, *, name: str, group: str, topics: Sequence[str],
                 stage: Stage, fatal: Callable[[BaseException], Awaitable[None]],
                 before: Callable[[], Awaitable[object]] | None = None) -> None:
        super().__init__()
        self.fatal = fatal  # told when the stage fails: the worker stops
        self.settings = settings
        self.name = name
        self.group = group
        self.topics = list(topics)
        self.stage = stage
        self.before = before  # awaited once before the first fetch (the producer is up)
        self.consumer: AIOKafkaConsumer | None = None
        self.running: asyncio.Future[None] | None = None  # the fetch loop, once started
        self.batches = 0

    @property
    def label(self) -> str:
        return f"{type(self).__name__}({self.name})"

    async def on_start(self) -> None:
        session_ms = int(self.settings.session_timeout_seconds * 1000)
        self.consumer = clients.aio_consumer(
            self.settings,
            *self.topics,
            client_id=f"gridlink-{self.name}",
            group_id=self.group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=session_ms,
            heartbeat_interval_ms=max(session_ms // 5, 500),
            max_poll_records=MAX_RECORDS,
            max_partition_fetch_bytes=8 * 2**20,
        )
        await self.consumer.start()
        self.running = self.add_future(self._run())

    async def on_stop(self) -> None:
        if self.consumer is not None:
            await self.consumer.stop()

    async def _run(self) -> None:
        consumer = self.consumer
        assert consumer is not None
        if self.before is not None:
            await self.before()
        while not self.should_stop:
            try:
                fetched = await consumer.getmany(timeout_ms=FETCH_MS, max_records=MAX_RECORDS)
            except (IllegalStateError, KafkaError) as error:
                if self.should_stop:
                    return
                log.warning("%s: fetch failed (%r); again", self.name, error)
                await asyncio.sleep(1.0)
                continue
            records = [record for tp in sorted(fetched) for record in fetched[tp]]
            if not records:
                continue
            try:
                await self.stage(records)
            except Exception as error:
                log.critical("%s: a batch of %d records failed, nothing of it committed: %s",
                             self.name, len(records), error)
                await self.fatal(error)
                return
            self.batches += 1
            offsets = {tp: batch[-1].offset + 1 for tp, batch in fetched.items() if batch}
            try:
                await consumer.commit(offsets)
            except (CommitFailedError, IllegalStateError, KafkaError) as error:
                # the group rebalanced during the batch: its next owner reads it again
                log.info("%s: batch of %d records not committed (%r); read again by the "
                         "partitions' next owner", self.name, len(records), error)


def tps(records: Sequence[ConsumerRecord]) -> set[TopicPartition]:
    return {TopicPartition(r.topic, r.partition) for r in records}
