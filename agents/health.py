"""A worker's readiness, checked on its event loop every second and published for the
probe server (:mod:`observability.health`, ``/readyz`` on the metrics port).

The checks, each with what it saw:

- ``producer``: the worker's producer is up and the placement known;
- ``writer`` (the cases stage): the group has assigned this worker its partitions of
  ``cases.commands`` and each is recovered (a worker given none — more workers than
  partitions — stands by, ready);
- ``timers`` (the cases stage): the timer task arms and fires deadlines;
- ``intake``, ``projection``: the stage's consumer loop is running;
- ``lag``: the consumer lag was measured within the last ``LAG_STALE_SECONDS``
  (it is measured every ``agents.lag.LAG_SECONDS``; a broker that does not answer
  stops it).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

import faust

from agents.lag import LAG_SECONDS
from agents.loops import ConsumerLoop
from agents.timers import TimerTask
from agents.writer import Writer
from observability.health import Check, Readiness

PROBE_SECONDS = 1.0  # how often the checks run
LAG_STALE_SECONDS = 3 * LAG_SECONDS  # a lag older than this is not known any more


class Probes:
    """Runs the worker's checks and publishes them to a :class:`Readiness`."""

    def __init__(self, readiness: Readiness, producer_ready: asyncio.Event,
                 loops: Sequence[ConsumerLoop], *, writer: Writer | None = None,
                 timer_task: TimerTask | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.readiness = readiness
        self.producer_ready = producer_ready
        self.loops = loops
        self.writer = writer
        self.timer_task = timer_task
        self.clock = clock
        self.lag_measured_at: float | None = None

    def lag_measured(self) -> None:
        self.lag_measured_at = self.clock()

    def checks(self) -> dict[str, Check]:
        checks = {"producer": Check(self.producer_ready.is_set(),
                                    "up" if self.producer_ready.is_set()
                                    else "starting: waiting for the broker")}
        if self.writer is not None:
            checks["writer"] = _writer(self.writer)
        if self.timer_task is not None:
            checks["timers"] = _timers(self.timer_task)
        for loop in self.loops:
            checks[loop.name] = _loop(loop)
        checks["lag"] = self._lag()
        return checks

    def _lag(self) -> Check:
        if self.lag_measured_at is None:
            return Check(False, "not measured yet")
        age = self.clock() - self.lag_measured_at
        if age > LAG_STALE_SECONDS:
            return Check(False, f"last measured {age:.0f} s ago: the broker does not answer")
        return Check(True, f"measured {age:.1f} s ago")

    def register(self, app: faust.App) -> None:
        @app.timer(PROBE_SECONDS)
        async def publish_readiness() -> None:
            self.readiness.publish(self.checks())


def _writer(writer: Writer) -> Check:
    if not writer.assigned:
        return Check(False, "waiting for the group to assign partitions of cases.commands")
    recovering = sorted(n for n, p in writer.partitions.items() if not p.ready.is_set())
    if recovering:
        return Check(False, f"recovering partitions {recovering}")
    if not writer.partitions:
        return Check(True, "no partition assigned (more workers than partitions): standing by")
    return Check(True, f"partitions {sorted(writer.partitions)} assigned and recovered")


def _timers(task: TimerTask) -> Check:
    if not task.running:
        return Check(False, "the timer task is not running")
    rebuilding = sorted(task.timers.rebuilding)
    return Check(True, f"running; {len(task.timers.index)} cases indexed"
                 + (f", partitions {rebuilding} being indexed" if rebuilding else ""))


def _loop(loop: ConsumerLoop) -> Check:
    if loop.running is None or loop.consumer is None:
        return Check(False, "starting")
    if loop.running.done():
        return Check(False, "stopped")
    assigned = sorted(f"{tp.topic}[{tp.partition}]" for tp in loop.consumer.assignment())
    return Check(True, f"running; assigned {', '.join(assigned) or 'nothing yet'}")


__all__ = ["LAG_STALE_SECONDS", "PROBE_SECONDS", "Probes"]
