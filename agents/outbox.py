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
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import faust

from observability import metrics
from observability.tracing import KafkaHeaders

log = logging.getLogger(__name__)


class Outbox:
    """Sends records of raw bytes to topics by name (see the module's docstring)."""

    def __init__(self, app: faust.App) -> None:
        self.app = app
        self._producer: Any = None

    async def send(self, topic: str, key: bytes | None, value: bytes,
                   headers: KafkaHeaders | None = None) -> None:
        producer = self._producer
        if producer is None:  # the producer exists once the app has started
            producer = self._producer = self.app.producer._ensure_producer()
        delivery: asyncio.Future[Any] = await producer.send(topic, value, key=key,
                                                             headers=headers)
        delivery.add_done_callback(lambda done: _delivered(topic, done))


def _delivered(topic: str, delivery: asyncio.Future[Any]) -> None:
    if delivery.cancelled():
        return
    error = delivery.exception()
    if error is not None:
        metrics.SEND_FAILURES.labels(topic).inc()
        log.error("a record for %s was not delivered: %r", topic, error)
