"""``gridlink replay``: rebuild the SQL projection from the start of ``cases.events``.

A record that is not a case event, that the projection cannot apply, or that the
database refuses for good (:func:`store.db.refused_for_good`) is reported (topic,
partition, offset, why) and skipped; the replay goes on and says at the end how
many it skipped. An outage of the database stops it.
"""

from __future__ import annotations

from collections.abc import Sequence

import click
import msgspec
from kafka import TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from sqlalchemy.exc import DBAPIError

from settings import Settings
from store.db import refused_for_good
from store.service import Store
from streams.cases import event_decoder
from streams.reference import load_city
from topics import clients, registry

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
    consumer = clients.consumer(settings, group_id=None, enable_auto_commit=False,
                                max_poll_records=POLL_RECORDS, client_id="gridlink-replay")
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
        applied = skipped = 0
        with click.progressbar(length=total, label=f"Replaying {topic}", show_pos=True) as bar:
            while any(consumer.position(tp) < ends[tp] for tp in tps):
                for tp, records in consumer.poll(timeout_ms=1000).items():
                    records = [r for r in records if r.offset < ends[tp]]
                    done, bad = _project(store, records)
                    applied, skipped = applied + done, skipped + bad
                    bar.update(len(records))
        click.echo(f"{applied} events projected into {settings.database_url}")
        if skipped:
            click.echo(f"{skipped} records skipped (reported above)", err=True)
        return applied
    finally:
        consumer.close()
        store.close()


def _project(store: Store, records: Sequence[ConsumerRecord]) -> tuple[int, int]:
    """Project a poll's records; returns (events applied, records skipped)."""
    events, kept, skipped = [], [], 0
    for record in records:
        try:
            events.append(event_decoder.decode(record.value or b""))
            kept.append(record)
        except msgspec.DecodeError as error:
            _skip(record, f"not a case event: {error}")
            skipped += 1
    try:
        return store.project(events), skipped
    except DBAPIError as error:
        if not refused_for_good(error):
            raise  # an outage: the replay stops, and says why
    except Exception:  # noqa: BLE001 — one by one below, to find the record it fails on
        pass
    applied = 0
    for event, record in zip(events, kept, strict=True):
        try:
            applied += store.project([event])
        except DBAPIError as error:
            if not refused_for_good(error):
                raise
            _skip(record, f"the database refuses it for good: {type(error).__name__}: "
                          f"{' '.join(str(error.orig or error).split())}")
            skipped += 1
        except Exception as error:  # noqa: BLE001 — reported and skipped
            _skip(record, f"{type(error).__name__}: {error}")
            skipped += 1
    return applied, skipped


def _skip(record: ConsumerRecord, reason: str) -> None:
    click.echo(f"\nskipped {record.topic}[{record.partition}]@{record.offset}: {reason}",
               err=True)
