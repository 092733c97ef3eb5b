"""Intake (信息上报): the three ingest topics → validated, located events.

Every message either becomes a ``LocatedEvent`` on ``cases.commands``, in the
partition of its township's writer (:mod:`topics.placement`: events about one
incident meet there), or a dead letter on ``ingest.dead-letter`` with its
original bytes and a reason. Bad input never stops the stream. The located
event's record time is when intake forwarded it: the writer decides it at that
time.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

from aiokafka import ConsumerRecord

from agents.deadletters import add_dead_letter
from agents.producer import Batches, Producer
from observability import metrics, tracing
from settings import Settings
from streams.errors import GridLinkError
from streams.locate import locate
from streams.parse import PARSERS
from streams.records import LocatedEvent, Source
from streams.reference import City
from streams.zone import TZ
from topics import codecs, registry, signing
from topics.placement import Placement

log = logging.getLogger(__name__)


def admit(raw: bytes, source: Source, city: City, *, max_distance_m: float,
          ingested_at: datetime) -> LocatedEvent:
    """Parse and locate one inbound message; raises ``GridLinkError`` if it cannot be."""
    event = PARSERS[source](raw)
    location = locate(event, city, max_distance_m=max_distance_m)
    return LocatedEvent(event=event, location=location, ingested_at=ingested_at)


class Intake:
    """The intake stage of :class:`agents.loops.ConsumerLoop`."""

    def __init__(self, settings: Settings, city: City, producer: Producer,
                 placement: Placement) -> None:
        self.settings = settings
        self.placement = placement
        self.city = city
        self.producer = producer
        self.sources = {settings.topic(name): source
                        for name, source in registry.INGEST_SOURCES.items()}
        self.commands = settings.topic(registry.CASE_COMMANDS)
        self.signing_key = signing.key_for(settings)
        self.dead_letters = settings.topic(registry.DEAD_LETTER)

    @property
    def topics(self) -> list[str]:
        return list(self.sources)

    async def __call__(self, records: Sequence[ConsumerRecord]) -> None:
        batches = self.producer.batches()
        for record in records:
            self.admit(record, batches)
        await batches.send()

    def admit(self, record: ConsumerRecord, batches: Batches) -> None:
        raw: bytes = record.value if record.value is not None else b""
        source = self.sources[record.topic]
        metrics.child(metrics.EVENTS_IN, source).inc()
        ingested_at = datetime.fromtimestamp(record.timestamp / 1000, tz=TZ)
        with tracing.span_for(f"{record.topic} process", record.headers, root=True):
            headers = tracing.outgoing_headers() or []
            try:
                located = admit(raw, source, self.city,
                                max_distance_m=self.settings.locate_max_distance_m,
                                ingested_at=ingested_at)
            except GridLinkError as error:
                self.reject(record, batches, headers, error.code, error.reason, error.field)
                return
            except Exception as error:  # noqa: BLE001 — a message must never stop the stream
                log.exception("intake failed on %s[%d]@%d", record.topic, record.partition,
                              record.offset)
                self.reject(record, batches, headers, "unexpected_error",
                            f"{type(error).__name__}: {error}", None)
                return
        township = located.partition_key
        key, value = township.encode(), codecs.encode(located)
        batches.add(self.commands, self.placement.of_township(township), key, value,
                    signing.signed(self.signing_key, key, value, headers),
                    what=located.event.event_id)

    def reject(self, record: ConsumerRecord, batches: Batches, headers: list[tuple[str, bytes]],
               code: str, reason: str, field: str | None) -> None:
        add_dead_letter(batches, self.dead_letters, source=self.sources[record.topic],
                        topic=record.topic, partition=record.partition, offset=record.offset,
                        key=record.key, raw=record.value or b"",
                        received_at=datetime.fromtimestamp(record.timestamp / 1000,
                                                           tz=TZ),
                        code=code, reason=reason, field=field, headers=headers)
