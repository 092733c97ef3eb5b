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

S = CaseStatus
A = AssignmentStatus
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
        self.state = state
        self.command = command
        self.policy = policy
        self.cal = calendar
        self.now = now
        self.events: list[ev.CaseEvent] = []
        self.trail: list[CaseState] = []  # the case after each event

    @property
    def s(self) -> CaseState:
        assert self.state is not None
        return self.state

    def emit(self, kind: type[ev.CaseEvent], **fields: Any) -> None:
        event = kind(
            case_id=self.command.case_id,
            seq=(self.state.seq if self.state else 0) + 1,
            at=self.now,
            actor=self.command.actor,
            command_id=self.command.command_id,
            **fields,
        )
        self.state = apply(self.state, event)
        self.events.append(event)
        self.trail.append(self.state)

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
        terms = terms or self.s.terms
        esc = esc or self.s.esc
        clock = start_clock(
            self.cal,
            step=step,
            start=start or self.now,
            budget=budget,
            yellow_at=None if step is Step.LADDER else terms.yellow_at,
            over_after=takeover_after(esc, step, budget)
            if takeover and step is not Step.LADDER
            else None,
            assignment=assignment,
        )
        if self.state is not None and self.state.suspended_at is not None:
            clock = pause_clock(clock, self.now)
        return clock


def _reject(reason: str) -> TransitionRejected:
    return TransitionRejected(reason)


# -- the entry point -------------------------------------------------------------------

_ANY_OPEN = frozenset(S) - FINAL
_ALLOWED: dict[type, frozenset[CaseStatus]] = {
    cmd.LinkEvent: _ANY_OPEN - {S.CLOSED} | {S.MERGED},  # a merged case forwards it
    cmd.Register: frozenset({S.VERIFYING}),
    cmd.Reject: frozenset({S.VERIFYING}),
    cmd.AbsorbCase: _ANY_OPEN - {S.CLOSED},
    cmd.MarkMerged: _ANY_OPEN - {S.CLOSED} | {S.MERGED},  # merged into the same case: a repeat
    cmd.ReleaseCase: frozenset(S),  # the compensation applies whatever became of the case
    cmd.SplitCase: _ANY_OPEN - {S.CLOSED},
    cmd.Dispatch: frozenset({S.REGISTERED}),
    cmd.Reroute: WORKING,
    cmd.Rule: frozenset({S.RETURNED}),
    cmd.Claim: WORKING,
    cmd.Return: WORKING,
    cmd.Progress: WORKING,
    cmd.ReportOnSite: WORKING,
    cmd.RequestExtension: WORKING,
    cmd.ApproveExtension: WORKING,
    cmd.Suspend: WORKING,
    cmd.Resume: WORKING,
    cmd.Handle: WORKING,
    cmd.SupportDone: WORKING | {S.HANDLED},
    cmd.Check: frozenset({S.HANDLED}),
    cmd.Close: frozenset({S.CHECKING}),
    cmd.Rework: frozenset({S.CHECKING}),
    cmd.Evaluate: frozenset({S.CLOSED}),
    cmd.Supervise: _ANY_OPEN,
    cmd.Escalate: _ANY_OPEN - {S.CLOSED},
    cmd.Deescalate: _ANY_OPEN - {S.CLOSED},
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


def _open(ctx: _Ctx, c: cmd.OpenCase) -> None:
    esc_policy = ctx.policy.escalation
    category = c.classification.category
    # triage set the priority, already raised for a recurring grid and category
    priority, reasons = c.priority.priority, c.priority.reasons
    hot = c.hot_spot or bool(
        esc_policy.recurrence_count and c.recurrences + 1 >= esc_policy.recurrence_count
    )
    # triage chose the entry level (by source, one up for weapons …); never deeper than we know
    level = Level(min(c.routing.entry_level, c.location.level))
    terms = terms_for(ctx.policy.sla, priority, category, rural=is_rural(c.location.region_code))
    esc = escalation_terms(esc_policy, priority)
    ladder = ladder_for(
        esc_policy, level=level, category=category, priority=priority, persons=c.event.persons
    )
    clocks: tuple[Clock, ...] = ()
    if ladder and not c.closed_at_grid:
        clocks = (ctx.clock(Step.LADDER, ladder[0].stay, terms=terms, esc=esc),)
    verifying = c.needs_verification and not c.closed_at_grid and c.routing.dispatch
    if verifying and terms.verify is not None:  # 核实 has its own clock (docs/domain.md §4)
        clocks += (ctx.clock(Step.VERIFY, terms.verify, terms=terms, esc=esc),)
    ctx.emit(
        ev.CaseOpened,
        event=c.event,
        location=c.location,
        classification=c.classification,
        priority=priority,
        priority_reasons=reasons,
        routing=c.routing,
        level=level,
        needs_verification=verifying,
        hot_spot=hot,
        terms=terms,
        escalation_terms=esc,
        ladder=ladder,
        fan_out=fan_out(esc_policy, priority, category, c.location.region_code),
        clocks=clocks,
        split_from=c.split_from,
    )
    for more in c.more_events:  # a case split off another opens with all its events
        if more.event_id not in ctx.s.event_ids:
            ctx.emit(ev.EventLinked, event=more)
    if c.closed_at_grid:
        ctx.emit(ev.CaseRegistered, note="就地化解 settled at the grid")
        ctx.emit(ev.CaseClosed, note="self-resolved at the grid", self_resolved=True)
    elif not c.routing.dispatch:
        ctx.emit(ev.CaseRegistered, note=f"recorded, not dispatched ({c.routing.disposition})")
        ctx.emit(ev.CaseClosed, note=f"recorded only: {c.routing.disposition}")
    elif not verifying:
        ctx.emit(ev.CaseRegistered)
        _dispatch(ctx, c.routing)
    elif c.routing.disposition == PROVISIONAL:  # a P1 of unknown category: dispatched at once
        _dispatch(ctx, c.routing)


def _link(ctx: _Ctx, c: cmd.LinkEvent) -> None:
    if c.event.event_id in ctx.s.event_ids:
        return
    if ctx.s.merged_into is not None:  # triage still saw this case open: pass it on
        ctx.emit(ev.EventForwarded, event=c.event, into=ctx.s.merged_into, priority=c.priority)
        return
    judged = c.priority.priority if c.priority is not None else None
    if c.repeat:  # the same camera alarming again: recorded, folded, no new event of the case
        ctx.emit(ev.AlarmRepeated, event=c.event, event_priority=judged)
        return
    ctx.emit(ev.EventLinked, event=c.event, event_priority=judged)
    if c.priority is not None and c.priority.priority < ctx.s.priority:
        why = ", ".join(c.priority.reasons) or "linked event"
        _change_priority(ctx, c.priority.priority, f"raised by {c.event.event_id}: {why}")


def _change_priority(ctx: _Ctx, new: Priority, reason: str, *, hot_spot: bool = False) -> None:
    s = ctx.s
    if new == s.priority and (s.hot_spot or not hot_spot):
        return
    terms = terms_for(ctx.policy.sla, new, s.category, rural=is_rural(s.region))
    esc = escalation_terms(ctx.policy.escalation, new)
    clocks = tuple(
        _reclock(ctx, clock, terms, esc) for clock in s.clocks if clock.step is not Step.LADDER
    )
    serious = ctx.policy.escalation.fan_out_priorities
    fan = None  # notify the command centers once, when the case first becomes serious
    if new in serious and s.priority not in serious:
        fan = fan_out(ctx.policy.escalation, new, s.category, s.region)
    ctx.emit(
        ev.PriorityChanged,
        old=s.priority,
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
    a = ctx.s.assignment(clock.assignment)
    lead = a is None or a.role is Role.LEAD
    new = ctx.clock(
        clock.step, budget, clock.assignment, start=clock.start, terms=terms, esc=esc, takeover=lead
    )
    fired = clock.fired
    for stage, at in ((Stage.YELLOW, new.warn), (Stage.RED, new.due), (Stage.OVER, new.over)):
        if at is not None and at > ctx.now:
            fired &= ~stage
    return replace(new, fired=fired, paused=clock.paused, extended=clock.extended)


def _register(ctx: _Ctx, c: cmd.Register) -> None:
    s = ctx.s
    ctx.emit(
        ev.CaseRegistered,
        note=c.note,
        classification=c.classification,
        routing=c.routing,
        terms=_terms_for_category(ctx, c.classification),
        cleared=_verify_clock(s),
    )
    if c.priority is not None and c.priority != s.priority:
        _change_priority(ctx, c.priority, f"set at registration by {c.actor}")
    if s.assignments:  # dispatched at once while verifying: a corrected routing replaces it
        if c.routing is not None and c.dispatch:
            _cancel_all(ctx, f"registered by {c.actor} with a corrected routing")
            _dispatch(ctx, c.routing)
        return
    routing = ctx.s.routing
    if c.dispatch and routing is not None:
        _dispatch(ctx, routing)


def _terms_for_category(ctx: _Ctx, classification: Classification | None) -> Terms | None:
    """The case's terms re-frozen for a corrected category (None: unchanged)."""
    s = ctx.s
    if classification is None or classification.category == s.category:
        return None
    return terms_for(ctx.policy.sla, s.priority, classification.category,
                     rural=is_rural(s.region))


def _verify_clock(s: CaseState) -> tuple[str, ...]:
    """The verification clock, to clear when an operator has verified the case."""
    return tuple(k.id for k in s.clocks if k.step is Step.VERIFY)


def _reject_case(ctx: _Ctx, c: cmd.Reject) -> None:
    if not c.reason.strip():
        raise _reject("rejecting a case (不予立案) needs a reason")
    if ctx.s.assignments:  # dispatched at once while verifying
        _cancel_all(ctx, f"not registered (不予立案): {c.reason}")
    ctx.emit(ev.CaseRejected, reason=c.reason, cleared=tuple(k.id for k in ctx.s.clocks))


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


def _absorb(ctx: _Ctx, c: cmd.AbsorbCase) -> None:
    s = ctx.s
    if c.source == s.case_id:
        raise _reject(f"case {s.case_id} cannot be merged into itself")
    if c.source in s.absorbed:
        raise _reject(f"case {c.source} is already merged into case {s.case_id}")
    if not c.reason.strip():
        raise _reject("merging (合并) needs a reason")
    ids = tuple(dict.fromkeys(c.event_ids))
    if not ids:
        raise _reject(f"case {c.source} has no events to merge")
    held = [i for i in ids if i in s.event_ids]
    if held:
        raise _reject(f"case {s.case_id} already holds event(s) {_ids(held)}")
    ctx.emit(ev.CaseAbsorbed, source=c.source, event_ids=ids, reason=c.reason)
    if c.priority is not None and c.priority < ctx.s.priority:
        _change_priority(ctx, c.priority, f"raised by merging case {c.source}")


def _mark_merged(ctx: _Ctx, c: cmd.MarkMerged) -> None:
    s = ctx.s
    if s.merged_into is not None:
        if s.merged_into == c.into:
            return  # already merged there: nothing to do, nothing to release
        raise _reject(f"case {s.case_id} was already merged into case {s.merged_into}")
    if c.into == s.case_id:
        raise _reject(f"case {s.case_id} cannot be merged into itself")
    taken = set(c.event_ids)
    missing = [i for i in s.event_ids if i not in taken]
    if missing:
        raise _reject(
            f"case {s.case_id} has event(s) the merge did not include ({_ids(missing)}): "
            "merge it again"
        )
    foreign = [i for i in dict.fromkeys(c.event_ids) if i not in s.event_ids]
    if foreign:
        raise _reject(f"event(s) {_ids(foreign)} are not case {s.case_id}'s")
    why = f"merged into case {c.into}"
    for a in s.assignments:
        if a.status not in (A.HANDLED, A.RETURNED):
            ctx.emit(
                ev.AssignmentCancelled,
                assignment_id=a.id,
                department=a.department,
                reason=why,
                cleared=_clock_ids(ctx.s, a.id),
            )
    ctx.emit(
        ev.CaseMerged,
        into=c.into,
        event_ids=ctx.s.event_ids,
        reason=c.reason,
        cleared=tuple(k.id for k in ctx.s.clocks),
    )


def _release(ctx: _Ctx, c: cmd.ReleaseCase) -> None:
    s = ctx.s
    if c.source not in s.absorbed:
        return  # never taken, or given back already
    ids = tuple(i for i in dict.fromkeys(c.event_ids) if i in s.event_ids)
    ctx.emit(ev.AbsorbReleased, source=c.source, event_ids=ids, reason=c.reason)


def _split_case(ctx: _Ctx, c: cmd.SplitCase) -> None:
    s = ctx.s
    if not c.reason.strip():
        raise _reject("splitting (拆分) needs a reason")
    ids = tuple(dict.fromkeys(e.event_id for e in c.events))
    if not ids:
        raise _reject(f"name the events to split off case {s.case_id}")
    unknown = [i for i in ids if i not in s.event_ids]
    if unknown:
        raise _reject(
            f"case {s.case_id} holds no event {_ids(unknown)} (its events: {_ids(s.event_ids)})"
        )
    if len(ids) == len(s.event_ids):
        raise _reject(
            f"cannot split every event off case {s.case_id}: at least one must stay "
            "(reject or re-route the case instead)"
        )
    if c.routing is None and s.lead is None and s.routing is None:
        raise _reject(f"case {s.case_id} has no departments yet: give the new case a routing")
    ctx.emit(ev.EventsSplit, event_ids=ids, new_case_id=split_case_id(s), reason=c.reason)


# -- step 3: route and assign ----------------------------------------------------------


def _unit_region(s: CaseState) -> str:
    """The jurisdiction of the department units serving the case: its
    coordinating level, but no lower than the township (departments sit there)."""
    return region_at(s.region, Level(min(s.level, Level.TOWNSHIP)))


def _dispatch(ctx: _Ctx, routing: Routing, *, ruled: bool = False) -> None:
    team = [(routing.lead, Role.LEAD)] + [
        (d, Role.SUPPORT) for d in dict.fromkeys(routing.supports) if d != routing.lead
    ]
    for department, role in team:
        s = ctx.s
        aid = f"A{s.next_assignment}"
        terms = s.terms
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
            status=A.DISPATCHED,
            region=_unit_region(s),
            dispatched_at=ctx.now,
            return_by=clock_add(ctx.cal, ctx.now, terms.return_window),
            ruled=ruled and role is Role.LEAD,
        )
        ctx.emit(ev.AssignmentDispatched, assignment=assignment, clocks=clocks)


def _clock_ids(s: CaseState, assignment_id: str) -> tuple[str, ...]:
    return tuple(k.id for k in s.clocks if k.assignment == assignment_id)


def _cancel_all(ctx: _Ctx, reason: str) -> None:
    for a in ctx.s.assignments:
        ctx.emit(
            ev.AssignmentCancelled,
            assignment_id=a.id,
            department=a.department,
            reason=reason,
            cleared=_clock_ids(ctx.s, a.id),
        )


def _dispatch_cmd(ctx: _Ctx, c: cmd.Dispatch) -> None:
    routing = c.routing or ctx.s.routing
    if routing is None:
        raise _reject(f"case {ctx.s.case_id} has no routing: name a lead department")
    _dispatch(ctx, routing)


def _reroute(ctx: _Ctx, c: cmd.Reroute) -> None:
    s = ctx.s
    if s.ruling is not None:
        raise _reject(
            f"a ruling (裁定) by {s.ruling} is pending after {s.lead_returns} returns: "
            "use rule, not reroute"
        )
    if not c.reason.strip():
        raise _reject("re-routing (改派) needs a reason")
    if c.classification is not None and c.classification.category != s.category:
        ctx.emit(
            ev.CaseReclassified,
            classification=c.classification,
            previous=s.category,
            reason=c.reason,
            terms=_terms_for_category(ctx, c.classification),
            cleared=_verify_clock(s),
        )
    _cancel_all(ctx, f"re-routed: {c.reason}")
    _dispatch(ctx, c.routing)


def _rule(ctx: _Ctx, c: cmd.Rule) -> None:
    s = ctx.s
    if s.ruling is None:
        raise _reject(f"no ruling is pending on case {s.case_id}: re-route it instead")
    if c.by_region != s.ruling:
        raise _reject(
            f"the ruling (裁定) belongs to {s.ruling} ({level_of(s.ruling).name.lower()}), "
            f"not {c.by_region}"
        )
    returned = tuple(
        a.department for a in s.assignments if a.role is Role.LEAD and a.status is A.RETURNED
    )
    ctx.emit(
        ev.RulingMade,
        region=s.ruling,
        lead=c.lead,
        supports=c.supports,
        reason=c.reason,
        returned_by=returned,
    )
    _cancel_all(ctx, f"ruling by {s.ruling}: {c.reason}")
    _dispatch(
        ctx,
        Routing(lead=c.lead, supports=c.supports, entry_level=s.level, rule="ruling"),
        ruled=True,
    )


# -- step 4: track ---------------------------------------------------------------------


def _own(ctx: _Ctx, assignment_id: str, department: str | None) -> Assignment:
    a = ctx.s.assignment(assignment_id)
    if a is None:
        raise _reject(f"case {ctx.s.case_id} has no assignment {assignment_id}")
    if department is not None and a.department != department:
        raise _reject(f"assignment {assignment_id} belongs to {a.department}, not {department}")
    return a


def _working_on(ctx: _Ctx, assignment_id: str, department: str) -> Assignment:
    """An assignment its department is working on (claimed, not finished)."""
    a = _own(ctx, assignment_id, department)
    if a.status is A.DISPATCHED:
        raise _reject(
            f"assignment {a.id} is not claimed yet: {a.department} must claim (签收) it first"
        )
    if a.status not in (A.ACCEPTED, A.IN_PROGRESS):
        raise _reject(f"assignment {a.id} of {a.department} is {a.status}")
    return a


def _claim(ctx: _Ctx, c: cmd.Claim) -> None:
    a = _own(ctx, c.assignment_id, None)
    if a.status in (A.ACCEPTED, A.IN_PROGRESS, A.HANDLED):
        raise _reject(f"assignment {a.id} is already claimed by {a.department}")
    if a.department != c.department:
        raise _reject(f"assignment {a.id} belongs to {a.department}, not {c.department}")
    if a.status is A.RETURNED:
        raise _reject(f"assignment {a.id} was returned (退单) by {a.department}")
    s = ctx.s
    later: list[tuple[Step, Budget | None]] = [(Step.RESOLVE, s.terms.resolve)]
    if a.role is Role.LEAD:
        later += [(Step.ON_SITE, s.terms.on_site), (Step.FIRST_CONTROL, s.terms.first_control)]
    clocks = [
        ctx.clock(step, b, a.id, takeover=a.role is Role.LEAD)
        for step, b in later
        if b is not None and step in s.terms.start_on_accept
    ]
    if a.role is Role.LEAD and s.terms.progress is not None:
        clocks.append(ctx.clock(Step.PROGRESS, s.terms.progress, a.id))
    ctx.emit(
        ev.AssignmentClaimed,
        assignment_id=a.id,
        department=a.department,
        clocks=tuple(clocks),
        cleared=(f"{a.id}.{Step.ACCEPT}",),
    )


def _return(ctx: _Ctx, c: cmd.Return) -> None:
    a = _own(ctx, c.assignment_id, c.department)
    s = ctx.s
    if a.status not in (A.DISPATCHED, A.ACCEPTED):
        raise _reject(
            f"assignment {a.id} is {a.status}: "
            "only a dispatched or just-claimed assignment can be returned"
        )
    if a.ruled:
        raise _reject(f"assignment {a.id} was assigned by a ruling (裁定) and cannot be returned")
    if ctx.now > a.return_by:
        raise _reject(
            f"return window of {s.terms.return_window.human()} ended at {when(a.return_by)}"
        )
    if not c.reason_code.strip():
        raise _reject("a return (退单) needs a reason code")
    returns = s.lead_returns + (a.role is Role.LEAD)
    ctx.emit(
        ev.AssignmentReturned,
        assignment_id=a.id,
        department=a.department,
        role=a.role,
        reason_code=c.reason_code,
        note=c.note,
        suggested_department=c.suggested_department,
        suggested_region=c.suggested_region,
        lead_returns=returns,
        cleared=_clock_ids(s, a.id),
    )
    if a.role is Role.LEAD and returns >= s.esc.ruling_after:
        region = ruling_region(ctx.s.region_code, ctx.s.disputed)
        level = level_of(region)
        ctx.emit(ev.RulingRequested, region=region, level=level, returns=returns)
        if level < ctx.s.level:
            _move_level(ctx, level, f"ruling (裁定) on a lead returned {returns} times")


def _progress(ctx: _Ctx, c: cmd.Progress) -> None:
    a = _working_on(ctx, c.assignment_id, c.department)
    s = ctx.s
    clocks: tuple[Clock, ...] = ()
    cleared: tuple[str, ...] = ()
    if a.role is Role.LEAD:
        if s.terms.progress is not None:
            clocks = (ctx.clock(Step.PROGRESS, s.terms.progress, a.id),)
        if c.controlled:
            cleared = (f"{a.id}.{Step.FIRST_CONTROL}",)
    ctx.emit(
        ev.ProgressReported,
        assignment_id=a.id,
        department=a.department,
        note=c.note,
        controlled=c.controlled,
        clocks=clocks,
        cleared=cleared,
    )


def _on_site(ctx: _Ctx, c: cmd.ReportOnSite) -> None:
    a = _working_on(ctx, c.assignment_id, c.department)
    if a.on_site:
        raise _reject(f"{a.department} already reported on site (到场) for assignment {a.id}")
    ctx.emit(
        ev.OnSiteReported,
        assignment_id=a.id,
        department=a.department,
        note=c.note,
        cleared=(f"{a.id}.{Step.ON_SITE}",),
    )


def _request_extension(ctx: _Ctx, c: cmd.RequestExtension) -> None:
    a = _working_on(ctx, c.assignment_id, c.department)
    s = ctx.s
    clock = s.clock(f"{a.id}.{Step.RESOLVE}")
    if clock is None:
        raise _reject(f"assignment {a.id} has no running resolve deadline to extend")
    if a.extensions >= s.terms.extension_times:
        raise _reject(
            f"assignment {a.id} already had {a.extensions} extension(s) (延期); "
            f"at most {s.terms.extension_times}"
        )
    if a.requested is not None:
        raise _reject(
            f"an extension of {a.requested.human()} is already pending on assignment {a.id}"
        )
    if clock.paused is None and ctx.now >= clock.due:
        raise _reject(
            f"an extension must be asked before the deadline, which was {when(clock.due)}"
        )
    if c.days < 1:
        raise _reject("an extension is at least 1 day")
    extra = Budget(c.days * DAY, clock.budget.working)
    limit = extension_limit(s.terms, clock)
    if extra.seconds > limit.seconds:
        raise _reject(
            f"an extension of {extra.human()} exceeds the limit of {limit.human()} "
            f"(at most the original {clock.budget.human()} and {s.terms.extension_max.human()})"
        )
    ctx.emit(
        ev.ExtensionRequested,
        assignment_id=a.id,
        department=a.department,
        extra=extra,
        reason=c.reason,
    )


def _approve_extension(ctx: _Ctx, c: cmd.ApproveExtension) -> None:
    a = _own(ctx, c.assignment_id, None)
    s = ctx.s
    if a.requested is None:
        raise _reject(f"no extension request is pending on assignment {a.id}")
    clock = s.clock(f"{a.id}.{Step.RESOLVE}")
    if not c.approved or clock is None:
        ctx.emit(ev.ExtensionDenied, assignment_id=a.id, department=a.department, note=c.note)
        return
    new = extend_clock(ctx.cal, clock, a.requested, yellow_at=s.terms.yellow_at, now=ctx.now)
    ctx.emit(
        ev.ExtensionApproved,
        assignment_id=a.id,
        department=a.department,
        extra=a.requested,
        due=new.due,
        note=c.note,
        clocks=(new,),
    )


def _suspend(ctx: _Ctx, c: cmd.Suspend) -> None:
    s = ctx.s
    if s.suspended_at is not None:
        raise _reject(f"case {s.case_id} is already suspended (挂起) since {when(s.suspended_at)}")
    if not c.reason.strip():
        raise _reject("suspending (挂起) needs a reason")
    ctx.emit(
        ev.CaseSuspended, reason=c.reason, clocks=tuple(pause_clock(k, ctx.now) for k in s.clocks)
    )


def _resume(ctx: _Ctx, c: cmd.Resume) -> None:
    s = ctx.s
    if s.suspended_at is None:
        raise _reject(f"case {s.case_id} is not suspended")
    ctx.emit(
        ev.CaseResumed,
        note=c.note,
        paused_seconds=clock_elapsed(ctx.cal, s.suspended_at, ctx.now, False).seconds,
        clocks=tuple(resume_clock(ctx.cal, k, ctx.now) for k in s.clocks),
    )


# -- step 5: feedback ------------------------------------------------------------------


def _finish(ctx: _Ctx, a: Assignment, outcome: str, note: str) -> None:
    if ctx.s.suspended_at is not None:
        raise _reject(
            f"case {ctx.s.case_id} is suspended (挂起) since {when(ctx.s.suspended_at)}: "
            "resume it first"
        )
    ctx.emit(
        ev.AssignmentHandled,
        assignment_id=a.id,
        department=a.department,
        role=a.role,
        outcome=outcome,
        note=note,
        cleared=_clock_ids(ctx.s, a.id),
    )
    s = ctx.s
    lead = s.lead
    done = (A.HANDLED, A.RETURNED)
    if (
        s.status in WORKING
        and lead is not None
        and lead.status is A.HANDLED
        and all(x.status in done for x in s.assignments if x.role is Role.SUPPORT)
    ):
        clocks = (ctx.clock(Step.FEEDBACK, s.terms.feedback),) if s.terms.feedback else ()
        cleared = ("case.ladder",) if s.clock("case.ladder") else ()
        ctx.emit(ev.CaseHandled, clocks=clocks, cleared=cleared)


def _handle(ctx: _Ctx, c: cmd.Handle) -> None:
    a = _own(ctx, c.assignment_id, c.department)
    if a.role is not Role.LEAD:
        raise _reject(
            f"assignment {a.id} is a supporting one (配合): report its part with support_done"
        )
    a = _working_on(ctx, c.assignment_id, c.department)
    if not c.outcome.strip():
        raise _reject("handling (办结) needs an outcome")
    _finish(ctx, a, c.outcome, c.note)


def _support_done(ctx: _Ctx, c: cmd.SupportDone) -> None:
    a = _own(ctx, c.assignment_id, c.department)
    if a.role is not Role.SUPPORT:
        raise _reject(f"assignment {a.id} is the lead (牵头): report the outcome with handle")
    a = _working_on(ctx, c.assignment_id, c.department)
    _finish(ctx, a, "", c.note)


# -- step 6: evaluate ------------------------------------------------------------------


def _check(ctx: _Ctx, c: cmd.Check) -> None:
    ctx.emit(ev.CheckStarted, note=c.note)


def _close(ctx: _Ctx, c: cmd.Close) -> None:
    s = ctx.s
    ctx.emit(ev.CaseClosed, note=c.note, overdue=s.overdue, cleared=tuple(k.id for k in s.clocks))


def _redo_clock(ctx: _Ctx) -> tuple[Clock, ...]:
    lead = ctx.s.lead
    if lead is None:
        return ()
    return (ctx.clock(Step.RESOLVE, ctx.s.terms.resolve, lead.id),)


def _rework(ctx: _Ctx, c: cmd.Rework) -> None:
    if not c.reason.strip():
        raise _reject("rework (返工) needs a reason")
    cleared = ("case.feedback",) if ctx.s.clock("case.feedback") else ()
    ctx.emit(ev.ReworkOrdered, reason=c.reason, clocks=_redo_clock(ctx), cleared=cleared)


def _evaluate(ctx: _Ctx, c: cmd.Evaluate) -> None:
    ctx.emit(ev.CaseEvaluated, result=c.result, note=c.note)
    if c.result is not cmd.Satisfaction.DISSATISFIED:
        return
    s = ctx.s
    if s.redo < s.esc.redo_times:
        _change_priority(
            ctx,
            raise_priority(s.priority, s.esc.reopen_raise),
            "reopened after a dissatisfied callback",
            hot_spot=True,
        )
        ctx.emit(
            ev.CaseReopened,
            redo=s.redo + 1,
            reason=c.note or "dissatisfied callback (不满意)",
            clocks=_redo_clock(ctx),
        )
        if ctx.s.lead is None and ctx.s.routing is not None:
            _dispatch(ctx, ctx.s.routing)
        return
    up = level_up(s.level, s.esc.supervise_up)
    ctx.emit(
        ev.Supervised,
        level=up,
        region=region_at(s.region, up),
        reason=f"dissatisfied again after {s.redo} redo(s) (重办)",
    )


# -- escalation ------------------------------------------------------------------------


def _move_level(
    ctx: _Ctx, target: Level, reason: str, *, down: bool = False, also: tuple[Clock, ...] = ()
) -> None:
    """Change the coordinating level; the ladder (四级七天) restarts at a rung level.
    ``also``: clocks to update in the same event (a fired take-over)."""
    s = ctx.s
    clocks: tuple[Clock, ...] = ()
    cleared: tuple[str, ...] = ()
    rung = next((r for r in s.ladder if r.level == target), None)
    if rung is not None and s.status in WORKING | {S.VERIFYING, S.REGISTERED, S.REPORTED}:
        clocks = (ctx.clock(Step.LADDER, rung.stay),)
    elif s.clock("case.ladder"):
        cleared = ("case.ladder",)
    ctx.emit(
        ev.Deescalated if down else ev.Escalated,
        from_level=s.level,
        to_level=target,
        region=region_at(s.region, target),
        reason=reason,
        clocks=clocks + also,
        cleared=cleared,
    )


def _supervise(ctx: _Ctx, c: cmd.Supervise) -> None:
    s = ctx.s
    level = c.level or level_up(s.level, s.esc.supervise_up)
    if level >= s.level and s.level is not Level.CITY:
        raise _reject(
            f"supervision (督办) comes from above: "
            f"{level.name.lower()} is not above {s.level.name.lower()}"
        )
    ctx.emit(ev.Supervised, level=level, region=region_at(s.region, level), reason=c.note or "督办")


def _escalate(ctx: _Ctx, c: cmd.Escalate) -> None:
    s = ctx.s
    target = c.level or level_up(s.level)
    if target >= s.level:
        raise _reject(
            f"case {s.case_id} is coordinated at {s.level.name.lower()}: "
            f"cannot escalate to {target.name.lower()}"
        )
    if not c.reason.strip():
        raise _reject("escalation needs a reason")
    _move_level(ctx, target, c.reason)


def _deescalate(ctx: _Ctx, c: cmd.Deescalate) -> None:
    s = ctx.s
    if c.by_region != s.region_code:
        raise _reject(
            f"only the dispatcher of {s.region_code} ({s.level.name.lower()}) "
            f"may de-escalate case {s.case_id}, "
            f"not {c.by_region}"
        )
    if not c.reason.strip():
        raise _reject("de-escalation needs a reason")
    if c.level <= s.level:
        raise _reject(f"{c.level.name.lower()} is not below {s.level.name.lower()}")
    if c.level > level_of(s.region):
        raise _reject(
            f"case {s.case_id} is located only to {s.region}: "
            f"it cannot go down to {c.level.name.lower()}"
        )
    _move_level(ctx, c.level, c.reason, down=True)


# -- timers ----------------------------------------------------------------------------


def _fire(ctx: _Ctx, c: cmd.FireDeadline) -> None:
    """Yellow card, red card (+ supervision), take-over (吹哨) or the ladder's climb."""
    s = ctx.state
    if s is None or s.status in FINAL:
        return
    clock = s.clock(c.deadline_id)
    try:
        stage = Stage[c.kind.upper()]
    except KeyError:
        raise _reject(f"unknown deadline kind {c.kind!r} (yellow, red, over)") from None
    if clock is None or clock.paused is not None or clock.fired & stage:
        return
    instant = {Stage.YELLOW: clock.warn, Stage.RED: clock.due, Stage.OVER: clock.over}[stage]
    if instant is None or instant != c.due or ctx.now < instant:
        return
    fired = replace(clock, fired=clock.fired | stage)
    a = s.assignment(clock.assignment)
    dept = a.department if a else ""
    what = f"{clock.step} of {clock.assignment} ({dept})" if a else f"case {clock.step}"
    if clock.step is Step.LADDER:
        _climb(ctx, fired)
    elif stage is Stage.OVER:
        reason = f"take-over (吹哨): {what} overdue since {when(clock.due)}"
        if s.level is Level.CITY:
            ctx.emit(
                ev.Supervised,
                level=Level.CITY,
                region=s.region_code,
                reason=reason,
                clocks=(fired,),
            )
        else:
            _move_level(ctx, level_up(s.level), reason, also=(fired,))
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
            up = level_up(s.level, s.esc.supervise_up)
            ctx.emit(
                ev.Supervised,
                level=up,
                region=region_at(s.region, up),
                reason=f"red card (超期): {what} was due {when(clock.due)}",
            )


def _climb(ctx: _Ctx, fired: Clock) -> None:
    s = ctx.s
    index = next((i for i, r in enumerate(s.ladder) if r.level == s.level), None)
    if index is not None and index + 1 < len(s.ladder):
        rung = s.ladder[index]
        _move_level(
            ctx,
            s.ladder[index + 1].level,
            f"四级七天: unresolved after {rung.stay.human()} at {rung.level.name.lower()}",
        )
        return
    up = level_up(s.level)
    ctx.emit(
        ev.Supervised,
        level=up,
        region=region_at(s.region, up),
        reason=f"四级七天: unresolved after the last rung at {s.level.name.lower()}",
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
