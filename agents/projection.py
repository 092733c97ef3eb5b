"""The SQL projection, live: ``cases.events`` → the store, in batches.

Writes run in one worker thread so a batch never blocks the event loop (and
the SLA timers with it); each batch is one transaction, idempotent on
(case_id, seq), so a redelivered batch after a crash changes nothing.

Faust acknowledges a batch (its offsets become committable) as soon as the
agent leaves it, written or not. So a batch the database refuses (down, disk
full, locked, read-only) is not given up: it is written again after a capped
exponential backoff until the database takes it. During an outage the
projection falls behind; afterwards it catches up, and nothing is lost. Only
when the worker stops, or its partitions are being rebalanced, does the agent
leave an unwritten batch, with its offsets left uncommitted
(:func:`agents.batches.leave_uncommitted`): whoever reads the partition next reads it again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from functools import partial

import faust
from sqlalchemy.exc import DBAPIError

from agents.app import Topics
from agents.batches import leave_uncommitted
from observability import metrics, tracing
from store.projector import ProjectionError
from store.service import Store
from streams.cases import CaseEvent, event_decoder
from topics import registry

log = logging.getLogger(__name__)

BATCH_SIZE = 500
BATCH_SECONDS = 0.2
RETRY_FIRST_SECONDS = 0.5  # the wait after a refused write, doubled after each refusal …
RETRY_MAX_SECONDS = 30.0  # … up to this


def register(app: faust.App, topics: Topics, store: Store) -> None:
    writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="projection")

    def interrupted() -> bool:
        """The worker stops or rebalances: Faust waits for the agent to leave its batch."""
        return bool(app.should_stop or app.rebalancing)

    @app.agent(topics(registry.CASE_EVENTS), name="projection")
    async def projection(stream: faust.StreamT) -> None:
        async for batch in stream.take_events(BATCH_SIZE, within=BATCH_SECONDS):
            events = [event_decoder.decode(event.value) for event in batch]
            # traced events get one "projection" span per trace, around the write
            with tracing.spans_per_trace("projection", (e.headers for e in batch)):
                try:
                    applied = await write_until_stored(store, writer, events, interrupted)
                except asyncio.CancelledError:
                    leave_uncommitted(batch)
                    raise
            if applied is None:
                leave_uncommitted(batch)
                log.warning("projection: %d events left unwritten and uncommitted, for the "
                            "next reader of their partitions", len(events))
                continue
            metrics.PROJECTED_EVENTS.inc(applied)


async def write_until_stored(store: Store, writer: Executor, events: Sequence[CaseEvent],
                             interrupted: Callable[[], bool]) -> int | None:
    """Write a batch in ``writer``, again and again while the database refuses it;
    returns how many events were new, or None if ``interrupted()`` came first.

    Any error of the database itself (:class:`~sqlalchemy.exc.DBAPIError`: connection
    lost, disk full, locked, read-only, even a constraint) is waited out, with a
    warning and ``gridlink_projection_retries_total`` per refusal: skipping the
    batch would lose it for good, while a stuck projection shows in its consumer
    lag. Anything else is a bug and propagates. Gaps are reported once, for the
    attempt that is stored."""
    delay = RETRY_FIRST_SECONDS
    loop = asyncio.get_running_loop()
    while True:
        gaps: list[ProjectionError] = []
        try:
            applied = await loop.run_in_executor(
                writer, partial(store.project, events, on_gap=gaps.append))
        except DBAPIError as error:
            if interrupted():
                return None
            metrics.PROJECTION_RETRIES.inc()
            reason = " ".join(str(error.orig if error.orig is not None else error).split())
            log.warning("projection: the database refused a batch of %d events "
                        "(%s: %s); retrying in %.1f s",
                        len(events), type(error).__name__, reason, delay)
            await _pause(delay, interrupted)
            delay = min(delay * 2, RETRY_MAX_SECONDS)
            continue
        for gap in gaps:
            _gap(gap)
        return applied


async def _pause(seconds: float, interrupted: Callable[[], bool]) -> None:
    """Wait ``seconds``, looking every half second whether to stop waiting."""
    loop = asyncio.get_running_loop()
    wake = loop.time() + seconds
    while not interrupted() and (left := wake - loop.time()) > 0:
        await asyncio.sleep(min(left, 0.5))


def _gap(error: ProjectionError) -> None:
    """A case whose log has a gap keeps what it had; the rest of the batch is written.
    ``gridlink replay`` rebuilds the store from the whole log."""
    metrics.PROJECTION_GAPS.inc()
    log.error("projection: %s", error.reason)
