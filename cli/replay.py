"""``gridlink replay``: rebuild the SQL projection from the start of ``cases.events``."""

from __future__ import annotations

import click
from kafka import KafkaConsumer, TopicPartition

from settings import Settings
from store.service import Store
from streams.cases import event_decoder
from streams.reference import load_city
from topics import registry

POLL_RECORDS = 2000


def replay(settings: Settings, *, force: bool = False) -> int:
    """Project every event of the log into the database; returns how many were applied."""
    store = Store.open(settings.database_url, city=load_city(settings.reference_dir))
    if store.event_count() and not force:
        raise click.ClickException(
            f"the database at GRIDLINK_DATABASE_URL already holds {store.event_count()} case "
            "events; replay rebuilds into an empty database (point GRIDLINK_DATABASE_URL at a "
            "new one), or pass --force to project the log over it (idempotent)"
        )
    topic = settings.topic(registry.CASE_EVENTS)
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=None,
                             enable_auto_commit=False, max_poll_records=POLL_RECORDS)
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            raise click.ClickException(f"topic {topic} does not exist on "
                                       f"{settings.kafka_bootstrap}")
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        starts = consumer.beginning_offsets(tps)
        total = sum(ends[tp] - starts[tp] for tp in tps)
        applied = 0
        with click.progressbar(length=total, label=f"Replaying {topic}", show_pos=True) as bar:
            while any(consumer.position(tp) < ends[tp] for tp in tps):
                for tp, records in consumer.poll(timeout_ms=1000).items():
                    records = [r for r in records if r.offset < ends[tp]]
                    applied += store.project([event_decoder.decode(r.value) for r in records])
                    bar.update(len(records))
        click.echo(f"{applied} events projected into {settings.database_url}")
        return applied
    finally:
        consumer.close()
        store.close()
