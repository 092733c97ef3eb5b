"""The co-located writer's pure core (streams/handlers.py, streams/township.py): one
input, one outcome; decisions the same as triage made them before; the township's
memory and every case a fold of the log; the same input decided again, the same
events byte for byte; every valid event in exactly one case."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache

import msgspec
from aiokafka.partitioner import DefaultPartitioner

from streams.calendar import load_calendar
from streams.cases import CaseEvent, CaseState, apply, load_case_policy
from streams.cases import commands as C
from streams.cases import events as E
from streams.correlate import TownshipState, state_key
from streams.errors import GridLinkError
from streams.handlers import Outcome, Rules, handle_command, handle_event
from streams.locate import locate
from streams.records import LocatedEvent
from streams.township import decided_at, evolve, township_of
from streams.triage import triage
from tests.conftest import PROJECT_DIR
from tests.unit.test_simulation import CITY, MAX_DISTANCE_M, PARSER_OF, RULES, START, make
from topics import codecs
from topics.placement import case_partition, writer_partition

WRITER_RULES = Rules(triage=RULES, policy=load_case_policy(PROJECT_DIR / "rules"),
                     calendar=load_calendar(PROJECT_DIR / "rules"))


@dataclass
class Taken:
    located: LocatedEvent
    at: datetime
    outcome: Outcome


@dataclass
class Writer:
    """The pure part of a township writer: its cases and townships, in memory."""

    cases: dict[str, CaseState] = field(default_factory=dict)
    townships: dict[str, TownshipState] = field(default_factory=dict)
    log: list[CaseEvent] = field(default_factory=list)

    def take(self, located: LocatedEvent, at: datetime) -> Outcome:
        township = located.partition_key
        outcome = handle_event(located, at, self.townships.get(township, TownshipState()),
                               self.cases.get, WRITER_RULES)
        self.keep(township, outcome)
        return outcome

    def command(self, command: C.Command) -> Outcome:
        township = township_of(command.case_id)
        outcome = handle_command(command, self.cases.get(command.case_id),
                                 self.townships.get(township, TownshipState()), WRITER_RULES)
        self.keep(township, outcome)
        return outcome

    def keep(self, township: str, outcome: Outcome) -> None:
        if outcome.case is not None:
            self.cases[outcome.case.case_id] = outcome.case
        if outcome.township is not None:
            self.townships[township] = outcome.township
        self.log.extend(outcome.events)


def located_stream(count: int, **options: object) -> list[tuple[LocatedEvent, datetime]]:
    """Simulated traffic, parsed and located, each with the time a writer takes it."""
    out = []
    for message in make(count, **options):
        try:
            event = PARSER_OF[message.topic](message.value)
            location = locate(event, CITY, max_distance_m=MAX_DISTANCE_M)
        except GridLinkError:
            continue
        at = START + timedelta(seconds=message.sent_offset_s)
        out.append((LocatedEvent(event=event, location=location, ingested_at=at), at))
    return out


@cache
def busy() -> tuple[tuple[LocatedEvent, datetime], ...]:
    return tuple(located_stream(3000, seed=21, rate=20.0, malformed=0.03, duplicates=0.03))


@cache
def busy_writer() -> tuple[Writer, tuple[Taken, ...]]:
    writer = Writer()
    taken = tuple(Taken(located, at, writer.take(located, at)) for located, at in busy())
    return writer, taken


def test_the_writer_decides_as_triage_did_with_its_own_state() -> None:
    """Same actions, same cases, same categories and priorities as triage with the state it
    kept beside the log — the case ids the simulator's outcome file was written for."""
    states: dict[str, TownshipState] = {}
    _, taken = busy_writer()
    for item in taken:
        event, location = item.located.event, item.located.location
        key = state_key(location)
        before, states[key] = triage(event, location, states.get(key, TownshipState()), RULES,
                                     decided_at(item.at, event.occurred_at))
        after = item.outcome.decision
        assert after is not None
        assert (after.action, after.case_id, after.classification, after.priority) == (
            before.action, before.case_id, before.classification, before.priority), event
    actions = {item.outcome.decision.action for item in taken if item.outcome.decision}
    assert {"open", "join", "repeat", "duplicate"} <= actions


def test_every_valid_event_is_in_exactly_one_case() -> None:
    writer, taken = busy_writer()
    recorded: dict[str, str] = {}
    for event in writer.log:
        if isinstance(event, E.CaseOpened | E.EventLinked | E.AlarmRepeated):
            assert event.event.event_id not in recorded, event.event.event_id
            recorded[event.event.event_id] = event.case_id
    valid = {item.located.event.event_id for item in taken}
    assert set(recorded) == valid
    repeats = [e for e in writer.log if isinstance(e, E.AlarmRepeated)]
    assert repeats and all(writer.cases[e.case_id].repeats >= 1 for e in repeats)


def test_cases_and_townships_are_the_fold_of_the_log() -> None:
    writer, _ = busy_writer()
    cases: dict[str, CaseState] = {}
    townships: dict[str, TownshipState] = {}
    for event in writer.log:
        cases[event.case_id] = apply(cases.get(event.case_id), event)
        township = township_of(event.case_id)
        townships[township] = evolve(townships.get(township, TownshipState()), event, RULES)
    assert cases == writer.cases
    assert townships == writer.townships
    for case_id in cases:  # the seqs of every case run 1, 2, 3 …
        seqs = [e.seq for e in writer.log if e.case_id == case_id]
        assert seqs == list(range(1, len(seqs) + 1))


def test_an_input_decided_again_on_the_same_state_gives_the_same_bytes() -> None:
    writer = Writer()
    for located, at in busy()[:600]:
        township = located.partition_key
        memory = writer.townships.get(township, TownshipState())
        first = handle_event(located, at, memory, writer.cases.get, WRITER_RULES)
        again = handle_event(located, at, memory, writer.cases.get, WRITER_RULES)
        assert [codecs.encode(e) for e in first.events] == [codecs.encode(e) for e in again.events]
        assert [codecs.encode(m) for _, m in first.departments] == [
            codecs.encode(m) for _, m in again.departments]
        writer.keep(township, first)


def _joinable(writer: Writer) -> tuple[LocatedEvent, datetime, CaseState]:
    """The first event of the busy traffic that opens a case later events may join."""
    for located, at in busy():
        if not located.location.grid_code:
            continue
        outcome = Writer().take(located, at)
        if outcome.township is not None and outcome.township.open_cases:
            opened = writer.take(located, at).case
            assert opened is not None
            return located, at, opened
    raise AssertionError("no joinable case in the traffic")


def test_a_closed_case_is_forgotten_and_a_later_event_opens_another() -> None:
    writer = Writer()
    located, at, opened = _joinable(writer)
    closed = msgspec.structs.replace(opened, status="closed")
    ending = E.CaseClosed(case_id=opened.case_id, seq=opened.seq + 1, at=at, actor="op",
                          note="done")
    writer.townships[located.partition_key] = evolve(
        writer.townships[located.partition_key], ending, RULES)
    assert not writer.townships[located.partition_key].open_cases
    writer.cases[opened.case_id] = closed
    later = msgspec.structs.replace(located.event, event_id=located.event.event_id + "-2",
                                    source_id=located.event.source_id + "-2")
    outcome = writer.take(msgspec.structs.replace(located, event=later), at + timedelta(minutes=1))
    assert outcome.decision is not None and outcome.decision.action == "open"
    assert outcome.case is not None and outcome.case.case_id != opened.case_id


def test_an_event_a_case_refuses_opens_its_own_case() -> None:
    """Were the township's memory to name a case that can take no event, the event is not
    lost: it is decided again without that case."""
    writer = Writer()
    located, at, opened = _joinable(writer)
    writer.cases[opened.case_id] = msgspec.structs.replace(opened, status="evaluated")
    later = msgspec.structs.replace(located.event, event_id=located.event.event_id + "-2",
                                    source_id=located.event.source_id + "-2")
    outcome = writer.take(msgspec.structs.replace(located, event=later), at + timedelta(minutes=1))
    assert outcome.events and isinstance(outcome.events[0], E.CaseOpened)
    assert outcome.case is not None and outcome.case.case_id != opened.case_id


def test_a_refused_command_answers_with_the_reason_and_changes_nothing() -> None:
    writer, _ = busy_writer()
    case_id = next(iter(writer.cases))
    refused = writer.command(C.Close(case_id=case_id, command_id="close-1", actor="op:a",
                                     at=START + timedelta(hours=1)))
    assert refused.events == [] and refused.rejected
    assert refused.reply is not None and not refused.reply.accepted
    assert refused.reply.reason == refused.rejected


def test_a_fire_is_answered_by_no_one() -> None:
    writer, _ = busy_writer()
    state = next(s for s in writer.cases.values() if s.clocks)
    clock = state.clocks[0]
    fire = C.FireDeadline(case_id=state.case_id, command_id="fire-x", actor="system:sla",
                          at=clock.next_at() or START, deadline_id=clock.id, kind="yellow",
                          step=clock.step, due=clock.next_at() or START)
    assert writer.command(fire).reply is None


def test_a_township_and_its_cases_have_one_writer_partition() -> None:
    default = DefaultPartitioner()
    for partitions in (1, 2, 4, 8, 12):
        every = list(range(partitions))
        for township in ("371502004", "371502101", "371503", "371502004003"):
            expected = default(township.encode(), every, every)  # as Java's client places it
            assert writer_partition(township, partitions) == expected
            for case_id in (f"C20261126-{township}-1a2b3c4d", f"C20261126-{township}-1a2b3c4d-S2"):
                assert case_partition(case_id, partitions) == expected

