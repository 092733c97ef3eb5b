"""Rewind never-committed partitions too, so a rebalance cannot skip their records.

Faust prefetches while a rebalance or a table recovery is under way, and throws
away records of partitions that are not yet active. It then asks the consumer
to "seek back to committed offsets" so the dropped records are read again. But
aiokafka's ``seek_to_committed`` only seeks partitions whose committed offset is
above 0. A partition nobody has committed yet (a new group, or one whose first
owner was revoked before its first commit) stays where the discarded prefetch
left it, and those records are never processed: commands without replies, case
logs with holes in the store.

``install()`` makes that rewind also send every such stream partition back to
its beginning, which is where the group's ``auto_offset_reset = earliest``
would have started it. Changelog partitions are left alone: Faust positions
them itself for recovery and standbys.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import IllegalStateError
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

log = logging.getLogger(__name__)


async def rewind(consumer: AIOKafkaConsumer,
                 changelogs: set[str]) -> Mapping[TopicPartition, int | None]:
    """Seek every assigned partition to its committed offset, and each stream
    partition without one (or committed at 0) to its beginning."""
    committed: Mapping[TopicPartition, int | None] = await consumer.seek_to_committed()
    never = [tp for tp, offset in committed.items() if not offset and tp.topic not in changelogs]
    if never:
        try:
            await consumer.seek_to_beginning(*never)
        except IllegalStateError as revoked:  # reassigned meanwhile: its new owner rewinds it
            log.info("not rewinding partitions revoked meanwhile: %s", revoked)
    return committed


async def _seek_to_committed(self: AIOKafkaConsumerThread) -> Mapping[Any, int]:
    changelogs = set(self.app.tables.changelog_topics)
    result: Mapping[Any, int] = await self.call_thread(rewind, self._ensure_consumer(),
                                                       changelogs)
    return result


def install() -> None:
    """Replace Faust's aiokafka ``seek_to_committed`` with :func:`rewind` (idempotent)."""
    AIOKafkaConsumerThread.seek_to_committed = _seek_to_committed  # type: ignore[method-assign]  # the swap is the point
