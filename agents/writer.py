"""The writer of a partition's townships: triage and the case engine, co-located.

``cases.commands`` holds every input of a township's writer — the located
events intake forwards, and the commands on its cases from the API, the timers
and other cases — in the township's partition (:mod:`topics.placement`). The
worker that owns partition n takes its inputs in order and, for each, asks the
pure core (:mod:`streams.handlers`) what it causes. Then, for a window of
inputs:

1. the case events go to partition n of ``cases.events``, each input's events
   in one record batch (appended whole or not at all), every record marked with
   the input's offset (header ``gridlink-input``);
2. once the broker has them, what they mean for others goes out: department
   queues, alerts, commands for other cases, replies, dead letters;
3. once the broker has those too, the states go to the local store with the
   position they reflect (:mod:`agents.store`), and the inputs are acknowledged.

A record the broker does not take stops the writer (:class:`DeliveryFailed`):
nothing past it is acknowledged, and the partition's next owner takes the
inputs again.

**The log is the state.** The store is a cache of ``cases.events``; triage's
memory of a township is a fold of its cases' events too (:mod:`streams.township`).
A partition is recovered from its store plus the log's tail. Events of inputs
before the group's committed offset are folded as they are; those of later
inputs (written, perhaps not yet fanned out) are kept aside, and each such input
is taken again: decisions take their time from the input, so the same input on
the same state decides the same events — they are not appended twice, and what
they cause is sent again, identical. Should a decision differ (the rules changed
between the crash and the restart), the log wins: its events are folded, and
what they cause is derived from them.

An input that cannot be read, or that the core fails on, is dead-lettered with
its bytes and the error, and the writer goes on. A command placed in another
township's partition is forwarded to its writer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec
from aiokafka import TopicPartition

from agents.deadletters import add_dead_letter
from agents.producer import Batches, Header, Producer
from agents.store import (
    CASE_PREFIX,
    TOWNSHIP_PREFIX,
    PartitionStore,
    Position,
    open_store,
)
from clock import wall_clock
from observability import metrics, tracing
from settings import Settings
from streams.cases import CaseEvent, CaseOpened, CaseState, Command, apply, event_decoder
from streams.cases.replies import CaseReply
from streams.correlate import TownshipState
from streams.handlers import Outcome, Rules, consequences, handle_command, handle_event
from streams.handlers import fold as fold_case
from streams.records import LocatedEvent
from streams.township import evolve as evolve_township
from streams.township import township_of
from streams.zone import TZ
from topics import clients, codecs, registry, signing
from topics.placement import Placement

log = logging.getLogger(__name__)

INPUT_HEADER = "gridlink-input"  # on each cases.events record: the input offset that caused it
PERSIST_SECONDS = 0.5  # the store is written at most this often …
PERSIST_CASES = 5_000  # … or once this many states wait for it
CACHE_CASES = 1_000  # decoded case states kept per partition (most recently used): every
#                     state held decoded is hundreds of objects the garbage collector walks
EMPTY_TOWNSHIP = TownshipState()


@dataclass(frozen=True)
class Input:
    """One record of ``cases.commands``."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    timestamp_ms: int
    headers: tuple[Header, ...] = ()

    @property
    def at(self) -> datetime:
        """The input's time: what every decision about it is taken at."""
        return datetime.fromtimestamp(self.timestamp_ms / 1000, TZ)


@dataclass
class Logged:
    """An event found in the log's tail, with its bytes as written."""

    event: CaseEvent
    raw: bytes


@dataclass
class Partition:
    """What a writer holds of one partition."""

    number: int
    store: PartitionStore | None = None
    townships: dict[str, TownshipState] = field(default_factory=dict)
    changed: dict[str, CaseState] = field(default_factory=dict)  # not in the store yet
    changed_townships: set[str] = field(default_factory=set)
    cache: OrderedDict[str, CaseState] = field(default_factory=OrderedDict)
    log_next: int = 0  # next offset of cases.events[number] not accounted for
    input_next: int = 0  # next input offset to take
    tail: dict[int, list[Logged]] = field(default_factory=dict)  # input offset → its events
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    persisted_at: float = 0.0

    def case(self, case_id: str) -> CaseState | None:
        state = self.changed.get(case_id)
        if state is not None:
            return state
        state = self.cache.get(case_id)
        if state is not None:
            self.cache.move_to_end(case_id)
            return state
        assert self.store is not None
        raw = self.store.get(CASE_PREFIX + case_id.encode())
        if raw is None:
            return None
        state = codecs.unpack(raw, CaseState)
        self._remember(case_id, state)
        return state

    def township(self, code: str) -> TownshipState:
        return self.townships.get(code, EMPTY_TOWNSHIP)

    def put(self, state: CaseState | None, township: str, memory: TownshipState | None) -> None:
        if state is not None:
            self.changed[state.case_id] = state
        if memory is not None and memory is not self.townships.get(township):
            self.townships[township] = memory
            self.changed_townships.add(township)

    def persist(self) -> None:
        """Write what changed, and the position it reflects, to the store."""
        assert self.store is not None
        changes = {CASE_PREFIX + key.encode(): codecs.pack(state)
                   for key, state in self.changed.items()}
        changes.update({TOWNSHIP_PREFIX + code.encode(): codecs.pack(self.townships[code])
                        for code in self.changed_townships})
        self.store.write(changes, Position(log=self.log_next, input=self.input_next))
        for key, state in self.changed.items():
            self._remember(key, state)
        self.changed.clear()
        self.changed_townships.clear()
        self.persisted_at = time.monotonic()

    def _remember(self, case_id: str, state: CaseState) -> None:
        self.cache[case_id] = state
        self.cache.move_to_end(case_id)
        while len(self.cache) > CACHE_CASES:
            self.cache.popitem(last=False)


@dataclass
class Outputs:
    """What a window of inputs sends: case events first, everything else after."""

    events: Batches
    others: Batches
    delivered: list[tuple[float, list[Any]]] = field(default_factory=list)  # ingest time, msgs


class Writer:
    """The writer of the partitions this worker owns (see the module's docstring)."""

    def __init__(self, settings: Settings, rules: Rules, producer: Producer, state_dir: Path,
                 placement: Placement, *,
                 on_case: Callable[[int, str, CaseState | None], None] | None = None,
                 on_ready: Callable[[Partition], None] | None = None) -> None:
        self.settings = settings
        self.rules = rules
        self.producer = producer
        self.state_dir = state_dir
        self.on_case = on_case  # told of every case state written (the timers' index)
        self.on_ready = on_ready  # told when a partition is recovered
        self.partitions: dict[int, Partition] = {}
        self.placement = placement
        name = settings.topic
        self.commands_topic, self.events_topic = (name(registry.CASE_COMMANDS),
                                                  name(registry.CASE_EVENTS))
        self.replies_topic, self.alerts_topic = (name(registry.CASE_REPLIES),
                                                 name(registry.COMMAND_ALERTS))
        self.dead_letter_topic = name(registry.DEAD_LETTER)
        self.signing_key = signing.key_for(settings)  # None: nothing checked
        self._recoveries: dict[int, asyncio.Task[None]] = {}
        self._unacknowledged = False  # a window is decided and not all of it acknowledged
        self._department_partitions: dict[str, int] = {}
        self.assigned = False  # the group has given this worker its partitions (maybe none)

    # -- partitions come and go --------------------------------------------------------

    def assign(self, numbers: Iterable[int]) -> None:
        """Partitions this worker now owns: each is recovered in the background; its
        inputs wait for it."""
        self.assigned = True
        for number in sorted(set(numbers) - set(self.partitions)):
            partition = self.partitions[number] = Partition(number)
            self._recoveries[number] = asyncio.ensure_future(self._recover(partition))

    async def revoke(self, numbers: Iterable[int]) -> None:
        for number in numbers:
            partition = self.partitions.pop(number, None)
            task = self._recoveries.pop(number, None)
            if task is not None and not task.done():
                task.cancel()
            if partition is not None and partition.store is not None:
                if partition.ready.is_set() and not partition.tail and not self._unacknowledged:
                    partition.persist()
                partition.store.close()

    async def close(self) -> None:
        await self.revoke(list(self.partitions))

    async def _recover(self, partition: Partition) -> None:
        started = time.monotonic()
        store = partition.store = await asyncio.to_thread(
            open_store, self.settings, self.state_dir, partition.number)
        position = store.position
        for key, raw in store.items(TOWNSHIP_PREFIX):
            partition.townships[key[1:].decode()] = codecs.unpack(raw, TownshipState)
        committed = await self._committed(partition.number)
        start = max(committed, position.input)
        folded, kept, end = await self._read_tail(partition, position.log, start)
        partition.log_next = end
        partition.input_next = start
        if not partition.tail and partition.changed:  # what the tail changed, on disk now
            partition.persist()
        log.info("partition %d recovered in %.1f s: the store was at log offset %d and input "
                 "%d; %d events of the log's tail folded, %d kept for %d inputs taken again "
                 "from offset %d", partition.number, time.monotonic() - started, position.log,
                 position.input, folded, kept, len(partition.tail), start)
        partition.ready.set()
        if self.on_ready is not None:
            self.on_ready(partition)

    async def _committed(self, number: int) -> int:
        """The group's committed offset of ``cases.commands[number]`` (0 if none)."""
        admin = clients.aio_admin(self.settings, client_id="gridlink-writer")
        await admin.start()
        try:
            tp = TopicPartition(self.commands_topic, number)
            offsets = await admin.list_consumer_group_offsets(self.settings.app_id,
                                                              partitions=[tp])
        finally:
            await admin.close()
        found = offsets.get(tp)
        return max(found.offset, 0) if found is not None else 0

    async def _read_tail(self, partition: Partition, offset: int, start: int
                         ) -> tuple[int, int, int]:
        """Read ``cases.events[partition]`` from ``offset`` to its end: fold the events of
        inputs before ``start``, keep the others aside. Returns (folded, kept, end)."""
        consumer = clients.aio_consumer(self.settings,
                                        group_id=None, enable_auto_commit=False,
                                        client_id="gridlink-writer-recovery",
                                    max_partition_fetch_bytes=8 * 2**20,
                                    fetch_max_bytes=32 * 2**20)
        tp = TopicPartition(self.events_topic, partition.number)
        folded = kept = 0
        await consumer.start()
        try:
            consumer.assign([tp])
            end = (await consumer.end_offsets([tp]))[tp]
            if offset >= end:
                return 0, 0, end
            consumer.seek(tp, offset)
            seen: set[tuple[str, int]] = set()
            while await consumer.position(tp) < end:
                batch = await consumer.getmany(tp, timeout_ms=1000)
                for record in batch.get(tp, []):
                    if record.offset >= end:
                        break
                    try:
                        event = event_decoder.decode(record.value or b"")
                        township_of(event.case_id)
                    except (msgspec.DecodeError, ValueError) as error:
                        # not written by a writer: the projection dead-letters it
                        log.warning("cases.events[%d]@%d is not a case event, left out: %s",
                                    partition.number, record.offset, error)
                        continue
                    source = _input_offset(record.headers)
                    if source < start:
                        folded += self._fold_logged(partition, event)
                    elif (event.case_id, event.seq) not in seen:
                        seen.add((event.case_id, event.seq))
                        partition.tail.setdefault(source, []).append(Logged(event, record.value))
                        kept += 1
                    if len(partition.changed) >= PERSIST_CASES and not partition.tail:
                        # a long log (a first start): what is folded goes to disk as it goes
                        partition.log_next, partition.input_next = record.offset + 1, start
                        partition.persist()
                await asyncio.sleep(0)
            return folded, kept, end
        finally:
            await consumer.stop()

    def _fold_logged(self, partition: Partition, event: CaseEvent) -> int:
        """Fold one event read back from the log (one seen already is skipped)."""
        state = partition.case(event.case_id)
        if state is not None and event.seq <= state.seq:
            return 0
        if (state is None) != isinstance(event, CaseOpened) or (
                state is not None and event.seq != state.seq + 1):
            log.error("case %s: event %d does not follow %s in the log; left out",
                      event.case_id, event.seq, state.seq if state else "nothing")
            metrics.LOG_GAPS.inc()
            return 0
        township = township_of(event.case_id)
        after = apply(state, event)
        partition.put(after, township,
                      evolve_township(partition.township(township), event, self.rules.triage))
        if self.on_case is not None and partition.ready.is_set():  # else the rebuild indexes it
            self.on_case(partition.number, event.case_id, after)
        return 1

    # -- taking inputs ---------------------------------------------------------------

    async def take(self, inputs: list[Input]) -> None:
        """Decide a window of inputs, in order, and send what they cause; returns once
        the broker has all of it (or raises :class:`~agents.producer.DeliveryFailed`)."""
        out = Outputs(self.producer.batches(), self.producer.batches())
        touched: dict[int, Partition] = {}
        self._unacknowledged = True  # until the broker has all of it: memory is ahead
        for item in inputs:
            partition = self.partitions.get(item.partition)
            if partition is None:
                raise RuntimeError(f"input {item.topic}[{item.partition}]@{item.offset} of a "
                                   "partition this worker does not own")
            await partition.ready.wait()
            if item.offset < partition.input_next:
                continue  # taken before: its outputs were all acknowledged
            missed = (await self._missed(partition, item.offset)
                      if item.offset > partition.input_next else [])
            for each in [*missed, item]:
                self._before(partition, each.offset)
                with tracing.span_for(_span_name(each), each.headers):
                    await self._take(partition, each, out)
                partition.input_next = each.offset + 1
            touched[partition.number] = partition
        self._account(await out.events.send())
        await out.others.send()
        self._unacknowledged = False
        sent_at = wall_clock()
        for ingested, departments in out.delivered:
            metrics.observe_department_messages(ingested, departments, sent_at)
        now = time.monotonic()
        for partition in touched.values():
            if (now - partition.persisted_at >= PERSIST_SECONDS
                    or len(partition.changed) >= PERSIST_CASES) and not partition.tail:
                partition.persist()

    async def _missed(self, partition: Partition, offset: int) -> list[Input]:
        """The inputs between the last one taken and ``offset``, which the consumer did not
        hand over (read directly; none if the broker no longer has them)."""
        log.warning("cases.commands[%d]: input %d handed over while %d is next; reading the "
                    "%d inputs between", partition.number, offset, partition.input_next,
                    offset - partition.input_next)
        metrics.INPUTS_MISSED.inc(offset - partition.input_next)
        consumer = clients.aio_consumer(self.settings, group_id=None,
                                        enable_auto_commit=False,
                                        client_id="gridlink-writer-gap")
        tp = TopicPartition(self.commands_topic, partition.number)
        found: list[Input] = []
        await consumer.start()
        try:
            consumer.assign([tp])
            start = max(partition.input_next, (await consumer.beginning_offsets([tp]))[tp])
            consumer.seek(tp, start)
            while start < offset and await consumer.position(tp) < offset:
                for record in (await consumer.getmany(tp, timeout_ms=1000)).get(tp, []):
                    if record.offset < offset:
                        found.append(Input(topic=record.topic, partition=record.partition,
                                           offset=record.offset, key=record.key,
                                           value=record.value or b"",
                                           timestamp_ms=record.timestamp,
                                           headers=tuple(record.headers or ())))
        finally:
            await consumer.stop()
        return found

    def _before(self, partition: Partition, offset: int) -> None:
        """Inputs of the log's tail that will not be taken again (their offsets were
        passed): their events are folded as the log has them."""
        if not partition.tail:
            return
        for source in sorted(s for s in partition.tail if s < offset):
            for logged in partition.tail.pop(source):
                self._fold_logged(partition, logged.event)

    async def _take(self, partition: Partition, item: Input, out: Outputs) -> None:
        unsigned = signing.problem(self.signing_key, item.key, item.value, item.headers)
        if unsigned is not None:  # not from GridLink's API or workers: never applied
            self._reject(item, out, *unsigned)
            return
        try:
            decoded = codecs.decode_input(item.value)
            if isinstance(decoded, LocatedEvent):
                township = decoded.partition_key
            else:
                if item.key is not None and item.key != decoded.case_id.encode():
                    raise ValueError(f"the record key {item.key!r} must be the case id "
                                     f"{decoded.case_id!r}")
                township = township_of(decoded.case_id)
        except msgspec.DecodeError as error:
            self._reject(item, out, "invalid_command",
                         f"neither a case command nor a located event: {error}")
            return
        except ValueError as error:
            self._reject(item, out, "invalid_command", str(error))
            return
        place = self.placement.of_township(township)
        if place != item.partition and self.signing_key is not None:
            # GridLink's API and workers place what they sign; a signed record elsewhere
            # was moved, or placed by something that holds the key and should not
            self._reject(item, out, "wrong_partition",
                         f"township {township}'s writer reads partition {place} of "
                         f"{self.commands_topic}, not {item.partition}")
            return
        if place != item.partition:  # an ordinary client's choice: to its writer
            out.others.add(self.commands_topic, place, item.key, item.value, item.headers,
                           timestamp_ms=item.timestamp_ms, what=f"forward to {township}")
            metrics.INPUTS_FORWARDED.inc()
            return
        try:
            if isinstance(decoded, LocatedEvent):
                outcome = handle_event(decoded, item.at, partition.township(township),
                                       partition.case, self.rules)
            else:
                outcome = handle_command(decoded, partition.case(decoded.case_id),
                                         partition.township(township), self.rules)
        except Exception as error:  # noqa: BLE001 — a poison input must not stop the partition
            log.exception("input %s[%d]@%d failed", item.topic, item.partition, item.offset)
            self._reject(item, out, "unexpected_error", f"{type(error).__name__}: {error}")
            return
        written = False
        if partition.tail:  # the log's tail has this input's events, or says it had none
            logged = partition.tail.pop(item.offset, [])
            if not _same(outcome.events, logged):
                outcome = self._as_logged(partition, township, decoded, outcome, logged)
            written = True
        self._apply(partition, township, decoded, outcome, out)
        headers = tracing.outgoing_headers() or []
        if outcome.events and not written:
            marked = [*headers, (INPUT_HEADER, str(item.offset).encode())]
            out.events.add_group(self.events_topic, partition.number, [
                (event.case_id.encode(), codecs.encode(event), marked)
                for event in outcome.events], what=outcome.events[0].case_id)
        self._send_consequences(outcome, out, headers, item)

    def _as_logged(self, partition: Partition, township: str, decoded: Any, outcome: Outcome,
                   logged: list[Logged]) -> Outcome:
        """The input decided otherwise than the log holds (the rules changed between a
        crash and the restart?): the log wins, and what it causes is derived from it."""
        events = [entry.event for entry in logged]
        log.error("partition %d: an input decided %d events where the log holds %d; the "
                  "log's are kept", partition.number, len(outcome.events), len(events))
        metrics.REDECIDED_DIFFERENTLY.inc()
        command = outcome.command if isinstance(decoded, LocatedEvent) else decoded
        if not events:
            reply = (CaseReply(case_id=decoded.case_id, command_id=decoded.command_id,
                               accepted=True) if outcome.reply is not None else None)
            return Outcome(reply=reply, command=command, decision=outcome.decision)
        before = partition.case(events[0].case_id)
        trail, memory = fold_case(before, partition.township(township), events, self.rules)
        state = trail[-1]
        departments, alerts, commands = (consequences(state, command, events)
                                         if command is not None else ([], [], []))
        reply = None
        if isinstance(decoded, Command) and outcome.reply is not None:
            reply = CaseReply(case_id=state.case_id, command_id=decoded.command_id,
                              accepted=True, seqs=tuple(e.seq for e in events),
                              status=state.status)
        return Outcome(events=events, case=state, trail=trail, township=memory,
                       departments=departments, alerts=alerts, commands=commands, reply=reply,
                       command=command, decision=outcome.decision)

    def _apply(self, partition: Partition, township: str, decoded: Any, outcome: Outcome,
               out: Outputs) -> None:
        """Keep the outcome's states and count what happened."""
        state = partition.case(outcome.events[0].case_id) if outcome.events else None
        for event, after in zip(outcome.events, outcome.trail, strict=True):
            metrics.observe_case_event(state, event, after)
            state = after
        partition.put(outcome.case, township, outcome.township)
        if outcome.events and self.on_case is not None:
            self.on_case(partition.number, outcome.events[0].case_id, outcome.case)
        if isinstance(decoded, LocatedEvent):
            decision = outcome.decision
            if decision is not None:
                log.debug("triage %s → %s %s", decision.event_id, decision.action,
                          decision.case_id, extra={"case_id": decision.case_id})
                metrics.child(metrics.TRIAGE_DECISIONS, decision.action).inc()
                if decision.action == "open" and decision.classification is not None:
                    metrics.child(metrics.CLASSIFICATIONS, decision.classification.category,
                                  decision.classification.rule.split(":")[0]).inc()
            if outcome.departments:
                out.delivered.append((decoded.ingested_at.timestamp(), outcome.departments))
        else:
            metrics.child(metrics.CASE_COMMANDS, decoded.__struct_config__.tag,
                          "rejected" if outcome.rejected else "applied").inc()

    def _send_consequences(self, outcome: Outcome, out: Outputs, headers: list[Header],
                           item: Input) -> None:
        case_key = (outcome.case.case_id.encode() if outcome.case is not None
                    else item.key)
        for department, payload in outcome.departments:
            encoded = codecs.encode(payload)
            # the department's queue, and its unit's where it is served per jurisdiction
            for name in registry.queue_topics(department, str(payload.get("region") or "")):
                out.others.add(self.settings.topic(name), 0, case_key, encoded, headers,
                               what=f"{department} {payload.get('case_id')}")
        for payload in outcome.alerts:
            out.others.add(self.alerts_topic, 0, case_key, codecs.encode(payload), headers,
                           what=f"alert {payload.get('case_id')}")
        for command in outcome.commands:
            key, value = command.case_id.encode(), codecs.encode(command)
            out.others.add(self.commands_topic, self.placement.of_case(command.case_id),
                           key, value, signing.signed(self.signing_key, key, value, headers),
                           what=f"command {command.command_id}")
        if outcome.reply is not None:
            reply = outcome.reply
            out.others.add(self.replies_topic, self.placement.of_case(reply.case_id),
                           reply.case_id.encode(), codecs.encode(reply), headers,
                           what=f"reply {reply.command_id}")

    def _reject(self, item: Input, out: Outputs, code: str, reason: str) -> None:
        """Dead-letter an input (its bytes, where it was, why) and go on."""
        add_dead_letter(out.others, self.dead_letter_topic, source=registry.CASE_COMMANDS,
                        topic=item.topic, partition=item.partition, offset=item.offset,
                        key=item.key, raw=item.value, received_at=item.at, code=code,
                        reason=reason)

    def _account(self, landed: list[tuple[str, int, Any, int]]) -> None:
        """Where the window's event batches landed: the log's next offset per partition.
        A batch that did not land where this writer expected it says that another
        writer appended meanwhile — a previous owner's last batch arriving late, which
        holds the same events, decided again."""
        for topic, number, metadata, records in landed:
            partition = self.partitions.get(number)
            if topic != self.events_topic or partition is None:
                continue
            if metadata.offset != partition.log_next:
                log.warning("cases.events[%d]: a batch landed at offset %d, not %d: %d records "
                            "were appended by another writer meanwhile", number,
                            metadata.offset, partition.log_next,
                            metadata.offset - partition.log_next)
                metrics.FOREIGN_RECORDS.inc(max(metadata.offset - partition.log_next, 0))
            partition.log_next = metadata.offset + records

    # -- reading --------------------------------------------------------------------

    def case(self, case_id: str) -> CaseState | None:
        """A case of a partition this worker owns, as it is now (None if unknown)."""
        partition = self.partitions.get(self.placement.of_case(case_id))
        return partition.case(case_id) if partition is not None else None


def _span_name(item: Input) -> str:
    """A located event is triaged; anything else is a command on a case."""
    return "triage" if item.key is not None and not item.key.startswith(b"C") else "case"


def _input_offset(headers: Iterable[tuple[str, bytes]] | None) -> int:
    for key, value in headers or ():
        if key == INPUT_HEADER:
            try:
                return int(value)
            except ValueError:
                return -1
    return -1


def _same(events: list[CaseEvent], logged: list[Logged]) -> bool:
    return (len(events) == len(logged)
            and all(codecs.encode(e) == entry.raw
                    for e, entry in zip(events, logged, strict=True)))
