"""The live feed of the case log: ``cases.events`` and ``command.alerts`` read from
their end and decoded, for whoever shows what happens as it happens (the board).

:class:`LiveFeed` subscribes without a consumer group — every partition of both
topics, positioned at their end: a live view starts from now, and each process
reads the whole feed. It hands each record on decoded: a case event as its
:class:`~streams.cases.CaseEvent`, an alert as an :class:`Alert`; a record that
does not decode is skipped. When the broker fails the consumer is closed, and a new
one starts from the end again after :data:`RETRY_SECONDS`; ``ready`` is set only
while the consumer reads from the end of both topics, so nothing published after it
is set is missed.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import msgspec
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError

from settings import Settings
from streams.cases import CaseEvent, event_decoder
from topics import clients, registry

log = logging.getLogger(__name__)

RETRY_SECONDS = 2.0


@dataclass(frozen=True, slots=True)
class Alert:
    """One ``command.alerts`` record: a serious case, a red card, supervision,
    escalation… (:func:`streams.cases.alert_messages`), its fields as sent."""

    fields: dict[str, Any]


def decode_event(value: bytes) -> CaseEvent | None:
    """A ``cases.events`` record's event; None if it does not decode."""
    try:
        event: CaseEvent = event_decoder.decode(value)
    except msgspec.DecodeError:
        return None
    return event


def decode_alert(value: bytes) -> Alert | None:
    """A ``command.alerts`` record; None unless it is a JSON object."""
    try:
        payload = json.loads(value)
    except ValueError:
        return None
    return Alert(payload) if isinstance(payload, dict) else None


class LiveFeed:
    """``cases.events`` and ``command.alerts`` from their end, decoded (module doc)."""

    def __init__(self, settings: Settings, *, client_id: str = "gridlink-api-board") -> None:
        self.settings = settings
        self.client_id = client_id
        self.ready = asyncio.Event()
        self._decoders: dict[str, Callable[[bytes], CaseEvent | Alert | None]] = {
            settings.topic(registry.CASE_EVENTS): decode_event,
            settings.topic(registry.COMMAND_ALERTS): decode_alert,
        }

    async def follow(self, deliver: Callable[[CaseEvent | Alert], Awaitable[None]]) -> None:
        """Hand every record published from now on to ``deliver``, in each partition's
        order, until cancelled; a broker failure is logged and the feed starts again."""
        while True:
            # subscribed without a group: every partition, positioned at the end
            consumer = clients.aio_consumer(self.settings, *self._decoders, group_id=None,
                                            enable_auto_commit=False,
                                            auto_offset_reset="latest",
                                            client_id=self.client_id)
            try:
                await consumer.start()
                await self._at_end(consumer)
                self.ready.set()
                async for record in consumer:
                    item = self._decoders[record.topic](record.value or b"")
                    if item is not None:
                        await deliver(item)
            except KafkaError as error:
                log.warning("live feed: %s; retrying in %.0f s", error, RETRY_SECONDS)
            finally:
                self.ready.clear()
                await consumer.stop()
            await asyncio.sleep(RETRY_SECONDS)

    async def _at_end(self, consumer: AIOKafkaConsumer) -> None:
        """Wait until both topics are assigned, then resolve their end offsets, so that
        nothing published after ``ready`` is skipped."""
        while {tp.topic for tp in consumer.assignment()} != set(self._decoders):
            await asyncio.sleep(0.1)
        tps = sorted(consumer.assignment())
        await consumer.seek_to_end(*tps)
        for tp in tps:
            await consumer.position(tp)


__all__ = ["RETRY_SECONDS", "Alert", "LiveFeed", "decode_alert", "decode_event"]
