"""The Faust application: one per worker process, built from the settings.

Faust runs the consumer group of the township writers (:mod:`agents.writer`) over
``cases.commands``: it assigns partitions to workers, hands each worker its
records and commits what the writer has acknowledged. Everything the workers
write goes through GridLink's own producer (:mod:`agents.producer`), and their
state lives in their own stores (:mod:`agents.store`): the app has no tables.
"""

from __future__ import annotations

from pathlib import Path

import faust
from faust.contrib.opentelemetry import setup_opentelemetry

from agents import fetch_wait, rewind
from observability import tracing
from settings import Settings
from topics import clients


def create_app(settings: Settings, datadir: Path) -> faust.App:
    """A Faust app wired to the broker and tuned for prompt recovery; with tracing on
    (:mod:`observability.tracing`), each record an agent takes is a span."""
    rewind.install()  # a rebalance must not skip never-committed partitions' records
    fetch_wait.install(settings)  # a fetch stalled on idle partitions must not hold the writer's
    session_timeout = settings.session_timeout_seconds
    app = faust.App(
        settings.app_id,
        broker=clients.faust_broker(settings),
        broker_credentials=clients.faust_credentials(settings),
        store="memory://",
        datadir=str(datadir),
        topic_partitions=settings.partitions,
        # the topics Faust creates itself (table changelogs): GRIDLINK_REPLICATION, or 1
        topic_replication_factor=settings.replication or 1,
        topic_allow_declare=True,
        broker_session_timeout=session_timeout,
        broker_heartbeat_interval=max(session_timeout / 5, 0.5),
        broker_rebalance_timeout=max(session_timeout * 2, 10.0),
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        web_enabled=False,
        autodiscover=False,
    )
    if tracing.enabled():
        setup_opentelemetry(app)  # "<topic> process" spans, parented by ``traceparent``
    return app
