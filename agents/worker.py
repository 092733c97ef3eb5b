"""Entry point of ``gridlink worker``: load the rules, build the app, run.

A worker runs three stages (``gridlink worker --agents`` picks some):

- ``intake``: the ingest topics → located events on ``cases.commands``
  (:mod:`agents.intake`, a consumer group of its own);
- ``cases``: the township writers — triage and the case engine, with their SLA
  timers (:mod:`agents.writer`, :mod:`agents.timers`; the Faust app's group);
- ``projection``: ``cases.events`` → the SQL store (:mod:`agents.projection`, a
  consumer group of its own).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import threading
from collections.abc import Iterable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import faust
from faust.types import TP
from faust.worker import Worker
from mode import Service

from agents import lag
from agents.app import create_app
from agents.batches import windows
from agents.health import Probes
from agents.intake import Intake
from agents.loops import ConsumerLoop
from agents.producer import DeliveryFailed, Header, Producer
from agents.projection import Projection
from agents.store import claim_state_dir
from agents.timers import AUDIT_SECONDS, Timers, TimerTask
from agents.writer import Input, Partition, Writer
from observability import health, metrics, tracing
from observability import logging as log_setup
from settings import Settings
from store.service import Store
from streams.calendar import CalendarGap, load_calendar
from streams.cases import load_case_policy
from streams.handlers import Rules
from streams.reference import load_city
from streams.triage_rules import load_triage_rules
from topics import registry
from topics.placement import Placement, check

log = logging.getLogger(__name__)

#: the stages a worker can run (``gridlink worker --agents``); all of them by default
AGENTS = ("intake", "cases", "projection")
ALIASES = {"triage": "cases"}  # triage and the case engine are one stage now
WINDOW_INPUTS = 1_000  # inputs the writer decides before sending what they cause
# The garbage collector's youngest generation holds 50,000 allocations, not 700: what a
# window holds for a few milliseconds dies young instead of reaching the oldest generation,
# whose full passes over the worker's heap stop the event loop (docs/adr/0004-gc.md).
GC_THRESHOLDS = (50_000, 10, 10)


def _calendar_gap(gap: CalendarGap) -> None:
    metrics.CALENDAR_GAPS.labels(str(gap.year)).inc()
    log.warning("working-day calendar: %s (falling back to Monday-Friday plus the override "
                "file)", gap.reason)


class Runtime(Service):
    """The worker's producer and stages, started and stopped with the Faust app."""

    def __init__(self, app: faust.App, settings: Settings, producer: Producer,
                 placement: Placement) -> None:
        super().__init__()
        self.app = app
        self.settings = settings
        self.placement = placement
        self.producer = producer
        self.loops: list[ConsumerLoop] = []
        self.writer: Writer | None = None
        self.timer_task: TimerTask | None = None
        self.ready = asyncio.Event()  # the producer is up and the placement known

    async def on_start(self) -> None:
        await self.producer.start()
        name = self.settings.topic
        self.placement.partitions = check(
            len(await self.producer.partitions(name(registry.CASE_COMMANDS))),
            len(await self.producer.partitions(name(registry.CASE_EVENTS))))
        self.ready.set()
        for loop in self.loops:
            await loop.start()

    async def on_stop(self) -> None:
        for loop in self.loops:
            await loop.stop()
        if self.writer is not None:
            await self.writer.close()
        await self.producer.stop()

    async def fatal(self, error: BaseException) -> None:
        """A stage cannot go on (a record the broker did not take): stop the worker, so
        that the partitions' next owner takes what was not committed."""
        if self.should_stop or self.app.should_stop:
            return
        log.critical("stopping the worker: %s", error)
        await self.app.crash(error)


def build(settings: Settings, agents: Sequence[str] = AGENTS,
          readiness: health.Readiness | None = None) -> faust.App:
    """The worker's Faust app with its stages; rule files are validated here, so a bad
    rule stops the worker at start with the file and entry named. With ``readiness``,
    the stages' checks are published to it every second (:mod:`agents.health`)."""
    stages = {ALIASES.get(name, name) for name in agents}
    city = load_city(settings.reference_dir)
    rules = Rules(triage=load_triage_rules(settings.rules_dir, departments=city.departments),
                  policy=load_case_policy(settings.rules_dir),
                  calendar=load_calendar(settings.rules_dir, on_gap=_calendar_gap))
    state_dir = claim_state_dir(settings)
    app = create_app(settings, state_dir)
    producer = Producer(settings)
    placement = Placement()
    runtime = Runtime(app, settings, producer, placement)
    loops = runtime.loops
    if "cases" in stages:
        runtime.writer = _register_writer(app, settings, rules, runtime, state_dir)
    if "intake" in stages:
        intake = Intake(settings, city, producer, placement)
        loops.append(ConsumerLoop(settings, name="intake", group=f"{settings.app_id}-intake",
                                  topics=intake.topics, stage=intake, fatal=runtime.fatal,
                                  before=runtime.ready.wait))
    if "projection" in stages:
        projection = Projection(settings, partial(Store.open, settings.database_url, city=city),
                                producer, lambda: bool(app.should_stop))
        projection.open_now()  # or with its first batch, if the database does not answer
        loops.append(ConsumerLoop(settings, name="projection",
                                  group=f"{settings.app_id}-projection",
                                  topics=[settings.topic(registry.CASE_EVENTS)],
                                  stage=projection, fatal=runtime.fatal,
                                  before=runtime.ready.wait))
    app.add_dependency(runtime)
    probes = None
    if readiness is not None:
        probes = Probes(readiness, runtime.ready, loops, writer=runtime.writer,
                        timer_task=runtime.timer_task)
        probes.register(app)
    lag.register(app, loops, probes.lag_measured if probes is not None else None)
    return app


def _register_writer(app: faust.App, settings: Settings, rules: Rules, runtime: Runtime,
                     state_dir: Path) -> Writer:
    """The township writers as the app's one agent, with their timers."""
    producer, placement = runtime.producer, runtime.placement
    timers = Timers()

    def ready(partition: Partition) -> None:
        timers.rebuild(partition, set(writer.partitions))

    writer = Writer(settings, rules, producer, state_dir, placement,
                    on_case=timers.track, on_ready=ready)
    commands = settings.topic(registry.CASE_COMMANDS)
    topic = app.topic(commands, key_serializer="raw", value_serializer="raw")
    task = runtime.timer_task = TimerTask(settings, writer, producer, timers, placement)

    @app.agent(topic, name="cases")
    async def township_writer(stream: faust.StreamT) -> None:
        await runtime.ready.wait()
        async for window in windows(stream, WINDOW_INPUTS, 0.0):
            inputs = [Input(topic=e.message.topic, partition=e.message.partition,
                            offset=e.message.offset, key=e.message.key,
                            value=e.message.value or b"", timestamp_ms=int(
                                e.message.timestamp * 1000),
                            headers=_pairs(e.message.headers))
                      async for e in window]
            try:
                await writer.take(inputs)
            except DeliveryFailed as failure:
                log.critical("%s: the writer stops; nothing of this window is committed",
                             failure)
                await app.crash(failure)
                raise

    @app.on_partitions_assigned.connect  # type: ignore[arg-type]  # faust sends (sender, assigned)
    async def assigned(sender: object, assigned: set[TP], **_: object) -> None:
        mine = {tp.partition for tp in assigned if tp.topic == commands}
        lost = set(writer.partitions) - mine
        for number in lost:
            timers.drop(number)
        await writer.revoke(lost)
        writer.assign(mine)

    @app.task
    async def fire_due_deadlines() -> None:
        await runtime.ready.wait()
        await task.run(lambda: bool(app.should_stop))

    @app.timer(AUDIT_SECONDS)
    async def audit_deadlines() -> None:
        task.audit()

    return writer


class BoundedWorker(Worker):
    """Faust's worker, whose stop on SIGTERM or Ctrl-C takes at most ``shutdown_seconds``:
    past that (a broker that does not answer holds a consumer's stop for a minute), the
    process exits with status 1. That is as safe as a kill at any instant — nothing
    uncommitted is lost, the partitions' next owner takes it again — and a supervisor
    gets its process back within a bound it knows."""

    def __init__(self, *args: Any, shutdown_seconds: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.shutdown_seconds = shutdown_seconds
        self._deadline: threading.Timer | None = None

    def _schedule_shutdown(self, received: signal.Signals) -> None:
        # mode's Worker sends both signals here; its first call starts the stop
        if self._deadline is None:
            log.info("%s: draining, for at most %.1f s", received.name, self.shutdown_seconds)
            self._deadline = threading.Timer(self.shutdown_seconds, self._give_up)
            self._deadline.daemon = True
            self._deadline.start()
        super()._schedule_shutdown(received)

    def _give_up(self) -> None:
        log.critical("the worker did not stop within %.1f s (GRIDLINK_SHUTDOWN_SECONDS): "
                     "exiting now; what it had not committed is read again by its "
                     "partitions' next owner", self.shutdown_seconds)
        for handler in logging.getLogger().handlers:
            handler.flush()
        os._exit(1)


def _pairs(headers: Iterable[Header] | Mapping[str, bytes] | None) -> tuple[Header, ...]:
    """A message's headers as (name, value) pairs: faust types them as pairs or a mapping."""
    if isinstance(headers, Mapping):
        return tuple(headers.items())
    return tuple(headers or ())


def run(settings: Settings, agents: Sequence[str] = AGENTS) -> None:
    """Run one worker until SIGINT/SIGTERM; several workers share the partitions."""
    gc.set_threshold(*GC_THRESHOLDS)
    log_setup.configure(settings)
    tracing.configure(settings, service="gridlink-worker")  # before build: stages read it
    readiness = health.Readiness()
    app = build(settings, agents, readiness)
    health.serve(settings.worker_metrics_port, readiness)  # /metrics, /healthz, /readyz
    # Faust sets logging up again when it starts: in JSON mode, hand it ours (and keep its
    # banner off stdout, so every line stays JSON); in text mode its own format stays.
    json_logs = {"logging_config": log_setup.logging_config(settings), "quiet": True}
    worker = BoundedWorker(app, loglevel=settings.log_level, redirect_stdouts=False,
                           shutdown_seconds=settings.shutdown_seconds,
                           **(json_logs if settings.log_json else {}))
    # Faust's terminal spinner, at level warning or above, turns the root logger to DEBUG
    # so that every debug call (aiokafka logs one per record sent) builds a log record;
    # a worker is a service, not a terminal program.
    worker.spinner = None
    worker.execute_from_commandline()
