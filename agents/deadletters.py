"""Dead-lettering from a worker, in one place: whatever a stage cannot take goes to
``ingest.dead-letter`` with its bytes, where it was and why (:mod:`topics.deadletter`),
counted in ``gridlink_dead_letters_total{source,code}`` and logged, in the batch of the
input it came with, so it is sent before that input is committed."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

from agents.producer import Batches, Header
from observability import metrics
from topics.deadletter import dead_letter

log = logging.getLogger(__name__)


def add_dead_letter(batches: Batches, dead_letters: str, *, source: str, topic: str,
                    partition: int, offset: int, key: bytes | None, raw: bytes,
                    received_at: datetime, code: str, reason: str,
                    field: str | None = None, headers: Sequence[Header] | None = ()) -> None:
    """Add the dead letter of one record (of ``topic``, read as ``source``) to
    ``batches``, bound for the topic ``dead_letters``."""
    metrics.DEAD_LETTERS.labels(source, code).inc()
    log.warning("dead letter from %s[%d]@%d: %s %s", topic, partition, offset, code, reason)
    batches.add(dead_letters, 0, key, dead_letter(
        raw=raw, key=key, topic=topic, partition=partition, offset=offset, code=code,
        reason=reason, field=field, received_at=received_at),
        headers, what=f"dead letter {topic}[{partition}]@{offset}")


__all__ = ["add_dead_letter"]
