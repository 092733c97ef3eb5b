"""The Faust application: one per worker process, built from the settings.

Agents stay thin: decode → call ``streams`` → send. All topic handles are raw
bytes; GridLink's own codecs (``topics.codecs``) decode and encode them, so
no Faust ``Record`` classes duplicate the core's records.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import faust
from faust.contrib.opentelemetry import setup_opentelemetry

from agents import rewind, tables
from agents.partitioner import KeyPartitioner
from observability import tracing
from settings import Settings
from topics import registry


@dataclass
class Topics:
    """Faust handles for every topic the agents use, by contract name."""

    app: faust.App
    settings: Settings
    _handles: dict[str, faust.TopicT] = field(default_factory=dict)

    def __call__(self, name: str) -> faust.TopicT:
        """The handle of a contract topic (created on first use)."""
        handle = self._handles.get(name)
        if handle is None:
            handle = self.app.topic(
                self.settings.topic(name),
                key_serializer="raw",
                value_serializer="raw",
                partitions=None,
                internal=False,
            )
            self._handles[name] = handle
        return handle

    def department(self, code: str) -> faust.TopicT:
        return self(registry.department_topic(code))


def create_app(settings: Settings) -> faust.App:
    """A Faust app wired to the broker and tuned for prompt recovery; with tracing on
    (:mod:`observability.tracing`), each event an agent processes is a span."""
    rewind.install()  # a rebalance must not skip never-committed partitions' records
    brokers = [f"kafka://{server.strip()}" for server in settings.kafka_bootstrap.split(",")]
    session_timeout = settings.session_timeout_seconds
    # Tables in memory or in RocksDB, in this worker's own state directory (agents.tables)
    datadir = tables.claim_state_dir(settings)
    app = faust.App(
        settings.app_id,
        broker=brokers,
        store=tables.store_url(settings),
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
        producer_partitioner=KeyPartitioner(),
        producer_max_request_size=registry.DEAD_LETTER_MAX_BYTES,
        web_enabled=False,
        autodiscover=False,
    )
    if tracing.enabled():
        setup_opentelemetry(app)  # "<topic> process" spans, parented by ``traceparent``
    return app
