"""One input of a township's writer → one outcome (核实立案 → 考核评价, co-located).

A worker owns whole townships: their correlation state (triage) and their cases
(the case engine), in one partition. Every input it takes is either an event to
triage or a command on one of its cases, and is handled here by a pure
function that returns everything the input causes (:class:`Outcome`): the case
events to append to the log — the one thing that is written atomically — and
what they mean for everyone else, derived from them: department messages,
alerts, commands for other cases (merge, split, forward) and the reply.

Decisions take their time from the input (``at``: the input record's time, or
the command's own), never from a clock, so handling the same input against the
same state again yields the same events, byte for byte: that is what lets a
writer that crashed take its inputs again and find what it had already
written.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from streams.calendar import WorkCalendar
from streams.cases import (
    CaseEvent,
    CasePolicy,
    CaseState,
    Command,
    alert_messages,
    apply,
    compensations,
    decide_applied,
    department_messages,
    follow_ups,
)
from streams.cases.commands import FireDeadline
from streams.cases.messages import Payload
from streams.cases.replies import CaseReply
from streams.correlate import TownshipState, forget_case
from streams.errors import TransitionRejected
from streams.opening import case_command
from streams.records import LocatedEvent
from streams.township import decided_at, evolve
from streams.triage import TriageDecision, decide_triage
from streams.triage_rules import TriageRules

#: how many cases an event may be turned away from before it opens its own
MAX_REJOINS = 3


@dataclass(frozen=True)
class Rules:
    """Everything a writer decides by: triage's rules, the case policy, the calendar."""

    triage: TriageRules
    policy: CasePolicy
    calendar: WorkCalendar


@dataclass
class Outcome:
    """What one input causes. ``events`` belong to one case (``case`` after them)."""

    events: list[CaseEvent] = field(default_factory=list)
    case: CaseState | None = None  # the case the input concerned, after its events
    trail: list[CaseState] = field(default_factory=list)  # the case after each event
    township: TownshipState | None = None  # the case's township after the events
    departments: list[tuple[str, Payload]] = field(default_factory=list)
    alerts: list[Payload] = field(default_factory=list)
    commands: list[Command] = field(default_factory=list)  # for other cases
    reply: CaseReply | None = None
    decision: TriageDecision | None = None  # triage's decision, for an event
    command: Command | None = None  # the case command decided
    rejected: str | None = None  # the engine's reason, when it refused the command


def handle_event(
    located: LocatedEvent,
    at: datetime,
    township: TownshipState,
    case_of: Callable[[str], CaseState | None],
    rules: Rules,
) -> Outcome:
    """Triage one located event against its township's state and apply what triage
    decided (open a case, or join, or fold a repeated alarm into one) at once."""
    now = decided_at(at, located.event.occurred_at)
    memory = township
    for _ in range(MAX_REJOINS + 1):
        decision = decide_triage(located.event, located.location, memory, rules.triage, now)
        command = case_command(decision, located, at)
        if command is None:  # already handled: a redelivered message
            return Outcome(township=township, decision=decision)
        state = case_of(command.case_id)
        try:
            events, trail = decide_applied(state, command, rules.policy, rules.calendar, at)
        except TransitionRejected:
            # The case can take no more events. The township's state follows the log,
            # so triage does not pick such a case; should it, the event is not lost:
            # it is decided again without that case.
            memory = forget_case(memory, command.case_id)
            continue
        outcome = _applied(state, command, events, trail, township, rules)
        outcome.decision = decision
        return outcome
    raise TransitionRejected(f"event {located.event.event_id}: no case would take it")


def handle_command(
    command: Command, state: CaseState | None, township: TownshipState, rules: Rules
) -> Outcome:
    """Apply one command to its case: its events and consequences, or the engine's
    refusal (and what undoes another case's part of it, for a refused merge)."""
    try:
        events, trail = decide_applied(state, command, rules.policy, rules.calendar, command.at)
    except TransitionRejected as refused:
        return Outcome(
            case=state,
            township=township,
            commands=compensations(command, refused.reason),
            reply=_reply(command, state, accepted=False, reason=refused.reason),
            command=command,
            rejected=refused.reason,
        )
    outcome = _applied(state, command, events, trail, township, rules)
    outcome.reply = _reply(command, outcome.case, events=events)
    return outcome


def consequences(
    state: CaseState | None, command: Command, events: list[CaseEvent]
) -> tuple[list[tuple[str, Payload]], list[Payload], list[Command]]:
    """What ``events`` (already applied: ``state`` is the case after them) mean for
    departments, the command center and other cases."""
    if not events or state is None:
        return [], [], []
    return (department_messages(state, events), alert_messages(state, events),
            follow_ups(state, command, events))


def fold(
    state: CaseState | None,
    township: TownshipState,
    events: list[CaseEvent],
    rules: Rules,
) -> tuple[list[CaseState], TownshipState]:
    """A case after each of ``events`` (as written in the log), and its township after
    them all."""
    trail: list[CaseState] = []
    for event in events:
        state = apply(state, event)
        trail.append(state)
        township = evolve(township, event, rules.triage)
    return trail, township


def _applied(
    state: CaseState | None,
    command: Command,
    events: list[CaseEvent],
    trail: list[CaseState],
    township: TownshipState,
    rules: Rules,
) -> Outcome:
    for event in events:
        township = evolve(township, event, rules.triage)
    after = trail[-1] if trail else state
    departments, alerts, commands = consequences(after, command, events)
    return Outcome(events=events, case=after, trail=trail, township=township,
                   departments=departments, alerts=alerts, commands=commands, command=command)


def _reply(command: Command, state: CaseState | None, *, accepted: bool = True,
           reason: str = "", events: list[CaseEvent] | None = None) -> CaseReply | None:
    """The answer, for every command someone may wait for (not a timer's fire)."""
    if isinstance(command, FireDeadline):
        return None
    return CaseReply(case_id=command.case_id, command_id=command.command_id,
                     accepted=accepted, reason=reason,
                     seqs=tuple(e.seq for e in events or ()),
                     status=state.status if state is not None else None)
