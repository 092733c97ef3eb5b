"""Durable SLA timers: each partition's deadlines, fired through its writer.

Deadlines live in the case states (:mod:`agents.store`); each worker keeps a heap
of its cases' next wake-ups (``streams.timers.DeadlineIndex``), rebuilt from a
partition's store when the partition is recovered (in the background: inputs
are taken meanwhile, and each case written is indexed anew). Some seconds before
one falls due the timer task reads the case and arms its ``FireDeadline``
commands (``streams.timers.ArmedFires``); at the instant it sends them to
``cases.commands``, to the case's own writer, which takes them in order with
its other inputs: a fire never races a department's claim, and a writer taking
its inputs again after a crash meets each fire where it met it the first time.
A fire is idempotent: the engine ignores a stale or already-fired deadline.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from agents.producer import Producer
from agents.store import CASE_PREFIX
from agents.writer import Partition, Writer
from clock import wall_clock
from observability import metrics
from settings import Settings
from streams.cases import CaseClocks, CaseState, next_wakeup, pending_deadlines
from streams.timers import ArmedFires, DeadlineIndex
from topics import codecs, registry, signing
from topics.placement import Placement

log = logging.getLogger(__name__)

TIMER_TICK_SECONDS = 0.02  # longest sleep of the timer task when nothing is due sooner
REBUILD_CHUNK = 1_000  # cases decoded between yields to the event loop while rebuilding
ARM_CHUNK = 200  # cases read and armed between yields, so arming never starves the writer
FIRE_CHUNK = 1_000  # fires sent between yields
ARM_AHEAD = timedelta(seconds=10)  # fires are armed this long before their instant
AUDIT_SECONDS = 5.0  # how often the auditor counts overdue, unfired deadlines
AUDIT_GRACE_SECONDS = 5.0  # a deadline later than this counts as missed

#: sends armed fires, each as (its due timestamp, its case key, the encoded command)
Send = Callable[[list[tuple[float, bytes, bytes]]], Awaitable[None]]


@dataclass
class Timers:
    """The worker's deadline index and its armed fires."""

    index: DeadlineIndex = field(default_factory=DeadlineIndex)
    armed: ArmedFires = field(default_factory=ArmedFires)
    fired: int = 0
    rebuilding: dict[int, asyncio.Task[None]] = field(default_factory=dict)
    rebuilt: dict[int, int] = field(default_factory=dict)  # partition → cases indexed
    assigned: set[int] = field(default_factory=set)  # the partitions of the last assignment
    rebuild_started: float | None = None

    def track(self, partition: int, case_id: str, state: CaseState | CaseClocks | None) -> None:
        wakeup = next_wakeup(state)
        self.index.index_case(partition, case_id, [] if wakeup is None else [("next", wakeup)])

    async def tick(self, now: Callable[[], datetime],
                   case_of: Callable[[str], CaseState | None], send: Send) -> int:
        """One round of the timer task: send every armed fire whose instant has come,
        then arm the fires of every case with a deadline due within ``ARM_AHEAD``
        (``case_of`` gives a case's state). Returns how many cases it armed."""
        await self.send_due(now, send)
        horizon = now() + ARM_AHEAD
        dues = self.index.pop_due(horizon)
        for n, due in enumerate(dues, 1):
            state = case_of(due.case_id)
            key = due.case_id.encode()
            for deadline in pending_deadlines(state):
                if deadline.due <= horizon:
                    command = deadline.command()
                    self.armed.arm(command.command_id, deadline.due, key, codecs.encode(command))
            if n % ARM_CHUNK == 0:  # arming holds back neither what is due already …
                await self.send_due(now, send)
                await asyncio.sleep(0)  # … nor the writer
        return len(dues)

    async def send_due(self, now: Callable[[], datetime], send: Send) -> None:
        """Send every armed fire whose instant has come, ``FIRE_CHUNK`` between yields."""
        while fires := self.armed.pop_due(now(), limit=FIRE_CHUNK):
            await send(fires)
            self.fired += len(fires)
            await asyncio.sleep(0)

    def sleep_seconds(self, now: datetime) -> float:
        """How long the timer task may sleep: until the next armed fire, at most a tick
        (the index is looked at every tick)."""
        armed = self.armed.next_due()
        delay = TIMER_TICK_SECONDS if armed is None else armed - now.timestamp()
        return min(max(delay, 0.0), TIMER_TICK_SECONDS)

    def rebuild(self, partition: Partition, assigned: set[int]) -> None:
        """Index every case of a recovered partition, in the background (``assigned``:
        every partition the worker owns now; once all are indexed, it says so)."""
        old = self.rebuilding.pop(partition.number, None)
        if old is not None:
            old.cancel()
        if assigned != self.assigned or self.rebuild_started is None:
            self.assigned = set(assigned)
            self.rebuild_started = time.monotonic()
        self.rebuilding[partition.number] = asyncio.ensure_future(self._rebuild(partition))

    def drop(self, number: int) -> None:
        task = self.rebuilding.pop(number, None)
        if task is not None:
            task.cancel()
        self.rebuilt.pop(number, None)
        self.index.drop_partition(number)

    async def _rebuild(self, partition: Partition) -> None:
        started = wall_clock()
        store = partition.store
        assert store is not None
        cases = 0
        waiting = dict(partition.changed)  # folded from the log's tail, not on disk yet
        for case_id, state in waiting.items():
            self.track(partition.number, case_id, state)
        after: bytes | None = None
        while True:
            chunk = []
            for key, raw in store.items(CASE_PREFIX, after):
                chunk.append((key, raw))
                if len(chunk) >= REBUILD_CHUNK:
                    break
            if not chunk:
                break
            after = chunk[-1][0]
            for key, raw in chunk:  # a case written since is indexed as it is now
                case_id = key[len(CASE_PREFIX):].decode()
                if case_id in waiting:
                    continue
                newer = partition.changed.get(case_id)
                self.track(partition.number, case_id,
                           newer if newer is not None else codecs.unpack(raw, CaseClocks))
            cases += len(chunk)
            await asyncio.sleep(0)
        # The index lives as long as the worker: leave it out of the garbage collector's
        # full passes, which otherwise walk every entry, stalling the loop and the timers.
        gc.freeze()
        log.info("deadline index of partition %d rebuilt: %d cases, %.2f s", partition.number,
                 cases, (wall_clock() - started).total_seconds())
        self.rebuilding.pop(partition.number, None)
        self.rebuilt[partition.number] = cases
        if self.assigned <= set(self.rebuilt) and self.rebuild_started is not None:
            log.info("deadline index rebuilt: %d cases in %d partitions, %.2f s",
                     len(self.index), len(self.assigned), time.monotonic() - self.rebuild_started)
            self.rebuild_started = None


class TimerTask:
    """Runs :class:`Timers` for a :class:`~agents.writer.Writer`."""

    def __init__(self, settings: Settings, writer: Writer, producer: Producer,
                 timers: Timers, placement: Placement) -> None:
        self.placement = placement
        self.settings = settings
        self.writer = writer
        self.producer = producer
        self.timers = timers
        self.commands = settings.topic(registry.CASE_COMMANDS)
        self.signing_key = signing.key_for(settings)
        self.running = False  # the task arms and fires deadlines (the readiness probe)

    async def send(self, fires: list[tuple[float, bytes, bytes]]) -> None:
        batches = self.producer.batches()
        for _, key, record in fires:
            batches.add(self.commands, self.placement.of_case(key.decode()), key, record,
                        signing.signed(self.signing_key, key, record),
                        what=f"fire {key.decode()}")
        await batches.send()
        sent_at = wall_clock().timestamp()
        metrics.DEADLINES_FIRED.inc(len(fires))
        for due_ts, _, _ in fires:
            metrics.TIMER_LATENESS.observe(sent_at - due_ts)

    async def run(self, should_stop: Callable[[], bool]) -> None:
        """Arm what falls due within ``ARM_AHEAD``; send each fire at its instant."""
        self.running = True
        try:
            while not should_stop():
                await self.timers.tick(wall_clock, self.writer.case, self.send)
                await asyncio.sleep(self.timers.sleep_seconds(wall_clock()))
        finally:
            self.running = False

    def audit(self) -> None:
        """The auditor: deadlines past due and not fired (should stay 0)."""
        now = wall_clock()
        overdue = (self.timers.index.overdue(now, AUDIT_GRACE_SECONDS)
                   + self.timers.armed.overdue(now, AUDIT_GRACE_SECONDS))
        metrics.OVERDUE_UNFIRED.set(overdue)
        metrics.DEADLINES_INDEXED.set(len(self.timers.index))
        if overdue:
            log.warning("auditor: %d deadlines are more than %.0f s overdue and not fired",
                        overdue, AUDIT_GRACE_SECONDS)
