"""The SQL projection, live: ``cases.events`` → the store, in batches.

Writes run in one worker thread so a batch never blocks the event loop (and
the SLA timers with it); each batch is one transaction, idempotent on
(case_id, seq), so a redelivered batch after a crash changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import faust

from agents.app import Topics
from observability import metrics, tracing
from store.projector import ProjectionError
from store.service import Store
from streams.cases import event_decoder
from topics import registry

log = logging.getLogger(__name__)

BATCH_SIZE = 500
BATCH_SECONDS = 0.2


def register(app: faust.App, topics: Topics, store: Store) -> None:
    writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="projection")

    @app.agent(topics(registry.CASE_EVENTS), name="projection")
    async def projection(stream: faust.StreamT) -> None:
        async for batch in stream.take_events(BATCH_SIZE, within=BATCH_SECONDS):
            events = [event_decoder.decode(event.value) for event in batch]
            # traced events get one "projection" span per trace, around the write
            with tracing.spans_per_trace("projection", (e.headers for e in batch)):
                applied = await asyncio.get_running_loop().run_in_executor(
                    writer, partial(store.project, events, on_gap=_gap))
            metrics.PROJECTED_EVENTS.inc(applied)


def _gap(error: ProjectionError) -> None:
    """A case whose log has a gap keeps what it had; the rest of the batch is written.
    ``gridlink replay`` rebuilds the store from the whole log."""
    metrics.PROJECTION_GAPS.inc()
    log.error("projection: %s", error.reason)
