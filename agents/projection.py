"""The SQL projection, live: ``cases.events`` → the store, in batches.

A stage of :class:`agents.loops.ConsumerLoop`: each batch the consumer fetches is
written in one transaction, idempotent on (case_id, seq), in one worker thread so
a write never blocks the event loop; the batch's offsets are committed only once
it is stored. A batch the database refuses (down, disk full, locked, read-only)
is written again after a capped exponential backoff until the database takes
it: during an outage the projection falls behind, and nothing is lost. A record
that is not a case event, that the database refuses for good (a value it cannot
hold, a constraint: :func:`store.db.refused_for_good`), or that the projection
fails on for any other reason, is dead-lettered with its bytes and the error, and
the rest of its batch is written.

The database need not answer when the worker starts: the store is opened (migrated,
the reference data loaded) at start if it answers, else when the first batch comes,
again after the same backoff while the database does not answer. The worker's other
stages — intake, the case writers, the timers — run meanwhile; the projection catches
up once it answers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from datetime import datetime
from typing import TypeVar

import msgspec
from aiokafka import ConsumerRecord
from sqlalchemy.exc import DBAPIError

from agents.deadletters import add_dead_letter
from agents.producer import Producer
from observability import metrics, tracing
from settings import Settings
from store.db import refused_for_good
from store.projector import ProjectionError
from store.service import Store
from streams.cases import CaseEvent, event_decoder
from streams.zone import TZ
from topics import registry

log = logging.getLogger(__name__)

RETRY_FIRST_SECONDS = 0.5  # the wait after a refused write, doubled after each refusal …
RETRY_MAX_SECONDS = 30.0  # … up to this

T = TypeVar("T")


class Projection:
    """The projection stage (see the module's docstring)."""

    def __init__(self, settings: Settings, open_store: Callable[[], Store], producer: Producer,
                 interrupted: Callable[[], bool]) -> None:
        self.settings = settings
        self.open_store = open_store  # migrates the database and opens it
        self.store: Store | None = None
        self.producer = producer
        self.interrupted = interrupted  # the worker stops: give up waiting for the database
        self.writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="projection")
        self.topic = settings.topic(registry.CASE_EVENTS)
        self.dead_letters = settings.topic(registry.DEAD_LETTER)

    def open_now(self) -> None:
        """One attempt to open the store, at start: a worker started with the database
        up has migrated it before it is ready. A database that does not answer is left
        to :meth:`opened`, and the worker starts without it."""
        try:
            self.store = self.open_store()
        except DBAPIError as error:
            if refused_for_good(error):
                raise
            log.warning("projection: the database does not answer (%s); the other stages "
                        "start now, the projection when it answers", _reason(error))

    async def opened(self) -> Store | None:
        """The store, opened on first use — again and again while the database does not
        answer; None if the worker stops first."""
        if self.store is None:
            self.store = await retry_while_down(self.open_store, self.writer, self.interrupted,
                                                what="its migration at start")
        return self.store

    async def __call__(self, records: Sequence[ConsumerRecord]) -> None:
        store = await self.opened()
        if store is None:
            raise InterruptedError("the worker stops before the database answers")
        events: list[CaseEvent] = []
        sources: list[ConsumerRecord] = []
        poison: list[tuple[ConsumerRecord, str, str]] = []
        for record in records:
            try:
                events.append(event_decoder.decode(record.value or b""))
                sources.append(record)
            except (msgspec.DecodeError, msgspec.ValidationError) as error:
                poison.append((record, "invalid_event", f"not a case event: {error}"))
        with tracing.spans_per_trace("projection", (r.headers for r in sources)):
            try:
                applied = await write_until_stored(store, self.writer, events,
                                                   self.interrupted)
            except asyncio.CancelledError:
                raise
            except DBAPIError as error:
                if not refused_for_good(error):
                    raise
                log.warning("projection: the database refuses a batch of %d events for "
                            "good (%s); writing them one by one", len(events),
                            _reason(error))
                applied = await self._one_by_one(store, events, sources, poison)
            except Exception:  # noqa: BLE001 — find the event the projection fails on
                log.exception("projection: a batch of %d events failed; writing them one by "
                              "one", len(events))
                applied = await self._one_by_one(store, events, sources, poison)
        if applied is None:
            raise InterruptedError("the worker stops while the database refuses a batch")
        metrics.PROJECTED_EVENTS.inc(applied)
        if poison:
            await self._dead_letter(poison)

    async def _one_by_one(self, store: Store, events: list[CaseEvent],
                          sources: list[ConsumerRecord],
                          poison: list[tuple[ConsumerRecord, str, str]]) -> int | None:
        applied = 0
        for event, record in zip(events, sources, strict=True):
            try:
                stored = await write_until_stored(store, self.writer, [event],
                                                  self.interrupted)
            except DBAPIError as error:
                if not refused_for_good(error):
                    raise
                poison.append((record, "projection_refused",
                               f"the database refuses this event for good: {_reason(error)}"))
                continue
            except Exception as error:  # noqa: BLE001 — this one is poison
                poison.append((record, "projection_failed", f"{type(error).__name__}: {error}"))
                continue
            if stored is None:
                return None
            applied += stored
        return applied

    async def _dead_letter(self, poison: list[tuple[ConsumerRecord, str, str]]) -> None:
        batches = self.producer.batches()
        for record, code, reason in poison:
            add_dead_letter(batches, self.dead_letters, source=registry.CASE_EVENTS,
                            topic=record.topic, partition=record.partition,
                            offset=record.offset, key=record.key, raw=record.value or b"",
                            received_at=datetime.fromtimestamp(record.timestamp / 1000,
                                                               tz=TZ),
                            code=code, reason=reason)
        await batches.send()


async def write_until_stored(store: Store, writer: Executor, events: Sequence[CaseEvent],
                             interrupted: Callable[[], bool]) -> int | None:
    """Write a batch in ``writer``, again and again while the database refuses it;
    returns how many events were new, or None if ``interrupted()`` came first.

    An outage of the database (:class:`~sqlalchemy.exc.DBAPIError`: connection
    lost, disk full, locked, read-only) is waited out, with a warning and
    ``gridlink_projection_retries_total`` per refusal: skipping the batch would lose
    it for good, while a stuck projection shows in its consumer lag. A refusal of
    the data itself (:func:`store.db.refused_for_good`) and anything else
    propagate: the caller finds the event and dead-letters it. Gaps are reported
    once, for the attempt that is stored."""
    gaps: list[ProjectionError] = []

    def attempt() -> int:
        gaps.clear()
        return store.project(events, on_gap=gaps.append)

    applied = await retry_while_down(attempt, writer, interrupted,
                                     what=f"a batch of {len(events)} events")
    for gap in gaps if applied is not None else ():
        _gap(gap)
    return applied


async def retry_while_down(call: Callable[[], T], writer: Executor,
                           interrupted: Callable[[], bool], *, what: str) -> T | None:
    """``call()`` in ``writer``, again after a capped, doubling wait while the database
    does not take it (:class:`~sqlalchemy.exc.DBAPIError` but a refusal for good: those
    and anything else propagate); None if ``interrupted()`` comes first. Each refusal
    logs a warning naming ``what`` and counts in ``gridlink_projection_retries_total``."""
    delay = RETRY_FIRST_SECONDS
    loop = asyncio.get_running_loop()
    while True:
        try:
            return await loop.run_in_executor(writer, call)
        except DBAPIError as error:
            if refused_for_good(error):
                raise
            if interrupted():
                return None
            metrics.PROJECTION_RETRIES.inc()
            log.warning("projection: the database refused %s (%s); retrying in %.1f s",
                        what, _reason(error), delay)
            await _pause(delay, interrupted)
            delay = min(delay * 2, RETRY_MAX_SECONDS)


def _reason(error: DBAPIError) -> str:
    """The database's own words, on one line."""
    said = " ".join(str(error.orig if error.orig is not None else error).split())
    return f"{type(error).__name__}: {said}"


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
