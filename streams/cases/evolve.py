"""``apply(state, event) -> state``: the case state is the fold of its events.

Pure and rule-free: everything computed (deadlines, budgets, levels) is in the
events, so replaying the log rebuilds exactly the live state.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Any

from msgspec.structs import replace

from streams.cases import events as ev
from streams.cases.state import (
    RECENT_COMMANDS,
    SUMMARY_CHARS,
    AssignmentStatus,
    CaseState,
    CaseStatus,
)
from streams.records import Role

A = AssignmentStatus
COMMANDS_KEPT = 4096  # digests of the command ids hashed most recently


@lru_cache(maxsize=COMMANDS_KEPT)
def command_hash(command_id: str) -> int:
    """48-bit digest of a command id (what the state remembers for idempotency).
    Kept for the ids hashed recently: a command is checked once and each of its
    events is applied with its id, here and again in the projection."""
    return int.from_bytes(hashlib.blake2b(command_id.encode(), digest_size=6).digest(), "big")


def apply(state: CaseState | None, event: ev.CaseEvent) -> CaseState:
    """The state after ``event``; ``state`` is None only for :class:`CaseOpened`."""
    if state is None:
        if not isinstance(event, ev.CaseOpened):
            raise ValueError(
                f"case {event.case_id}: first event must be case_opened, not {type(event).__name__}"
            )
        state = _opened(event)
    else:
        if event.seq != state.seq + 1:
            raise ValueError(f"case {event.case_id}: event seq {event.seq} after {state.seq}")
        handler = _HANDLERS.get(type(event))
        if handler is not None:
            state = handler(state, event)
    return _common(state, event)


def fold(events: Iterable[ev.CaseEvent], state: CaseState | None = None) -> CaseState | None:
    """Apply events in order."""
    for event in events:
        state = apply(state, event)
    return state


def _common(state: CaseState, event: ev.CaseEvent) -> CaseState:
    clocks = state.clocks
    if event.cleared:
        gone = set(event.cleared)
        clocks = tuple(c for c in clocks if c.id not in gone)
    if event.clocks:
        new = {c.id: c for c in event.clocks}
        clocks = tuple(new.pop(c.id, c) for c in clocks) + tuple(new.values())
    recent = state.recent
    if event.command_id:
        digest = command_hash(event.command_id)
        if not recent or recent[-1] != digest:
            recent = (recent + (digest,))[-RECENT_COMMANDS:]
    return replace(state, seq=event.seq, clocks=clocks, recent=recent)


def _opened(e: ev.CaseOpened) -> CaseState:
    return CaseState(
        case_id=e.case_id,
        seq=0,
        status=CaseStatus.VERIFYING if e.needs_verification else CaseStatus.REPORTED,
        priority=e.priority,
        category=e.classification.category,
        region=e.location.region_code,
        level=e.level,
        base_level=e.level,
        opened_at=e.at,
        terms=e.terms,
        esc=e.escalation_terms,
        title=(e.event.title or e.event.text)[:60],
        category_name=e.classification.name,
        summary=e.event.text[:SUMMARY_CHARS],
        grid=e.location.grid_code,
        lon=e.location.lon,
        lat=e.location.lat,
        address=(e.event.address or "")[:SUMMARY_CHARS] or None,
        event_ids=(e.event.event_id,),
        routing=e.routing,
        hot_spot=e.hot_spot,
        ladder=e.ladder,
        verifying=e.needs_verification,
    )


def _with(state: CaseState, assignment_id: str, **changes: object) -> CaseState:
    return replace(
        state,
        assignments=tuple(
            replace(a, **changes) if a.id == assignment_id else a for a in state.assignments
        ),
    )


def _linked(s: CaseState, e: ev.EventLinked) -> CaseState:
    return replace(s, event_ids=s.event_ids + (e.event.event_id,))


def _repeated(s: CaseState, e: ev.AlarmRepeated) -> CaseState:
    return replace(s, repeats=s.repeats + 1)


def _absorbed(s: CaseState, e: ev.CaseAbsorbed) -> CaseState:
    return replace(s, event_ids=s.event_ids + e.event_ids, absorbed=(*s.absorbed, e.source))


def _released(s: CaseState, e: ev.AbsorbReleased) -> CaseState:
    gone = set(e.event_ids)
    return replace(
        s,
        event_ids=tuple(i for i in s.event_ids if i not in gone),
        absorbed=tuple(c for c in s.absorbed if c != e.source),
    )


def _merged(s: CaseState, e: ev.CaseMerged) -> CaseState:
    return replace(s, status=CaseStatus.MERGED, merged_into=e.into, suspended_at=None)


def _split(s: CaseState, e: ev.EventsSplit) -> CaseState:
    gone = set(e.event_ids)
    return replace(s, event_ids=tuple(i for i in s.event_ids if i not in gone), splits=s.splits + 1)


def _priority(s: CaseState, e: ev.PriorityChanged) -> CaseState:
    return replace(
        s, priority=e.new, terms=e.terms, esc=e.escalation_terms, hot_spot=s.hot_spot or e.hot_spot
    )


def _registered(s: CaseState, e: ev.CaseRegistered) -> CaseState:
    # a case dispatched while it waited for verification keeps its working status
    working = bool(s.assignments) and s.status is not CaseStatus.VERIFYING
    return replace(
        s,
        status=s.status if working else CaseStatus.REGISTERED,
        category=e.classification.category if e.classification else s.category,
        category_name=e.classification.name if e.classification else s.category_name,
        routing=e.routing or s.routing,
        terms=e.terms or s.terms,
        verifying=False,
    )


def _reclassified(s: CaseState, e: ev.CaseReclassified) -> CaseState:
    return replace(
        s,
        category=e.classification.category,
        category_name=e.classification.name,
        terms=e.terms or s.terms,
        verifying=False,
    )


def _dispatched(s: CaseState, e: ev.AssignmentDispatched) -> CaseState:
    status = s.status
    if e.assignment.role is Role.LEAD:
        status = CaseStatus.DISPATCHED
    return replace(
        s,
        status=status,
        routing=None,
        assignments=s.assignments + (e.assignment,),
        next_assignment=s.next_assignment + 1,
    )


def _cancelled(s: CaseState, e: ev.AssignmentCancelled) -> CaseState:
    return replace(s, assignments=tuple(a for a in s.assignments if a.id != e.assignment_id))


def _claimed(s: CaseState, e: ev.AssignmentClaimed) -> CaseState:
    s = _with(s, e.assignment_id, status=A.ACCEPTED)
    if _is_lead(s, e.assignment_id) and s.status is CaseStatus.DISPATCHED:
        s = replace(s, status=CaseStatus.ACCEPTED)
    return s


def _returned(s: CaseState, e: ev.AssignmentReturned) -> CaseState:
    s = _with(s, e.assignment_id, status=A.RETURNED, requested=None)
    if e.role is Role.LEAD:
        lead = s.assignment(e.assignment_id)
        disputed = s.disputed + tuple(
            r for r in (lead.region if lead else None, e.suggested_region) if r
        )
        s = replace(s, status=CaseStatus.RETURNED, lead_returns=e.lead_returns, disputed=disputed)
    return s


def _ruling_requested(s: CaseState, e: ev.RulingRequested) -> CaseState:
    return replace(s, ruling=e.region)


def _ruled(s: CaseState, e: ev.RulingMade) -> CaseState:
    return replace(s, ruling=None, disputed=())


def _working(s: CaseState, assignment_id: str) -> CaseState:
    s = _with(s, assignment_id, status=A.IN_PROGRESS)
    if _is_lead(s, assignment_id) and s.status in (CaseStatus.ACCEPTED, CaseStatus.DISPATCHED):
        s = replace(s, status=CaseStatus.IN_PROGRESS)
    return s


def _progress(s: CaseState, e: ev.ProgressReported) -> CaseState:
    return _working(s, e.assignment_id)


def _on_site(s: CaseState, e: ev.OnSiteReported) -> CaseState:
    return _with(_working(s, e.assignment_id), e.assignment_id, on_site=True)


def _ext_requested(s: CaseState, e: ev.ExtensionRequested) -> CaseState:
    return _with(_working(s, e.assignment_id), e.assignment_id, requested=e.extra)


def _ext_approved(s: CaseState, e: ev.ExtensionApproved) -> CaseState:
    a = s.assignment(e.assignment_id)
    return _with(s, e.assignment_id, requested=None, extensions=(a.extensions if a else 0) + 1)


def _ext_denied(s: CaseState, e: ev.ExtensionDenied) -> CaseState:
    return _with(s, e.assignment_id, requested=None)


def _suspended(s: CaseState, e: ev.CaseSuspended) -> CaseState:
    return replace(s, suspended_at=e.at)


def _resumed(s: CaseState, e: ev.CaseResumed) -> CaseState:
    return replace(s, suspended_at=None)


def _assignment_handled(s: CaseState, e: ev.AssignmentHandled) -> CaseState:
    s = _with(s, e.assignment_id, status=A.HANDLED, requested=None)
    if e.role is Role.LEAD and s.status in (CaseStatus.ACCEPTED, CaseStatus.DISPATCHED):
        s = replace(s, status=CaseStatus.IN_PROGRESS)
    return s


def _status(status: CaseStatus) -> Callable[[CaseState, ev.CaseEvent], CaseState]:
    return lambda s, e: replace(s, status=status)


def _rework(s: CaseState, e: ev.CaseEvent) -> CaseState:
    lead = s.lead
    if lead is not None:
        s = _with(s, lead.id, status=A.IN_PROGRESS)
    return s


def _reworked(s: CaseState, e: ev.ReworkOrdered) -> CaseState:
    return replace(_rework(s, e), status=CaseStatus.REWORK)


def _reopened(s: CaseState, e: ev.CaseReopened) -> CaseState:
    return replace(_rework(s, e), status=CaseStatus.REOPENED, redo=e.redo)


def _red(s: CaseState, e: ev.RedCard) -> CaseState:
    return replace(s, overdue=True)


def _moved(s: CaseState, e: ev.Escalated | ev.Deescalated) -> CaseState:
    return replace(s, level=e.to_level)


def _is_lead(s: CaseState, assignment_id: str) -> bool:
    a = s.assignment(assignment_id)
    return a is not None and a.role is Role.LEAD


# Each handler takes its own event type, which its key guarantees; ``Any`` because a
# dict type cannot tie a value's parameter to its key.
_HANDLERS: dict[type[ev.CaseEvent], Callable[[CaseState, Any], CaseState]] = {
    ev.EventLinked: _linked,
    ev.AlarmRepeated: _repeated,
    ev.PriorityChanged: _priority,
    ev.CaseRegistered: _registered,
    ev.CaseReclassified: _reclassified,
    ev.CaseRejected: lambda s, e: replace(s, status=CaseStatus.REJECTED, verifying=False),
    ev.CaseAbsorbed: _absorbed,
    ev.AbsorbReleased: _released,
    ev.CaseMerged: _merged,
    ev.EventsSplit: _split,
    ev.AssignmentDispatched: _dispatched,
    ev.AssignmentCancelled: _cancelled,
    ev.AssignmentClaimed: _claimed,
    ev.AssignmentReturned: _returned,
    ev.RulingRequested: _ruling_requested,
    ev.RulingMade: _ruled,
    ev.ProgressReported: _progress,
    ev.OnSiteReported: _on_site,
    ev.ExtensionRequested: _ext_requested,
    ev.ExtensionApproved: _ext_approved,
    ev.ExtensionDenied: _ext_denied,
    ev.CaseSuspended: _suspended,
    ev.CaseResumed: _resumed,
    ev.AssignmentHandled: _assignment_handled,
    ev.CaseHandled: _status(CaseStatus.HANDLED),
    ev.CheckStarted: _status(CaseStatus.CHECKING),
    ev.CaseClosed: _status(CaseStatus.CLOSED),
    ev.ReworkOrdered: _reworked,
    ev.CaseEvaluated: _status(CaseStatus.EVALUATED),
    ev.CaseReopened: _reopened,
    ev.RedCard: _red,
    ev.Escalated: _moved,
    ev.Deescalated: _moved,
}
