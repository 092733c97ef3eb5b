"""Intake (信息上报): the three ingest topics → validated, located events.

Every message either becomes a ``LocatedEvent`` on ``triage.events`` (keyed by
township, so that events about one incident meet in one partition) or a dead
letter on ``ingest.dead-letter`` with its original bytes and a reason. Bad
input never stops the stream.
"""

from __future__ import annotations

import logging
from datetime import datetime

import faust

from agents.app import Topics
from agents.clock import SHANGHAI, wall_clock
from agents.outbox import Outbox
from observability import metrics, tracing
from settings import Settings
from streams.errors import GridLinkError
from streams.locate import locate
from streams.parse import PARSERS
from streams.records import LocatedEvent, Source
from streams.reference import City
from topics import codecs, registry
from topics.deadletter import dead_letter

log = logging.getLogger(__name__)


def admit(raw: bytes, source: Source, city: City, *, max_distance_m: float,
          ingested_at: datetime) -> LocatedEvent:
    """Parse and locate one inbound message; raises ``GridLinkError`` if it cannot be."""
    event = PARSERS[source](raw)
    location = locate(event, city, max_distance_m=max_distance_m)
    return LocatedEvent(event=event, location=location, ingested_at=ingested_at)


def register(app: faust.App, topics: Topics, settings: Settings, city: City) -> None:
    sources = {settings.topic(name): source for name, source in registry.INGEST_SOURCES.items()}
    ingest = app.topic(*sources, key_serializer="raw", value_serializer="raw")
    triage_events, dead_letters = (settings.topic(registry.TRIAGE_EVENTS),
                                   settings.topic(registry.DEAD_LETTER))
    outbox = Outbox(app)

    @app.agent(ingest, name="intake")
    async def intake(stream: faust.StreamT) -> None:
        async for message_event in stream.events():
            message = message_event.message
            raw: bytes = message.value if message.value is not None else b""
            ingested_at = datetime.fromtimestamp(message.timestamp, tz=SHANGHAI)
            source = sources[message.topic]
            headers = tracing.outgoing_headers()
            metrics.EVENTS_IN.labels(source).inc()
            try:
                located = admit(raw, source, city,
                                max_distance_m=settings.locate_max_distance_m,
                                ingested_at=ingested_at)
            except GridLinkError as error:
                metrics.DEAD_LETTERS.labels(source, error.code).inc()
                log.info("dead letter from %s[%d]@%d: %s %s", message.topic,
                         message.partition, message.offset, error.code, error.reason)
                await outbox.send(dead_letters, message.key, headers=headers, value=dead_letter(
                    raw=raw, key=message.key, topic=message.topic,
                    partition=message.partition, offset=message.offset,
                    code=error.code, reason=error.reason, field=error.field,
                    received_at=wall_clock(),
                ))
                continue
            await outbox.send(triage_events, located.partition_key.encode(),
                              codecs.encode(located), headers)
