"""A small kafka-python client for tests: produce raw bytes, read topics back. Its
clients come from the one factory (:mod:`topics.clients`), so it talks to a secured
broker with the settings' credentials as GridLink's own processes do."""

from __future__ import annotations

import time

from kafka import KafkaProducer, TopicPartition

from settings import Settings
from streams.reference import load_city
from topics import clients
from topics.admin import create_topics
from topics.registry import city_topics


class KafkaTestClient:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._producer: KafkaProducer | None = None

    @property
    def producer(self) -> KafkaProducer:
        if self._producer is None:
            self._producer = clients.producer(self.settings, acks="all", linger_ms=0,
                                              client_id="gridlink-test")
        return self._producer

    def create_topics(self) -> None:
        create_topics(self.settings, city_topics(self.settings,
                                                 load_city(self.settings.reference_dir)))

    def produce(self, topic: str, value: bytes, key: bytes | None = None,
                headers: list[tuple[str, bytes]] | None = None) -> None:
        """Produce to a contract topic (the test's prefix is added)."""
        self.producer.send(self.settings.topic(topic), value=value, key=key,
                           headers=headers or [])
        self.producer.flush()

    def read(self, topic: str, *, count: int | None = None, timeout: float = 20.0,
             settle: float = 0.0) -> list:
        """Read a contract topic from the beginning.

        Without ``count``: everything up to the current end of the topic.
        With ``count``: returns once ``count`` records arrived (then waits
        ``settle`` seconds more for unexpected extras), or after ``timeout``
        with what arrived.
        """
        name = self.settings.topic(topic)
        consumer = clients.consumer(self.settings, enable_auto_commit=False,
                                    consumer_timeout_ms=200, client_id="gridlink-test")
        try:
            partitions = None
            deadline = time.monotonic() + timeout
            while partitions is None and time.monotonic() < deadline:
                partitions = consumer.partitions_for_topic(name)
                if partitions is None:
                    time.sleep(0.2)
            if partitions is None:
                return []
            tps = [TopicPartition(name, p) for p in sorted(partitions)]
            consumer.assign(tps)
            consumer.seek_to_beginning(*tps)
            ends = consumer.end_offsets(tps) if count is None else {}
            records: list = []
            settle_until: float | None = None
            while time.monotonic() < deadline:
                if count is None and all(consumer.position(tp) >= ends[tp] for tp in tps):
                    break
                for batch in consumer.poll(timeout_ms=200).values():
                    records.extend(batch)
                if count is not None and len(records) >= count:
                    if settle_until is None:
                        settle_until = time.monotonic() + settle
                    if time.monotonic() >= settle_until:
                        break
            return records
        finally:
            consumer.close()

    def wait_for(self, topic: str, predicate, timeout: float = 30.0):
        """The first record of ``topic`` (from the beginning) that satisfies
        ``predicate``, waiting up to ``timeout`` seconds for it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for record in self.read(topic, timeout=max(deadline - time.monotonic(), 0.5)):
                if predicate(record):
                    return record
            time.sleep(0.2)
        raise AssertionError(f"no matching record on {topic} within {timeout} s")

    def close(self) -> None:
        if self._producer is not None:
            self._producer.close()
