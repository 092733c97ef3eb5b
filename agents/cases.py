"""The case engine on Kafka: one writer per case, and durable SLA timers.

``cases.commands`` is keyed by case id; the agent that owns a partition is the
only writer of its cases. For each command it asks the pure engine
(``streams.cases.decide``), stores the new state in the changelog-backed
``cases`` table, appends the events to ``cases.events``, tells the departments
(``dept.<code>``) and the command center (``command.alerts``) what they must
see, and answers on ``cases.replies``.

Timers: each case's next wake-up sits in a per-partition heap
(``streams.timers.DeadlineIndex``), rebuilt from the table whenever partitions
are assigned. Some seconds before one falls due, the timer task reads the case
and arms its ``FireDeadline`` commands (``streams.timers.ArmedFires``); at the
instant it sends them through ``cases.commands`` — the same single writer
applies them, so a timer never races a department's claim. A fire is
idempotent: the engine ignores a stale or already-fired deadline.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import faust
import msgspec

from agents.app import Topics
from agents.clock import wall_clock
from agents.outbox import Outbox
from observability import metrics, tracing
from settings import Settings
from streams.calendar import WorkCalendar
from streams.cases import (
    CaseClocks,
    CasePolicy,
    CaseState,
    Command,
    alert_messages,
    apply,
    command_decoder,
    compensations,
    decide,
    department_messages,
    follow_ups,
    next_wakeup,
    pending_deadlines,
)
from streams.errors import TransitionRejected
from streams.timers import ArmedFires, DeadlineIndex
from topics import codecs, registry
from topics.deadletter import dead_letter
from topics.replies import CaseReply

log = logging.getLogger(__name__)

TIMER_TICK_SECONDS = 0.02  # longest sleep of the timer task when nothing is due sooner
REBUILD_CHUNK = 1_000  # cases decoded between yields to the event loop while rebuilding
ARM_CHUNK = 200  # cases read and armed between yields, so arming never starves the agents
FIRE_CHUNK = 1_000  # fires sent between yields (packed in record batches: a few ms)
ARM_AHEAD = timedelta(seconds=10)  # fires are armed this long before their instant
AUDIT_SECONDS = 5.0  # how often the auditor counts overdue, unfired deadlines
AUDIT_GRACE_SECONDS = 5.0  # a deadline later than this counts as missed

#: sends armed fires, each as (its due timestamp, its case key, the encoded command)
Send = Callable[[list[tuple[float, bytes, bytes]]], Awaitable[None]]


@dataclass
class Timers:
    """The worker's deadline index and what it knows of partitions."""

    index: DeadlineIndex = field(default_factory=DeadlineIndex)
    armed: ArmedFires = field(default_factory=ArmedFires)
    #: each case's partition, for a store that does not keep it (memory); else None
    partition_of: dict[bytes, int] | None = field(default_factory=dict)
    fired: int = 0
    rebuilding: asyncio.Future[None] | None = None  # the index's rebuild, in the background

    def track(self, key: bytes, partition: int, state: CaseState | CaseClocks | None) -> None:
        if self.partition_of is not None:
            self.partition_of[key] = partition
        wakeup = next_wakeup(state)
        self.index.index_case(partition, key.decode(), [] if wakeup is None else [("next", wakeup)])

    async def tick(self, now: Callable[[], datetime], read: Callable[[bytes], bytes | None],
                   send: Send, *, expect: Callable[[bytes], object] | None = None) -> int:
        """One round of the timer task: send every armed fire whose instant has come,
        then arm the fires of every case with a deadline due within ``ARM_AHEAD``
        (``read`` gives a case's stored state; ``expect`` is told the key of each case
        a fire was armed for, so the sender can do its per-key work ahead). Returns
        how many cases it armed."""
        await self.send_due(now, send)
        horizon = now() + ARM_AHEAD
        dues = self.index.pop_due(horizon)
        for n, due in enumerate(dues, 1):
            key = due.case_id.encode()
            stored = read(key)
            state = codecs.unpack(stored, CaseState) if stored else None
            armed = False
            for deadline in pending_deadlines(state):
                if deadline.due <= horizon:
                    command = deadline.command()
                    armed |= self.armed.arm(command.command_id, deadline.due, key,
                                            codecs.encode(command))
            if armed and expect is not None:
                expect(key)
            if n % ARM_CHUNK == 0:  # arming holds back neither what is due already …
                await self.send_due(now, send)
                await asyncio.sleep(0)  # … nor the agents
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



def register(app: faust.App, topics: Topics, settings: Settings, policy: CasePolicy,
             calendar: WorkCalendar) -> Timers:
    cases = app.Table("cases", key_type=bytes, value_type=bytes, partitions=settings.partitions,
                      help="case state, one entry per case (msgpack CaseState)")
    commands_topic = topics(registry.CASE_COMMANDS)
    names = settings.topic
    commands_name, events_name = names(registry.CASE_COMMANDS), names(registry.CASE_EVENTS)
    replies_name, alerts_name = names(registry.CASE_REPLIES), names(registry.COMMAND_ALERTS)
    dead_letter_name = names(registry.DEAD_LETTER)
    outbox = Outbox(app)
    timers = Timers()

    async def reply(key: bytes, answer: CaseReply, headers: tracing.KafkaHeaders | None) -> None:
        await outbox.send(replies_name, key, codecs.encode(answer), headers)

    async def send_commands(commands: list[Command], headers: tracing.KafkaHeaders | None) -> None:
        """Commands for other cases (merge, split): each to its own case's writer."""
        for other in commands:
            await outbox.send(commands_name, other.case_id.encode(), codecs.encode(other), headers)

    @app.agent(commands_topic, name="cases")
    async def case_agent(stream: faust.StreamT) -> None:
        async for message_event in stream.events():
            message = message_event.message
            key: bytes = message.key or b""
            headers = tracing.outgoing_headers()  # every message this command causes joins its trace
            try:
                command = command_decoder.decode(message.value or b"")
                if command.case_id.encode() != key:
                    raise ValueError(f"the record key {key!r} must be the case id "
                                     f"{command.case_id!r}")
            except (msgspec.DecodeError, ValueError) as error:
                metrics.DEAD_LETTERS.labels(registry.CASE_COMMANDS, "invalid_command").inc()
                await outbox.send(dead_letter_name, key, headers=headers, value=dead_letter(
                    raw=message.value or b"", key=message.key, topic=message.topic,
                    partition=message.partition, offset=message.offset,
                    code="invalid_command", reason=str(error), field=None,
                    received_at=wall_clock()))
                continue
            stored = cases.get(key)
            state = codecs.unpack(stored, CaseState) if stored else None
            try:
                events = decide(state, command, policy, calendar, wall_clock())
            except TransitionRejected as rejected:
                metrics.CASE_COMMANDS.labels(command.__struct_config__.tag, "rejected").inc()
                await reply(key, CaseReply(case_id=command.case_id, command_id=command.command_id,
                                           accepted=False, reason=rejected.reason,
                                           status=state.status if state else None), headers)
                await send_commands(compensations(command, rejected.reason), headers)
                timers.track(key, message.partition, state)
                continue
            metrics.CASE_COMMANDS.labels(command.__struct_config__.tag, "applied").inc()
            for event in events:
                before, state = state, apply(state, event)
                metrics.observe_case_event(before, event, state)
            if events:
                cases[key] = codecs.pack(state)
                for event in events:
                    await outbox.send(events_name, key, codecs.encode(event), headers)
                to_departments = department_messages(state, events)
                for department, payload in to_departments:
                    await outbox.send(names(registry.department_topic(department)), key,
                                      codecs.encode(payload), headers)
                metrics.observe_department_messages(metrics.ingest_time(message.headers),
                                                    to_departments, wall_clock())
                for payload in alert_messages(state, events):
                    await outbox.send(alerts_name, key, codecs.encode(payload), headers)
                await send_commands(follow_ups(state, command, events), headers)
            timers.track(key, message.partition, state)
            await reply(key, CaseReply(
                case_id=command.case_id, command_id=command.command_id, accepted=True,
                seqs=tuple(e.seq for e in events), status=state.status if state else None),
                headers)

    @cases.on_recover
    async def rebuild_deadline_index() -> None:
        """After (re)assignment: index every owned case's next wake-up, in the background:
        commands are processed meanwhile (each indexes its case as it is applied), so
        the rebuild reads every case from the table only as it indexes it."""
        from agents import tables

        active = {tp.partition for tp in app.assignor.assigned_actives()
                  if tp.topic == commands_topic.get_topic_name()}
        if timers.rebuilding is not None:
            timers.rebuilding.cancel()  # one for an earlier assignment
        if tables.knows_partitions(cases.data):
            timers.partition_of = None
        timers.index = DeadlineIndex()
        timers.armed.clear()
        scans = tables.scans(cases.data, active, timers.partition_of)

        async def rebuild() -> None:
            started = wall_clock()
            for scan in scans:
                while chunk := scan.chunk(REBUILD_CHUNK):
                    for key, raw in chunk:  # no await between reading a chunk and indexing it
                        timers.track(key, scan.partition,
                                     codecs.unpack(raw, CaseClocks) if raw else None)
                    await asyncio.sleep(0)
            # The index and what the start-up loaded live as long as the worker: leave
            # them out of the garbage collector's full passes, which otherwise walk
            # every one of them (about 100 ms at 100,000 cases, stalling the loop and
            # the timers). Reference counting still frees them.
            gc.freeze()
            log.info("deadline index rebuilt: %d cases in %d partitions, %.2f s",
                     len(timers.index), len(active), (wall_clock() - started).total_seconds())

        timers.rebuilding = app.add_future(rebuild())

    async def send_fires(fires: list[tuple[float, bytes, bytes]]) -> None:
        await outbox.send_burst(commands_name, [(key, record) for _, key, record in fires])
        sent_at = wall_clock().timestamp()
        metrics.DEADLINES_FIRED.inc(len(fires))
        for due_ts, _, _ in fires:
            metrics.TIMER_LATENESS.observe(sent_at - due_ts)

    @app.task
    async def fire_due_deadlines() -> None:
        """Arm ``FireDeadline`` for what falls due within ``ARM_AHEAD``; send each at
        its instant."""
        while not app.should_stop:
            await timers.tick(wall_clock, cases.get, send_fires, expect=outbox.expect)
            await asyncio.sleep(timers.sleep_seconds(wall_clock()))

    @app.timer(AUDIT_SECONDS)
    async def audit_deadlines() -> None:
        """The auditor: deadlines past due and not fired (should stay 0)."""
        now = wall_clock()
        overdue = (timers.index.overdue(now, AUDIT_GRACE_SECONDS)
                   + timers.armed.overdue(now, AUDIT_GRACE_SECONDS))
        metrics.OVERDUE_UNFIRED.set(overdue)
        metrics.DEADLINES_INDEXED.set(len(timers.index))
        if overdue:
            log.warning("auditor: %d deadlines are more than %.0f s overdue and not fired",
                        overdue, AUDIT_GRACE_SECONDS)

    return timers
