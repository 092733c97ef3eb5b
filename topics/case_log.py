"""Reading the whole case log (``cases.events``) once, from its start to its end now.

For tools that learn from the log (``gridlink classifier train --from-log``):
a consumer without a group, assigned every partition, stopped at the end
offsets taken when it started.
"""

from __future__ import annotations

from collections.abc import Iterator

from kafka import TopicPartition

from settings import Settings
from topics import clients, registry

POLL_RECORDS = 2000


class CaseLogMissing(Exception):
    """The topic does not exist on the broker."""


def case_log_values(settings: Settings, *, poll_timeout_ms: int = 1000) -> Iterator[bytes]:
    """Every record value of ``cases.events``, partition by partition in offset order."""
    topic = settings.topic(registry.CASE_EVENTS)
    consumer = clients.consumer(settings, group_id=None, enable_auto_commit=False,
                                max_poll_records=POLL_RECORDS, client_id="gridlink-case-log")
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            raise CaseLogMissing(f"topic {topic} does not exist on {settings.kafka_bootstrap}")
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            for tp, records in consumer.poll(timeout_ms=poll_timeout_ms).items():
                for record in records:
                    if record.offset < ends[tp] and record.value is not None:
                        yield record.value
    finally:
        consumer.close()
