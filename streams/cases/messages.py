"""What the events of one decision mean for the outside: department queues
(``dept.<code>``) and the command center's alerts (``command.alerts``).

Both take the state *after* the events and return payloads as dictionaries of
what msgspec encodes as JSON as it is (datetimes, enums, tuples): the writer
only picks the topic and encodes them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from streams.cases import events as ev
from streams.cases.state import AssignmentStatus, CaseState
from streams.jurisdiction import ancestor_or_none
from streams.records import Level

Payload = dict[str, Any]


def _case(state: CaseState, event: ev.CaseEvent) -> Payload:
    return {
        "case_id": state.case_id,
        "seq": event.seq,
        "at": event.at,
        "priority": state.priority.label,
        "category": state.category,
        "category_name": state.category_name,
        "title": state.title,
        "region": state.region,
        "level": state.level.name.lower(),
        "level_code": state.region_code,
    }


def _place(state: CaseState) -> Payload:
    """Where the case is: grid, the jurisdictions above it, coordinates, address."""
    return {
        "grid": state.grid,
        "township": ancestor_or_none(state.region, Level.TOWNSHIP),
        "county": ancestor_or_none(state.region, Level.COUNTY),
        "location": {"lon": state.lon, "lat": state.lat, "address": state.address},
    }


def _deadlines(event: ev.CaseEvent, assignment_id: str) -> dict[str, Any]:
    return {str(k.step): k.due for k in event.clocks if k.assignment == assignment_id}


def _active(state: CaseState) -> list[str]:
    """Departments still holding an open assignment."""
    done = (AssignmentStatus.HANDLED, AssignmentStatus.RETURNED)
    return list(dict.fromkeys(a.department for a in state.assignments if a.status not in done))


def _everyone(state: CaseState) -> list[str]:
    return list(dict.fromkeys(a.department for a in state.assignments))


def department_messages(
    state: CaseState, events: Sequence[ev.CaseEvent]
) -> list[tuple[str, Payload]]:
    """``(department_code, payload)`` for each thing a department must see: a new
    assignment (with its deadlines), a cancellation (re-route), supervision and
    escalation, a ruling, extension decisions, warnings, rework, closing."""
    out: list[tuple[str, Payload]] = []

    def send(departments: Sequence[str], kind: str, event: ev.CaseEvent, **fields: Any) -> None:
        for department in departments:
            out.append(
                (department, {**_case(state, event), "kind": kind, **fields})
            )

    for e in events:
        if isinstance(e, ev.AssignmentDispatched):
            a = e.assignment
            send(
                [a.department],
                "assignment",
                e,
                department=a.department,
                assignment_id=a.id,
                role=a.role,
                ruled=a.ruled,
                dispatched_at=a.dispatched_at,
                return_by=a.return_by,
                deadlines=_deadlines(e, a.id),
                summary=state.summary,
                source_event_ids=state.event_ids,
                **_place(state),
            )
        elif isinstance(e, ev.AssignmentCancelled):
            send([e.department], "cancelled", e, assignment_id=e.assignment_id, reason=e.reason)
        elif isinstance(e, ev.Supervised | ev.Escalated):
            kind = "supervision" if isinstance(e, ev.Supervised) else "escalation"
            level = e.level if isinstance(e, ev.Supervised) else e.to_level
            send(
                _active(state),
                kind,
                e,
                by_level=level.name.lower(),
                by_region=e.region,
                reason=e.reason,
            )
        elif isinstance(e, ev.RulingMade):
            parties = list(dict.fromkeys((*e.returned_by, e.lead, *e.supports)))
            send(
                parties,
                "ruling",
                e,
                region=e.region,
                lead=e.lead,
                supports=e.supports,
                reason=e.reason,
            )
        elif isinstance(e, ev.ExtensionApproved):
            send([e.department], "extension_approved", e, assignment_id=e.assignment_id, due=e.due)
        elif isinstance(e, ev.ExtensionDenied):
            send([e.department], "extension_denied", e, assignment_id=e.assignment_id, note=e.note)
        elif isinstance(e, ev.YellowCard | ev.RedCard) and e.department:
            kind = "yellow_card" if isinstance(e, ev.YellowCard) else "red_card"
            send([e.department], kind, e, assignment_id=e.assignment_id, step=e.step, due=e.due)
        elif isinstance(e, ev.ReworkOrdered | ev.CaseReopened):
            lead = state.lead
            if lead is not None:
                kind = "rework" if isinstance(e, ev.ReworkOrdered) else "reopened"
                send(
                    [lead.department],
                    kind,
                    e,
                    assignment_id=lead.id,
                    reason=e.reason,
                    deadlines=_deadlines(e, lead.id),
                )
        elif isinstance(e, ev.PriorityChanged):
            for a in state.assignments:
                if a.status not in (AssignmentStatus.HANDLED, AssignmentStatus.RETURNED):
                    send(
                        [a.department],
                        "priority_changed",
                        e,
                        assignment_id=a.id,
                        old=e.old.label,
                        new=e.new.label,
                        deadlines=_deadlines(e, a.id),
                    )
        elif isinstance(e, ev.CaseSuspended | ev.CaseResumed):
            kind = "suspended" if isinstance(e, ev.CaseSuspended) else "resumed"
            send(_active(state), kind, e)
        elif isinstance(e, ev.CaseClosed) and not e.self_resolved:
            send(_everyone(state), "closed", e, note=e.note)
    return out


def alert_messages(state: CaseState, events: Sequence[ev.CaseEvent]) -> list[Payload]:
    """Payloads for ``command.alerts``: serious cases opened or raised (with the
    command centers and departments to notify together), red cards,
    supervision, escalation and rulings."""
    out: list[Payload] = []

    def alert(kind: str, event: ev.CaseEvent, **fields: Any) -> None:
        out.append({**_case(state, event), "kind": kind, **fields})

    for e in events:
        if isinstance(e, ev.CaseOpened | ev.PriorityChanged) and e.fan_out is not None:
            alert(
                "serious_case" if isinstance(e, ev.CaseOpened) else "priority_raised",
                e,
                centers=[
                    {"level": lv.name.lower(), "region": code} for lv, code in e.fan_out.centers
                ],
                departments=e.fan_out.departments,
            )
        elif isinstance(e, ev.RedCard):
            alert(
                "red_card",
                e,
                deadline_id=e.deadline_id,
                step=e.step,
                assignment_id=e.assignment_id,
                department=e.department,
                due=e.due,
            )
        elif isinstance(e, ev.Supervised):
            alert(
                "supervision", e, by_level=e.level.name.lower(), by_region=e.region, reason=e.reason
            )
        elif isinstance(e, ev.Escalated | ev.Deescalated):
            alert(
                "escalation" if isinstance(e, ev.Escalated) else "deescalation",
                e,
                from_level=e.from_level.name.lower(),
                to_level=e.to_level.name.lower(),
                region=e.region,
                reason=e.reason,
            )
        elif isinstance(e, ev.RulingRequested):
            alert(
                "ruling_required",
                e,
                region=e.region,
                ruling_level=e.level.name.lower(),
                returns=e.returns,
            )
    return out
