"""Creating the contract topics on a broker, idempotently (kafka-python admin)."""

from __future__ import annotations

from collections.abc import Sequence

from kafka import KafkaAdminClient
from kafka.admin import NewTopic

from settings import Settings
from topics.registry import TopicSpec


def create_topics(settings: Settings, specs: Sequence[TopicSpec]) -> tuple[list[str], list[str]]:
    """Create every topic that does not exist yet.

    Returns ``(created, existing)`` physical names. Existing topics are left as
    they are (their partition counts are not changed).
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
        existing = [settings.topic(s.name) for s in specs if s not in missing]
        return created, existing
    finally:
        admin.close()
