"""Creating the contract topics on a broker, idempotently (kafka-python admin)."""

from __future__ import annotations

import time
from collections.abc import Sequence

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import KafkaError

from settings import Settings
from topics.registry import TopicSpec

SERVED_TIMEOUT_SECONDS = 30.0  # how long new topics may take to be served by their leaders


def create_topics(settings: Settings, specs: Sequence[TopicSpec]) -> tuple[list[str], list[str]]:
    """Create every topic that does not exist yet.

    Returns ``(created, existing)`` physical names, once every partition of the
    created ones is served by its leader (so the first records sent to them are
    not refused and retried). Existing topics are left as they are (their
    partition counts are not changed).
    """
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, client_id="gridlink-admin")
    try:
        existing_names = set(admin.list_topics())
        missing = [s for s in specs if settings.topic(s.name) not in existing_names]
        if missing:
            admin.create_topics(
                [
                    NewTopic(
                        name=settings.topic(s.name),
                        num_partitions=s.partitions,
                        replication_factor=settings.replication,
                        topic_configs=s.configs(),
                    )
                    for s in missing
                ],
                validate_only=False,
            )
        created = [settings.topic(s.name) for s in missing]
        if created:
            _wait_until_served(settings, created)
        existing = [settings.topic(s.name) for s in specs if s not in missing]
        return created, existing
    finally:
        admin.close()


def _wait_until_served(settings: Settings, names: Sequence[str],
                       timeout: float = SERVED_TIMEOUT_SECONDS) -> None:
    """Wait until every partition of topics ``names`` answers at its leader (its end
    offset is read there); a broker that has only just created a topic refuses the
    first records sent to it for a moment (``NotLeaderForPartition``)."""
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap,
                             client_id="gridlink-admin", enable_auto_commit=False)
    try:
        waiting = list(names)
        deadline = time.monotonic() + timeout
        while waiting:
            waiting = [name for name in waiting if not _served(consumer, name)]
            if not waiting:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(waiting)} new topics are not served after "
                                   f"{timeout:.0f} s, e.g. {waiting[0]}: is the broker healthy?")
            time.sleep(0.1)
    finally:
        consumer.close()


def _served(consumer: KafkaConsumer, name: str) -> bool:
    partitions = consumer.partitions_for_topic(name)
    if not partitions:
        return False
    try:
        consumer.end_offsets([TopicPartition(name, p) for p in partitions])
    except KafkaError:
        return False
    return True
