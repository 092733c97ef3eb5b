"""The commands one case's decision sends to another case (merge 合并, split 拆分).

A case's writer never touches another case's state: when a decision concerns a
second case, the agent sends these commands to ``cases.commands`` under that
case's id, and the second case's own writer decides them. Both functions are
pure: the agent calls :func:`follow_ups` after a command was applied and
:func:`compensations` after one was refused.

================================  ==========================================================
after                             the engine sends
================================  ==========================================================
``CaseAbsorbed`` on A             ``MarkMerged(into=A)`` to the absorbed case B
``MarkMerged`` refused by B       ``ReleaseCase(source=B)`` to A: the events go back to B
``EventForwarded`` on merged B    ``LinkEvent`` to the case B was merged into
``EventsSplit`` on A              ``OpenCase`` of the new case with the events split off
================================  ==========================================================

Follow-up command ids derive from the command that caused them
(:func:`follow_up_id`), so a repeated decision asks for the same follow-up and
the other case ignores the repeat; the API waits for a follow-up's answer by
that id.
"""

from __future__ import annotations

from collections.abc import Sequence

from streams.cases import commands as cmd
from streams.cases import events as ev
from streams.cases.state import CaseState, CaseStatus
from streams.jurisdiction import level_of
from streams.records import Classification, Location, PriorityDecision, Role, Routing

MERGE, RELEASE, FORWARD, OPEN = "merge", "release", "forward", "open"


def follow_up_id(command_id: str, step: str) -> str:
    """The id of the ``step`` command (merge, release, forward, open) caused by ``command_id``."""
    return f"{command_id}:{step}"


def follow_ups(
    state: CaseState, command: cmd.Command, events: Sequence[ev.CaseEvent]
) -> list[cmd.Command]:
    """Commands for other cases caused by ``events`` (``state``: the case after them)."""
    out: list[cmd.Command] = []
    for e in events:
        if isinstance(e, ev.CaseAbsorbed) and isinstance(command, cmd.AbsorbCase):
            out.append(
                cmd.MarkMerged(
                    case_id=e.source,
                    command_id=follow_up_id(command.command_id, MERGE),
                    actor=command.actor,
                    at=e.at,
                    into=state.case_id,
                    event_ids=e.event_ids,
                    reason=command.reason,
                )
            )
        elif isinstance(e, ev.EventForwarded):
            out.append(
                cmd.LinkEvent(
                    case_id=e.into,
                    command_id=follow_up_id(command.command_id, FORWARD),
                    actor=command.actor,
                    at=e.at,
                    event=e.event,
                    priority=e.priority,
                )
            )
        elif isinstance(e, ev.EventsSplit) and isinstance(command, cmd.SplitCase):
            out.append(_open_split(state, command, e))
    return out


def compensations(command: cmd.Command, reason: str) -> list[cmd.Command]:
    """Commands that undo what another case did for ``command``, refused with ``reason``."""
    if isinstance(command, cmd.MarkMerged):
        return [
            cmd.ReleaseCase(
                case_id=command.into,
                command_id=follow_up_id(command.command_id, RELEASE),
                actor=command.actor,
                at=command.at,
                source=command.case_id,
                event_ids=command.event_ids,
                reason=f"case {command.case_id} refused the merge: {reason}",
            )
        ]
    return []


def case_location(state: CaseState) -> Location:
    """Where a case is, as a location a new case can open at."""
    return Location(
        method="case",
        region_code=state.region,
        level=level_of(state.region),
        grid_code=state.grid,
        lon=state.lon,
        lat=state.lat,
    )


def case_routing(state: CaseState) -> Routing | None:
    """The departments of a case: its current team (lead and supports), else the
    routing waiting for dispatch; entering at its level. None if it has neither."""
    lead = state.lead
    if lead is not None:
        supports = tuple(
            dict.fromkeys(a.department for a in state.assignments if a.role is Role.SUPPORT)
        )
        lead_department = lead.department
    elif state.routing is not None:
        lead_department, supports = state.routing.lead, state.routing.supports
    else:
        return None
    return Routing(
        lead=lead_department,
        supports=tuple(d for d in supports if d != lead_department),
        entry_level=state.level,
        rule=f"split:{state.case_id}",
    )


def _open_split(state: CaseState, command: cmd.SplitCase, e: ev.EventsSplit) -> cmd.OpenCase:
    """The new case: the events split off, at the place of the case they left, with its
    category, priority and departments unless the operator gave others; it waits for
    verification (核实) if the case it left still does."""
    moved = set(e.event_ids)
    events = tuple({x.event_id: x for x in command.events if x.event_id in moved}.values())
    classification = command.classification or Classification(
        category=state.category,
        name=state.category_name,
        confidence=1.0,
        rule=f"split:{state.case_id}",
    )
    routing = command.routing or case_routing(state)
    assert routing is not None  # the split was refused otherwise
    return cmd.OpenCase(
        case_id=e.new_case_id,
        command_id=follow_up_id(command.command_id, OPEN),
        actor=command.actor,
        at=e.at,
        event=events[0],
        more_events=events[1:],
        location=case_location(state),
        classification=classification,
        priority=PriorityDecision(
            priority=state.priority, reasons=(f"split from {state.case_id}",)
        ),
        routing=routing,
        needs_verification=state.status is CaseStatus.VERIFYING,
        split_from=state.case_id,
    )


__all__ = [
    "case_location",
    "case_routing",
    "compensations",
    "follow_up_id",
    "follow_ups",
]
