"""``decide(state, command, policy, calendar, now) -> events``: the case state machine.

Steps 3–6 of the closed loop (分流交办 → 跟踪处理 → 事件反馈 → 考核评价) as one
pure function. It raises :class:`TransitionRejected` with a reason a person can
act on when the command does not fit the case; a command whose id the case has
seen recently, or a timer that is stale or already fired, yields no events.
Each event is applied as it is emitted, so later events of one command see the
effect of earlier ones and the returned list folds to the new state.

Merge and split (合并 / 拆分) concern two cases; each decides only its own part,
and the other part reaches the other case as a follow-up command (see the
section "merge and split" below, and :mod:`streams.cases.follow_ups`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec
from msgspec.structs import replace

from streams.calendar import WorkCalendar
from streams.cases import commands as cmd
from streams.cases import events as ev
from streams.cases.evolve import apply, command_hash
from streams.cases.state import FINAL, WORKING, Assignment, AssignmentStatus, CaseState, CaseStatus
from streams.errors import TransitionRejected
from streams.escalation import (
    EscalationPolicy,
    EscalationTerms,
    escalation_terms,
    fan_out,
    ladder_for,
    level_up,
    load_escalation_policy,
    raise_priority,
    region_at,
    ruling_region,
    takeover_after,
)
from streams.jurisdiction import level_of
from streams.records import PROVISIONAL, Classification, Level, Priority, Role, Routing
from streams.sla import (
    Budget,
    Clock,
    SlaPolicy,
    Stage,
    Step,
    Terms,
    clock_add,
    clock_elapsed,
    extend_clock,
    extension_limit,
    is_rural,
    load_sla_policy,
    pause_clock,
    resume_clock,
    start_clock,
    terms_for,
)
from streams.zone import TZ

DAY = 86_400


class CasePolicy(msgspec.Struct, frozen=True, kw_only=True):
    """The rules the machine reads: the SLA table and the escalation rules."""

    sla: SlaPolicy
    escalation: EscalationPolicy


def load_case_policy(rules_dir: Path | str) -> CasePolicy:
    return CasePolicy(sla=load_sla_policy(rules_dir), escalation=load_escalation_policy(rules_dir))


def when(moment: datetime) -> str:
    """``2026-10-09 16:00+08:00`` — instants in reasons, local time."""
    return moment.astimezone(TZ).isoformat(sep=" ", timespec="minutes")


class _Ctx:
    """One decision in progress: emits events and applies them as it goes."""

    def __init__(
        self,
        state: CaseState | None,
        command: cmd.Command,
        policy: CasePolicy,
        calendar: WorkCalendar,
        now: datetime,
    ) -> None:
        self.current = state  # None only while deciding OpenCase, before its first event
        self.command = command
        self.policy = policy
        self.calendar = calendar
        self.now = now
        self.events: list[ev.CaseEvent] = []
        self.trail: list[CaseState] = []  # the case after each event

    @property
    def state(self) -> CaseState:
        """The case as the events emitted so far leave it; a case that exists."""
        assert self.current is not None
        return self.current

    def emit(self, kind: type[ev.CaseEvent], **fields: Any) -> None:
        event = kind(
            case_id=self.command.case_id,
            seq=(self.current.seq if self.current else 0) + 1,
            at=self.now,
            actor=self.command.actor,
            command_id=self.command.command_id,
            **fields,
        )
        self.current = apply(self.current, event)
        self.events.append(event)
        self.trail.append(self.current)

    def clock(
        self,
        step: Step,
        budget: Budget,
        assignment: str = "",
        *,
        start: datetime | None = None,
        terms: Terms | None = None,
        esc: EscalationTerms | None = None,
        takeover: bool = True,
    ) -> Clock:
        """A new clock on the case's frozen terms; born paused while suspended.
        ``takeover``: whether lateness may hand coordination up (吹哨) — the lead's
        steps only; a late support gets red cards and supervision."""
        terms = terms or self.state.terms
        esc = esc or self.state.esc
        clock = start_clock(
            self.calendar,
            step=step,
            start=start or self.now,
            budget=budget,
            yellow_at=None if step is Step.LADDER else terms.yellow_at,
            over_after=takeover_after(esc, step, budget)
            if takeover and step is not Step.LADDER
            else None,
            assignment=assignment,
        )
        if self.current is not None and self.current.suspended_at is not None:
            clock = pause_clock(clock, self.now)
        return clock


def _reject(reason: str) -> TransitionRejected:
    return TransitionRejected(reason)


# -- the entry point -------------------------------------------------------------------

_ANY_OPEN = frozenset(CaseStatus) - FINAL
_ALLOWED: dict[type, frozenset[CaseStatus]] = {
    # a merged case forwards it
    cmd.LinkEvent: _ANY_OPEN - {CaseStatus.CLOSED} | {CaseStatus.MERGED},
    cmd.Register: frozenset({CaseStatus.VERIFYING}),
    cmd.Reject: frozenset({CaseStatus.VERIFYING}),
    cmd.AbsorbCase: _ANY_OPEN - {CaseStatus.CLOSED},
    # merged into the same case: a repeat
    cmd.MarkMerged: _ANY_OPEN - {CaseStatus.CLOSED} | {CaseStatus.MERGED},
    cmd.ReleaseCase: frozenset(CaseStatus),  # the compensation applies whatever became of the case
    cmd.SplitCase: _ANY_OPEN - {CaseStatus.CLOSED},
    cmd.Dispatch: frozenset({CaseStatus.REGISTERED}),
    cmd.Reroute: WORKING,
    cmd.Rule: frozenset({CaseStatus.RETURNED}),
    cmd.Claim: WORKING,
    cmd.Return: WORKING,
    cmd.Progress: WORKING,
    cmd.ReportOnSite: WORKING,
    cmd.RequestExtension: WORKING,
    cmd.ApproveExtension: WORKING,
    cmd.Suspend: WORKING,
    cmd.Resume: WORKING,
    cmd.Handle: WORKING,
    cmd.SupportDone: WORKING | {CaseStatus.HANDLED},
    cmd.Check: frozenset({CaseStatus.HANDLED}),
    cmd.Close: frozenset({CaseStatus.CHECKING}),
    cmd.Rework: frozenset({CaseStatus.CHECKING}),
    cmd.Evaluate: frozenset({CaseStatus.CLOSED}),
    cmd.Supervise: _ANY_OPEN,
    cmd.Escalate: _ANY_OPEN - {CaseStatus.CLOSED},
    cmd.Deescalate: _ANY_OPEN - {CaseStatus.CLOSED},
}


def allowed(command: type[cmd.Command], status: CaseStatus) -> bool:
    """Whether the engine takes a ``command`` on a case in ``status`` at all (it may still
    refuse one for the case's particulars, with its reason)."""
    return status in _ALLOWED.get(command, frozenset())


#: what an operator may do to a case dispatched while it awaits verification (核实)
_VERIFYING = frozenset({cmd.Register, cmd.Reject})


def decide(
    state: CaseState | None,
    command: cmd.Command,
    policy: CasePolicy,
    calendar: WorkCalendar,
    now: datetime,
) -> list[ev.CaseEvent]:
    """The events ``command`` causes on the case; raises :class:`TransitionRejected`."""
    return decide_applied(state, command, policy, calendar, now)[0]


def decide_applied(
    state: CaseState | None,
    command: cmd.Command,
    policy: CasePolicy,
    calendar: WorkCalendar,
    now: datetime,
) -> tuple[list[ev.CaseEvent], list[CaseState]]:
    """:func:`decide`, and the case after each of the events (their fold, as it went)."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if state is not None:
        if command.case_id != state.case_id:
            raise _reject(f"command for case {command.case_id} sent to case {state.case_id}")
        if command_hash(command.command_id) in state.recent:
            return [], []
    ctx = _Ctx(state, command, policy, calendar, now)
    if isinstance(command, cmd.FireDeadline):
        _fire(ctx, command)
        return ctx.events, ctx.trail
    if state is None:
        if not isinstance(command, cmd.OpenCase):
            raise _reject(f"case {command.case_id} does not exist")
        _open(ctx, command)
        return ctx.events, ctx.trail
    if isinstance(command, cmd.OpenCase):
        raise _reject(f"case {state.case_id} is already open")
    allowed = _ALLOWED[type(command)]
    verifying = state.verifying and state.status not in FINAL
    if state.status not in allowed and not (verifying and type(command) in _VERIFYING):
        name = type(command).__name__
        if state.merged_into is not None:
            raise _reject(
                f"case {state.case_id} was merged into case {state.merged_into} (final): "
                f"{name} is not allowed; act on case {state.merged_into}"
            )
        if state.status in FINAL:
            raise _reject(f"case {state.case_id} is {state.status} (final): {name} is not allowed")
        raise _reject(
            f"{name} is not allowed while case {state.case_id} is {state.status} "
            f"(allowed when {', '.join(sorted(allowed))})"
        )
    _DECIDE[type(command)](ctx, command)
    return ctx.events, ctx.trail


# -- step 2: open, link, verify --------------------------------------------------------


def _open(ctx: _Ctx, command: cmd.OpenCase) -> None:
    esc_policy = ctx.policy.escalation
    category = command.classification.category
    # triage set the priority, already raised for a recurring grid and category
    priority, reasons = command.priority.priority, command.priority.reasons
    hot = command.hot_spot or bool(
        esc_policy.recurrence_count and command.recurrences + 1 >= esc_policy.recurrence_count
    )
    # triage chose the entry level (by source, one up for weapons …); never deeper than we know
    level = Level(min(command.routing.entry_level, command.location.level))
    terms = terms_for(
        ctx.policy.sla, priority, category, rural=is_rural(command.location.region_code)
    )
    esc = escalation_terms(esc_policy, priority)
    ladder = ladder_for(
        esc_policy, level=level, category=category, priority=priority, persons=command.event.persons
    )
    clocks: tuple[Clock, ...] = ()
    if ladder and not command.closed_at_grid:
        clocks = (ctx.clock(Step.LADDER, ladder[0].stay, terms=terms, esc=esc),)
    verifying = (
        command.needs_verification and not command.closed_at_grid and command.routing.dispatch
    )
    if verifying and terms.verify is not None:  # 核实 has its own clock (docs/domain.md §4)
        clocks += (ctx.clock(Step.VERIFY, terms.verify, terms=terms, esc=esc),)
    ctx.emit(
        ev.CaseOpened,
        event=command.event,
        location=command.location,
        classification=command.classification,
        priority=priority,
        priority_reasons=reasons,
        routing=command.routing,
        level=level,
        needs_verification=verifying,
        hot_spot=hot,
        terms=terms,
        escalation_terms=esc,
        ladder=ladder,
        fan_out=fan_out(esc_policy, priority, category, command.location.region_code),
        clocks=clocks,
        split_from=command.split_from,
    )
    for more in command.more_events:  # a case split off another opens with all its events
        if more.event_id not in ctx.state.event_ids:
            ctx.emit(ev.EventLinked, event=more)
    if command.closed_at_grid:
        ctx.emit(ev.CaseRegistered, note="就地化解 settled at the grid")
        ctx.emit(ev.CaseClosed, note="self-resolved at the grid", self_resolved=True)
    elif not command.routing.dispatch:
        ctx.emit(
            ev.CaseRegistered, note=f"recorded, not dispatched ({command.routing.disposition})"
        )
        ctx.emit(ev.CaseClosed, note=f"recorded only: {command.routing.disposition}")
    elif not verifying:
        ctx.emit(ev.CaseRegistered)
        _dispatch(ctx, command.routing)
    elif command.routing.disposition == PROVISIONAL:  # a P1 of unknown category: dispatched at once
        _dispatch(ctx, command.routing)


def _link(ctx: _Ctx, command: cmd.LinkEvent) -> None:
    if command.event.event_id in ctx.state.event_ids:
        return
    if ctx.state.merged_into is not None:  # triage still saw this case open: pass it on
        ctx.emit(
            ev.EventForwarded,
            event=command.event,
            into=ctx.state.merged_into,
            priority=command.priority,
        )
        return
    judged = command.priority.priority if command.priority is not None else None
    if command.repeat:  # the same camera alarming again: recorded, folded, no new event of the case
        ctx.emit(ev.AlarmRepeated, event=command.event, event_priority=judged)
        return
    ctx.emit(ev.EventLinked, event=command.event, event_priority=judged)
    if command.priority is not None and command.priority.priority < ctx.state.priority:
        why = ", ".join(command.priority.reasons) or "linked event"
        _change_priority(
            ctx, command.priority.priority, f"raised by {command.event.event_id}: {why}"
        )


def _change_priority(ctx: _Ctx, new: Priority, reason: str, *, hot_spot: bool = False) -> None:
    state = ctx.state
    if new == state.priority and (state.hot_spot or not hot_spot):
        return
    terms = terms_for(ctx.policy.sla, new, state.category, rural=is_rural(state.region))
    esc = escalation_terms(ctx.policy.escalation, new)
    clocks = tuple(
        _reclock(ctx, clock, terms, esc) for clock in state.clocks if clock.step is not Step.LADDER
    )
    serious = ctx.policy.escalation.fan_out_priorities
    fan = None  # notify the command centers once, when the case first becomes serious
    if new in serious and state.priority not in serious:
        fan = fan_out(ctx.policy.escalation, new, state.category, state.region)
    ctx.emit(
        ev.PriorityChanged,
        old=state.priority,
        new=new,
        reason=reason,
        hot_spot=hot_spot,
        terms=terms,
        escalation_terms=esc,
        fan_out=fan,
        clocks=clocks,
    )


def _reclock(ctx: _Ctx, clock: Clock, terms: Terms, esc: EscalationTerms) -> Clock:
    """The clock recomputed from its start on new budgets (a priority change)."""
    budget = terms.budget(clock.step)
    if budget is None:
        return clock
    assignment = ctx.state.assignment(clock.assignment)
    lead = assignment is None or assignment.role is Role.LEAD
    new = ctx.clock(
        clock.step, budget, clock.assignment, start=clock.start, terms=terms, esc=esc, takeover=lead
    )
    fired = clock.fired
    for stage, at in ((Stage.YELLOW, new.warn), (Stage.RED, new.due), (Stage.OVER, new.over)):
        if at is not None and at > ctx.now:
            fired &= ~stage
    return replace(new, fired=fired, paused=clock.paused, extended=clock.extended)


def _register(ctx: _Ctx, command: cmd.Register) -> None:
    state = ctx.state
    ctx.emit(
        ev.CaseRegistered,
        note=command.note,
        classification=command.classification,
        routing=command.routing,
        terms=_terms_for_category(ctx, command.classification),
        cleared=_verify_clock(state),
    )
    if command.priority is not None and command.priority != state.priority:
        _change_priority(ctx, command.priority, f"set at registration by {command.actor}")
    if state.assignments:  # dispatched at once while verifying: a corrected routing replaces it
        if command.routing is not None and command.dispatch:
            _cancel_all(ctx, f"registered by {command.actor} with a corrected routing")
            _dispatch(ctx, command.routing)
        return
    routing = ctx.state.routing
    if command.dispatch and routing is not None:
        _dispatch(ctx, routing)


def _terms_for_category(ctx: _Ctx, classification: Classification | None) -> Terms | None:
    """The case's terms re-frozen for a corrected category (None: unchanged)."""
    state = ctx.state
    if classification is None or classification.category == state.category:
        return None
    return terms_for(
        ctx.policy.sla, state.priority, classification.category, rural=is_rural(state.region)
    )


def _verify_clock(state: CaseState) -> tuple[str, ...]:
    """The verification clock, to clear when an operator has verified the case."""
    return tuple(k.id for k in state.clocks if k.step is Step.VERIFY)


def _reject_case(ctx: _Ctx, command: cmd.Reject) -> None:
    if not command.reason.strip():
        raise _reject("rejecting a case (不予立案) needs a reason")
    if ctx.state.assignments:  # dispatched at once while verifying
        _cancel_all(ctx, f"not registered (不予立案): {command.reason}")
    ctx.emit(ev.CaseRejected, reason=command.reason, cleared=tuple(k.id for k in ctx.state.clocks))


# -- merge and split (合并 / 拆分) ----------------------------------------------------------
#
# Merging case B into case A takes up to three commands, each decided by the one
# writer of its own case; the engine sends the next one (streams.cases.follow_ups):
#
# 1. ``AbsorbCase`` on A (from the operator) — A refuses if it is B, is closed or
#    final, already absorbed B, or already holds one of the events; otherwise
#    ``CaseAbsorbed`` links B's events to A (and may raise A's priority).
# 2. ``MarkMerged`` on B — B refuses if it is closed or final (merged elsewhere),
#    or if A did not take exactly B's events (one linked to B meanwhile: merge
#    again); otherwise its open assignments are cancelled (the departments get the
#    usual "cancelled" message), its clocks stop and ``CaseMerged`` ends it.
# 3. ``ReleaseCase`` on A, only when B refused — ``AbsorbReleased`` gives the
#    events back, so each event ends up in exactly one live case either way.
#
# The target goes first because taking events is undone by a plain release,
# while ending B (cancelled assignments, stopped clocks) cannot be undone: so no
# outcome drops an event or leaves B half-merged. Every step is idempotent: a
# redelivered command is a repeat id; ``MarkMerged`` on a case already merged into
# the same target is a no-op (so it never triggers a release); a release of a case
# not absorbed is a no-op. Later events triage still links to B are forwarded to A
# (``EventForwarded``), and on from A if A was merged in turn; one reaching a closed
# case is refused there, as any event joining a closed case. A priority the absorb
# raised stays raised after a release. Known limit: should A itself be merged or
# split within the instant between taking B's events and B's refusal, the events
# A passed on stay where they went (and with B).
#
# Splitting is one command on A (``SplitCase``) and one the engine sends:
# ``EventsSplit`` moves the events out of A and names the new case
# ``<A>-S<n>`` (A's own counter: no other writer can take that id), which is
# then opened by ``OpenCase`` with those events.


def split_case_id(state: CaseState) -> str:
    """The id of the next case split off ``state``: ``C…-S1``, ``C…-S2`` …"""
    return f"{state.case_id}-S{state.splits + 1}"


def _ids(ids: list[str] | tuple[str, ...], most: int = 10) -> str:
    shown = ", ".join(ids[:most])
    return shown + (f" and {len(ids) - most} more" if len(ids) > most else "")


def _absorb(ctx: _Ctx, command: cmd.AbsorbCase) -> None:
    state = ctx.state
    if command.source == state.case_id:
        raise _reject(f"case {state.case_id} cannot be merged into itself")
    if command.source in state.absorbed:
        raise _reject(f"case {command.source} is already merged into case {state.case_id}")
    if not command.reason.strip():
        raise _reject("merging (合并) needs a reason")
    ids = tuple(dict.fromkeys(command.event_ids))
    if not ids:
        raise _reject(f"case {command.source} has no events to merge")
    held = [i for i in ids if i in state.event_ids]
    if held:
        raise _reject(f"case {state.case_id} already holds event(s) {_ids(held)}")
    ctx.emit(ev.CaseAbsorbed, source=command.source, event_ids=ids, reason=command.reason)
    if command.priority is not None and command.priority < ctx.state.priority:
        _change_priority(ctx, command.priority, f"raised by merging case {command.source}")


def _mark_merged(ctx: _Ctx, command: cmd.MarkMerged) -> None:
    state = ctx.state
    if state.merged_into is not None:
        if state.merged_into == command.into:
            return  # already merged there: nothing to do, nothing to release
        raise _reject(f"case {state.case_id} was already merged into case {state.merged_into}")
    if command.into == state.case_id:
        raise _reject(f"case {state.case_id} cannot be merged into itself")
    taken = set(command.event_ids)
    missing = [i for i in state.event_ids if i not in taken]
    if missing:
        raise _reject(
            f"case {state.case_id} has event(s) the merge did not include ({_ids(missing)}): "
            "merge it again"
        )
    foreign = [i for i in dict.fromkeys(command.event_ids) if i not in state.event_ids]
    if foreign:
        raise _reject(f"event(s) {_ids(foreign)} are not case {state.case_id}'s")
    why = f"merged into case {command.into}"
    for a in state.assignments:
        if a.status not in (AssignmentStatus.HANDLED, AssignmentStatus.RETURNED):
            ctx.emit(
                ev.AssignmentCancelled,
                assignment_id=a.id,
                department=a.department,
                reason=why,
                cleared=_clock_ids(ctx.state, a.id),
            )
    ctx.emit(
        ev.CaseMerged,
        into=command.into,
        event_ids=ctx.state.event_ids,
        reason=command.reason,
        cleared=tuple(k.id for k in ctx.state.clocks),
    )


def _release(ctx: _Ctx, command: cmd.ReleaseCase) -> None:
    state = ctx.state
    if command.source not in state.absorbed:
        return  # never taken, or given back already
    ids = tuple(i for i in dict.fromkeys(command.event_ids) if i in state.event_ids)
    ctx.emit(ev.AbsorbReleased, source=command.source, event_ids=ids, reason=command.reason)


def _split_case(ctx: _Ctx, command: cmd.SplitCase) -> None:
    state = ctx.state
    if not command.reason.strip():
        raise _reject("splitting (拆分) needs a reason")
    ids = tuple(dict.fromkeys(e.event_id for e in command.events))
    if not ids:
        raise _reject(f"name the events to split off case {state.case_id}")
    unknown = [i for i in ids if i not in state.event_ids]
    if unknown:
        raise _reject(
            f"case {state.case_id} holds no event {_ids(unknown)} "
            f"(its events: {_ids(state.event_ids)})"
        )
    if len(ids) == len(state.event_ids):
        raise _reject(
            f"cannot split every event off case {state.case_id}: at least one must stay "
            "(reject or re-route the case instead)"
        )
    if command.routing is None and state.lead is None and state.routing is None:
        raise _reject(f"case {state.case_id} has no departments yet: give the new case a routing")
    ctx.emit(ev.EventsSplit, event_ids=ids, new_case_id=split_case_id(state), reason=command.reason)


# -- step 3: route and assign ----------------------------------------------------------


def _unit_region(state: CaseState) -> str:
    """The jurisdiction of the department units serving the case: its
    coordinating level, but no lower than the township (departments sit there)."""
    return region_at(state.region, Level(min(state.level, Level.TOWNSHIP)))


def _dispatch(ctx: _Ctx, routing: Routing, *, ruled: bool = False) -> None:
    team = [(routing.lead, Role.LEAD)] + [
        (d, Role.SUPPORT) for d in dict.fromkeys(routing.supports) if d != routing.lead
    ]
    for department, role in team:
        state = ctx.state
        aid = f"A{state.next_assignment}"
        terms = state.terms
        later = set(terms.start_on_accept)
        steps: list[tuple[Step, Budget | None]] = [(Step.ACCEPT, terms.accept)]
        if role is Role.LEAD:
            steps += [(Step.ON_SITE, terms.on_site), (Step.FIRST_CONTROL, terms.first_control)]
        steps.append((Step.RESOLVE, terms.resolve))
        clocks = tuple(
            ctx.clock(step, budget, aid, takeover=role is Role.LEAD)
            for step, budget in steps
            if budget is not None and (step is Step.ACCEPT or step not in later)
        )
        assignment = Assignment(
            id=aid,
            department=department,
            role=role,
            status=AssignmentStatus.DISPATCHED,
            region=_unit_region(state),
            dispatched_at=ctx.now,
            return_by=clock_add(ctx.calendar, ctx.now, terms.return_window),
            ruled=ruled and role is Role.LEAD,
        )
        ctx.emit(ev.AssignmentDispatched, assignment=assignment, clocks=clocks)


def _clock_ids(state: CaseState, assignment_id: str) -> tuple[str, ...]:
    return tuple(k.id for k in state.clocks if k.assignment == assignment_id)


def _cancel_all(ctx: _Ctx, reason: str) -> None:
    for a in ctx.state.assignments:
        ctx.emit(
            ev.AssignmentCancelled,
            assignment_id=a.id,
            department=a.department,
            reason=reason,
            cleared=_clock_ids(ctx.state, a.id),
        )


def _dispatch_cmd(ctx: _Ctx, command: cmd.Dispatch) -> None:
    routing = command.routing or ctx.state.routing
    if routing is None:
        raise _reject(f"case {ctx.state.case_id} has no routing: name a lead department")
    _dispatch(ctx, routing)


def _reroute(ctx: _Ctx, command: cmd.Reroute) -> None:
    state = ctx.state
    if state.ruling is not None:
        raise _reject(
            f"a ruling (裁定) by {state.ruling} is pending after {state.lead_returns} returns: "
            "use rule, not reroute"
        )
    if not command.reason.strip():
        raise _reject("re-routing (改派) needs a reason")
    if command.classification is not None and command.classification.category != state.category:
        ctx.emit(
            ev.CaseReclassified,
            classification=command.classification,
            previous=state.category,
            reason=command.reason,
            terms=_terms_for_category(ctx, command.classification),
            cleared=_verify_clock(state),
        )
    _cancel_all(ctx, f"re-routed: {command.reason}")
    _dispatch(ctx, command.routing)


def _rule(ctx: _Ctx, command: cmd.Rule) -> None:
    state = ctx.state
    if state.ruling is None:
        raise _reject(f"no ruling is pending on case {state.case_id}: re-route it instead")
    if command.by_region != state.ruling:
        raise _reject(
            f"the ruling (裁定) belongs to {state.ruling} ({level_of(state.ruling).name.lower()}), "
            f"not {command.by_region}"
        )
    returned = tuple(
        a.department
        for a in state.assignments
        if a.role is Role.LEAD and a.status is AssignmentStatus.RETURNED
    )
    ctx.emit(
        ev.RulingMade,
        region=state.ruling,
        lead=command.lead,
        supports=command.supports,
        reason=command.reason,
        returned_by=returned,
    )
    _cancel_all(ctx, f"ruling by {state.ruling}: {command.reason}")
    _dispatch(
        ctx,
        Routing(
            lead=command.lead, supports=command.supports, entry_level=state.level, rule="ruling"
        ),
        ruled=True,
    )


# -- step 4: track ---------------------------------------------------------------------


def _own(ctx: _Ctx, assignment_id: str, department: str | None) -> Assignment:
    assignment = ctx.state.assignment(assignment_id)
    if assignment is None:
        raise _reject(f"case {ctx.state.case_id} has no assignment {assignment_id}")
    if department is not None and assignment.department != department:
        raise _reject(
            f"assignment {assignment_id} belongs to {assignment.department}, not {department}"
        )
    return assignment


def _working_on(ctx: _Ctx, assignment_id: str, department: str) -> Assignment:
    """An assignment its department is working on (claimed, not finished)."""
    assignment = _own(ctx, assignment_id, department)
    if assignment.status is AssignmentStatus.DISPATCHED:
        raise _reject(
            f"assignment {assignment.id} is not claimed yet: "
            f"{assignment.department} must claim (签收) it first"
        )
    if assignment.status not in (AssignmentStatus.ACCEPTED, AssignmentStatus.IN_PROGRESS):
        raise _reject(
            f"assignment {assignment.id} of {assignment.department} is {assignment.status}"
        )
    return assignment


def _claim(ctx: _Ctx, command: cmd.Claim) -> None:
    assignment = _own(ctx, command.assignment_id, None)
    if assignment.status in (
        AssignmentStatus.ACCEPTED,
        AssignmentStatus.IN_PROGRESS,
        AssignmentStatus.HANDLED,
    ):
        raise _reject(f"assignment {assignment.id} is already claimed by {assignment.department}")
    if assignment.department != command.department:
        raise _reject(
            f"assignment {assignment.id} belongs to {assignment.department}, "
            f"not {command.department}"
        )
    if assignment.status is AssignmentStatus.RETURNED:
        raise _reject(f"assignment {assignment.id} was returned (退单) by {assignment.department}")
    state = ctx.state
    later: list[tuple[Step, Budget | None]] = [(Step.RESOLVE, state.terms.resolve)]
    if assignment.role is Role.LEAD:
        later += [
            (Step.ON_SITE, state.terms.on_site),
            (Step.FIRST_CONTROL, state.terms.first_control),
        ]
    clocks = [
        ctx.clock(step, b, assignment.id, takeover=assignment.role is Role.LEAD)
        for step, b in later
        if b is not None and step in state.terms.start_on_accept
    ]
    if assignment.role is Role.LEAD and state.terms.progress is not None:
        clocks.append(ctx.clock(Step.PROGRESS, state.terms.progress, assignment.id))
    ctx.emit(
        ev.AssignmentClaimed,
        assignment_id=assignment.id,
        department=assignment.department,
        clocks=tuple(clocks),
        cleared=(f"{assignment.id}.{Step.ACCEPT}",),
    )


def _return(ctx: _Ctx, command: cmd.Return) -> None:
    assignment = _own(ctx, command.assignment_id, command.department)
    state = ctx.state
    if assignment.status not in (AssignmentStatus.DISPATCHED, AssignmentStatus.ACCEPTED):
        raise _reject(
            f"assignment {assignment.id} is {assignment.status}: "
            "only a dispatched or just-claimed assignment can be returned"
        )
    if assignment.ruled:
        raise _reject(
            f"assignment {assignment.id} was assigned by a ruling (裁定) and cannot be returned"
        )
    if ctx.now > assignment.return_by:
        raise _reject(
            f"return window of {state.terms.return_window.human()} "
            f"ended at {when(assignment.return_by)}"
        )
    if not command.reason_code.strip():
        raise _reject("a return (退单) needs a reason code")
    returns = state.lead_returns + (assignment.role is Role.LEAD)
    ctx.emit(
        ev.AssignmentReturned,
        assignment_id=assignment.id,
        department=assignment.department,
        role=assignment.role,
        reason_code=command.reason_code,
        note=command.note,
        suggested_department=command.suggested_department,
        suggested_region=command.suggested_region,
        lead_returns=returns,
        cleared=_clock_ids(state, assignment.id),
    )
    if assignment.role is Role.LEAD and returns >= state.esc.ruling_after:
        region = ruling_region(ctx.state.region_code, ctx.state.disputed)
        level = level_of(region)
        ctx.emit(ev.RulingRequested, region=region, level=level, returns=returns)
        if level < ctx.state.level:
            _move_level(ctx, level, f"ruling (裁定) on a lead returned {returns} times")


def _progress(ctx: _Ctx, command: cmd.Progress) -> None:
    assignment = _working_on(ctx, command.assignment_id, command.department)
    state = ctx.state
    clocks: tuple[Clock, ...] = ()
    cleared: tuple[str, ...] = ()
    if assignment.role is Role.LEAD:
        if state.terms.progress is not None:
            clocks = (ctx.clock(Step.PROGRESS, state.terms.progress, assignment.id),)
        if command.controlled:
            cleared = (f"{assignment.id}.{Step.FIRST_CONTROL}",)
    ctx.emit(
        ev.ProgressReported,
        assignment_id=assignment.id,
        department=assignment.department,
        note=command.note,
        controlled=command.controlled,
        clocks=clocks,
        cleared=cleared,
    )


def _on_site(ctx: _Ctx, command: cmd.ReportOnSite) -> None:
    assignment = _working_on(ctx, command.assignment_id, command.department)
    if assignment.on_site:
        raise _reject(
            f"{assignment.department} already reported on site (到场) "
            f"for assignment {assignment.id}"
        )
    ctx.emit(
        ev.OnSiteReported,
        assignment_id=assignment.id,
        department=assignment.department,
        note=command.note,
        cleared=(f"{assignment.id}.{Step.ON_SITE}",),
    )


def _request_extension(ctx: _Ctx, command: cmd.RequestExtension) -> None:
    assignment = _working_on(ctx, command.assignment_id, command.department)
    state = ctx.state
    clock = state.clock(f"{assignment.id}.{Step.RESOLVE}")
    if clock is None:
        raise _reject(f"assignment {assignment.id} has no running resolve deadline to extend")
    if assignment.extensions >= state.terms.extension_times:
        raise _reject(
            f"assignment {assignment.id} already had {assignment.extensions} extension(s) (延期); "
            f"at most {state.terms.extension_times}"
        )
    if assignment.requested is not None:
        raise _reject(
            f"an extension of {assignment.requested.human()} is already pending "
            f"on assignment {assignment.id}"
        )
    if clock.paused is None and ctx.now >= clock.due:
        raise _reject(
            f"an extension must be asked before the deadline, which was {when(clock.due)}"
        )
    if command.days < 1:
        raise _reject("an extension is at least 1 day")
    extra = Budget(command.days * DAY, clock.budget.working)
    limit = extension_limit(state.terms, clock)
    if extra.seconds > limit.seconds:
        raise _reject(
            f"an extension of {extra.human()} exceeds the limit of {limit.human()} "
            f"(at most the original {clock.budget.human()} and {state.terms.extension_max.human()})"
        )
    ctx.emit(
        ev.ExtensionRequested,
        assignment_id=assignment.id,
        department=assignment.department,
        extra=extra,
        reason=command.reason,
    )


def _approve_extension(ctx: _Ctx, command: cmd.ApproveExtension) -> None:
    assignment = _own(ctx, command.assignment_id, None)
    state = ctx.state
    if assignment.requested is None:
        raise _reject(f"no extension request is pending on assignment {assignment.id}")
    clock = state.clock(f"{assignment.id}.{Step.RESOLVE}")
    if not command.approved or clock is None:
        ctx.emit(
            ev.ExtensionDenied,
            assignment_id=assignment.id,
            department=assignment.department,
            note=command.note,
        )
        return
    new = extend_clock(
        ctx.calendar, clock, assignment.requested, yellow_at=state.terms.yellow_at, now=ctx.now
    )
    ctx.emit(
        ev.ExtensionApproved,
        assignment_id=assignment.id,
        department=assignment.department,
        extra=assignment.requested,
        due=new.due,
        note=command.note,
        clocks=(new,),
    )


def _suspend(ctx: _Ctx, command: cmd.Suspend) -> None:
    state = ctx.state
    if state.suspended_at is not None:
        raise _reject(
            f"case {state.case_id} is already suspended (挂起) since {when(state.suspended_at)}"
        )
    if not command.reason.strip():
        raise _reject("suspending (挂起) needs a reason")
    ctx.emit(
        ev.CaseSuspended,
        reason=command.reason,
        clocks=tuple(pause_clock(k, ctx.now) for k in state.clocks),
    )


def _resume(ctx: _Ctx, command: cmd.Resume) -> None:
    state = ctx.state
    if state.suspended_at is None:
        raise _reject(f"case {state.case_id} is not suspended")
    ctx.emit(
        ev.CaseResumed,
        note=command.note,
        paused_seconds=clock_elapsed(ctx.calendar, state.suspended_at, ctx.now, False).seconds,
        clocks=tuple(resume_clock(ctx.calendar, k, ctx.now) for k in state.clocks),
    )


# -- step 5: feedback ------------------------------------------------------------------


def _finish(ctx: _Ctx, a: Assignment, outcome: str, note: str) -> None:
    if ctx.state.suspended_at is not None:
        raise _reject(
            f"case {ctx.state.case_id} is suspended (挂起) since {when(ctx.state.suspended_at)}: "
            "resume it first"
        )
    ctx.emit(
        ev.AssignmentHandled,
        assignment_id=a.id,
        department=a.department,
        role=a.role,
        outcome=outcome,
        note=note,
        cleared=_clock_ids(ctx.state, a.id),
    )
    state = ctx.state
    lead = state.lead
    done = (AssignmentStatus.HANDLED, AssignmentStatus.RETURNED)
    if (
        state.status in WORKING
        and lead is not None
        and lead.status is AssignmentStatus.HANDLED
        and all(x.status in done for x in state.assignments if x.role is Role.SUPPORT)
    ):
        clocks = (ctx.clock(Step.FEEDBACK, state.terms.feedback),) if state.terms.feedback else ()
        cleared = ("case.ladder",) if state.clock("case.ladder") else ()
        ctx.emit(ev.CaseHandled, clocks=clocks, cleared=cleared)


def _handle(ctx: _Ctx, command: cmd.Handle) -> None:
    assignment = _own(ctx, command.assignment_id, command.department)
    if assignment.role is not Role.LEAD:
        raise _reject(
            f"assignment {assignment.id} is a supporting one (配合): "
            "report its part with support_done"
        )
    assignment = _working_on(ctx, command.assignment_id, command.department)
    if not command.outcome.strip():
        raise _reject("handling (办结) needs an outcome")
    _finish(ctx, assignment, command.outcome, command.note)


def _support_done(ctx: _Ctx, command: cmd.SupportDone) -> None:
    assignment = _own(ctx, command.assignment_id, command.department)
    if assignment.role is not Role.SUPPORT:
        raise _reject(
            f"assignment {assignment.id} is the lead (牵头): report the outcome with handle"
        )
    assignment = _working_on(ctx, command.assignment_id, command.department)
    _finish(ctx, assignment, "", command.note)


# -- step 6: evaluate ------------------------------------------------------------------


def _check(ctx: _Ctx, command: cmd.Check) -> None:
    ctx.emit(ev.CheckStarted, note=command.note)


def _close(ctx: _Ctx, command: cmd.Close) -> None:
    state = ctx.state
    ctx.emit(
        ev.CaseClosed,
        note=command.note,
        overdue=state.overdue,
        cleared=tuple(k.id for k in state.clocks),
    )


def _redo_clock(ctx: _Ctx) -> tuple[Clock, ...]:
    lead = ctx.state.lead
    if lead is None:
        return ()
    return (ctx.clock(Step.RESOLVE, ctx.state.terms.resolve, lead.id),)


def _rework(ctx: _Ctx, command: cmd.Rework) -> None:
    if not command.reason.strip():
        raise _reject("rework (返工) needs a reason")
    cleared = ("case.feedback",) if ctx.state.clock("case.feedback") else ()
    ctx.emit(ev.ReworkOrdered, reason=command.reason, clocks=_redo_clock(ctx), cleared=cleared)


def _evaluate(ctx: _Ctx, command: cmd.Evaluate) -> None:
    ctx.emit(ev.CaseEvaluated, result=command.result, note=command.note)
    if command.result is not cmd.Satisfaction.DISSATISFIED:
        return
    state = ctx.state
    if state.redo < state.esc.redo_times:
        _change_priority(
            ctx,
            raise_priority(state.priority, state.esc.reopen_raise),
            "reopened after a dissatisfied callback",
            hot_spot=True,
        )
        ctx.emit(
            ev.CaseReopened,
            redo=state.redo + 1,
            reason=command.note or "dissatisfied callback (不满意)",
            clocks=_redo_clock(ctx),
        )
        if ctx.state.lead is None and ctx.state.routing is not None:
            _dispatch(ctx, ctx.state.routing)
        return
    up = level_up(state.level, state.esc.supervise_up)
    ctx.emit(
        ev.Supervised,
        level=up,
        region=region_at(state.region, up),
        reason=f"dissatisfied again after {state.redo} redo(s) (重办)",
    )


# -- escalation ------------------------------------------------------------------------


def _move_level(
    ctx: _Ctx, target: Level, reason: str, *, down: bool = False, also: tuple[Clock, ...] = ()
) -> None:
    """Change the coordinating level; the ladder (四级七天) restarts at a rung level.
    ``also``: clocks to update in the same event (a fired take-over)."""
    state = ctx.state
    clocks: tuple[Clock, ...] = ()
    cleared: tuple[str, ...] = ()
    rung = next((r for r in state.ladder if r.level == target), None)
    if rung is not None and state.status in WORKING | {
        CaseStatus.VERIFYING,
        CaseStatus.REGISTERED,
        CaseStatus.REPORTED,
    }:
        clocks = (ctx.clock(Step.LADDER, rung.stay),)
    elif state.clock("case.ladder"):
        cleared = ("case.ladder",)
    ctx.emit(
        ev.Deescalated if down else ev.Escalated,
        from_level=state.level,
        to_level=target,
        region=region_at(state.region, target),
        reason=reason,
        clocks=clocks + also,
        cleared=cleared,
    )


def _supervise(ctx: _Ctx, command: cmd.Supervise) -> None:
    state = ctx.state
    level = command.level or level_up(state.level, state.esc.supervise_up)
    if level >= state.level and state.level is not Level.CITY:
        raise _reject(
            f"supervision (督办) comes from above: "
            f"{level.name.lower()} is not above {state.level.name.lower()}"
        )
    ctx.emit(
        ev.Supervised,
        level=level,
        region=region_at(state.region, level),
        reason=command.note or "督办",
    )


def _escalate(ctx: _Ctx, command: cmd.Escalate) -> None:
    state = ctx.state
    target = command.level or level_up(state.level)
    if target >= state.level:
        raise _reject(
            f"case {state.case_id} is coordinated at {state.level.name.lower()}: "
            f"cannot escalate to {target.name.lower()}"
        )
    if not command.reason.strip():
        raise _reject("escalation needs a reason")
    _move_level(ctx, target, command.reason)


def _deescalate(ctx: _Ctx, command: cmd.Deescalate) -> None:
    state = ctx.state
    if command.by_region != state.region_code:
        raise _reject(
            f"only the dispatcher of {state.region_code} ({state.level.name.lower()}) "
            f"may de-escalate case {state.case_id}, "
            f"not {command.by_region}"
        )
    if not command.reason.strip():
        raise _reject("de-escalation needs a reason")
    if command.level <= state.level:
        raise _reject(f"{command.level.name.lower()} is not below {state.level.name.lower()}")
    if command.level > level_of(state.region):
        raise _reject(
            f"case {state.case_id} is located only to {state.region}: "
            f"it cannot go down to {command.level.name.lower()}"
        )
    _move_level(ctx, command.level, command.reason, down=True)


# -- timers ----------------------------------------------------------------------------


def _fire(ctx: _Ctx, command: cmd.FireDeadline) -> None:
    """Yellow card, red card (+ supervision), take-over (吹哨) or the ladder's climb."""
    state = ctx.current
    if state is None or state.status in FINAL:
        return
    clock = state.clock(command.deadline_id)
    try:
        stage = Stage[command.kind.upper()]
    except KeyError:
        raise _reject(f"unknown deadline kind {command.kind!r} (yellow, red, over)") from None
    if clock is None or clock.paused is not None or clock.fired & stage:
        return
    instant = {Stage.YELLOW: clock.warn, Stage.RED: clock.due, Stage.OVER: clock.over}[stage]
    if instant is None or instant != command.due or ctx.now < instant:
        return
    fired = replace(clock, fired=clock.fired | stage)
    assignment = state.assignment(clock.assignment)
    dept = assignment.department if assignment else ""
    what = f"{clock.step} of {clock.assignment} ({dept})" if assignment else f"case {clock.step}"
    if clock.step is Step.LADDER:
        _climb(ctx, fired)
    elif stage is Stage.OVER:
        reason = f"take-over (吹哨): {what} overdue since {when(clock.due)}"
        if state.level is Level.CITY:
            ctx.emit(
                ev.Supervised,
                level=Level.CITY,
                region=state.region_code,
                reason=reason,
                clocks=(fired,),
            )
        else:
            _move_level(ctx, level_up(state.level), reason, also=(fired,))
    else:
        ctx.emit(
            ev.YellowCard if stage is Stage.YELLOW else ev.RedCard,
            deadline_id=clock.id,
            step=clock.step,
            assignment_id=clock.assignment,
            department=dept,
            due=clock.due,
            clocks=(fired,),
        )
        if stage is Stage.RED:
            up = level_up(state.level, state.esc.supervise_up)
            ctx.emit(
                ev.Supervised,
                level=up,
                region=region_at(state.region, up),
                reason=f"red card (超期): {what} was due {when(clock.due)}",
            )


def _climb(ctx: _Ctx, fired: Clock) -> None:
    state = ctx.state
    index = next((i for i, r in enumerate(state.ladder) if r.level == state.level), None)
    if index is not None and index + 1 < len(state.ladder):
        rung = state.ladder[index]
        _move_level(
            ctx,
            state.ladder[index + 1].level,
            f"四级七天: unresolved after {rung.stay.human()} at {rung.level.name.lower()}",
        )
        return
    up = level_up(state.level)
    ctx.emit(
        ev.Supervised,
        level=up,
        region=region_at(state.region, up),
        reason=f"四级七天: unresolved after the last rung at {state.level.name.lower()}",
        cleared=(fired.id,),
    )


_DECIDE: dict[type, Callable[[_Ctx, Any], None]] = {
    cmd.LinkEvent: _link,
    cmd.Register: _register,
    cmd.Reject: _reject_case,
    cmd.AbsorbCase: _absorb,
    cmd.MarkMerged: _mark_merged,
    cmd.ReleaseCase: _release,
    cmd.SplitCase: _split_case,
    cmd.Dispatch: _dispatch_cmd,
    cmd.Reroute: _reroute,
    cmd.Rule: _rule,
    cmd.Claim: _claim,
    cmd.Return: _return,
    cmd.Progress: _progress,
    cmd.ReportOnSite: _on_site,
    cmd.RequestExtension: _request_extension,
    cmd.ApproveExtension: _approve_extension,
    cmd.Suspend: _suspend,
    cmd.Resume: _resume,
    cmd.Handle: _handle,
    cmd.SupportDone: _support_done,
    cmd.Check: _check,
    cmd.Close: _close,
    cmd.Rework: _rework,
    cmd.Evaluate: _evaluate,
    cmd.Supervise: _supervise,
    cmd.Escalate: _escalate,
    cmd.Deescalate: _deescalate,
}
