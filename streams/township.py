"""A township's correlation state as the fold of its cases' events.

Triage remembers, per township (乡镇/街道), the open cases an event may join,
the recurrence history and the event ids already seen
(:class:`streams.correlate.TownshipState`). That memory is not written beside
the case log: it is folded from it, event by event, with :func:`evolve` — the
same function whether the writer has just decided the events or is reading
them back after a crash. So the state can never disagree with the log.

What changes it:

- ``case_opened``, ``event_linked`` and ``alarm_repeated`` decided by triage:
  the event is remembered (:func:`streams.correlate.record`), at the time triage
  decided it — the earlier of the decision's time and when the event happened;
- ``event_forwarded`` decided by triage: the event went to a case that had been
  merged meanwhile; it is remembered as joining that case;
- ``case_closed``, ``case_rejected``, ``case_merged``: the case can no longer be
  joined (:func:`streams.correlate.forget_case`); a later event about the same
  place opens a new case, which recurrence counts.

Events caused by anyone else (operators, departments, timers, another case's
follow-up) leave it as it is.
"""

from __future__ import annotations

from datetime import datetime

from streams.cases import events as ev
from streams.correlate import Match, TownshipState, forget_case, record
from streams.opening import TRIAGE_ACTOR
from streams.records import Priority, PriorityDecision
from streams.triage_rules import TriageRules

_ENDINGS = (ev.CaseClosed, ev.CaseRejected, ev.CaseMerged)


def township_of(case_id: str) -> str:
    """The township (or county) code a case id carries: ``C20261126-371502004-1a2b3c4d``
    → ``371502004``, also for a case split off another (``…-1a2b3c4d-S1``)."""
    parts = case_id.split("-")
    if len(parts) < 3 or not parts[1].isdigit():
        raise ValueError(f"{case_id!r} is not a case id (C<date>-<township>-<digest>)")
    return parts[1]


def evolve(state: TownshipState, event: ev.CaseEvent, rules: TriageRules) -> TownshipState:
    """The township's state after one event of one of its cases."""
    if isinstance(event, _ENDINGS):
        return forget_case(state, event.case_id)
    if event.actor != TRIAGE_ACTOR:
        return state
    if isinstance(event, ev.CaseOpened):
        return record(
            state,
            event.event,
            event.location,
            event.classification,
            PriorityDecision(priority=event.priority),
            Match(kind="new"),
            rules,
            decided_at(event.at, event.event.occurred_at),
            case_id=event.case_id,
            joinable=event.routing.dispatch,
        )
    if isinstance(event, ev.EventLinked | ev.AlarmRepeated | ev.EventForwarded):
        judged = _judged_priority(event)
        return record(
            state,
            event.event,
            None,
            None,
            PriorityDecision(priority=judged if judged is not None else Priority.P4),
            Match(kind="repeat" if isinstance(event, ev.AlarmRepeated) else "join",
                  case_id=event.case_id),
            rules,
            decided_at(event.at, event.event.occurred_at),
        )
    return state


def _judged_priority(event: ev.EventLinked | ev.AlarmRepeated | ev.EventForwarded
                     ) -> Priority | None:
    if isinstance(event, ev.EventForwarded):
        return event.priority.priority if event.priority is not None else None
    return event.event_priority


def decided_at(at: datetime, occurred_at: datetime) -> datetime:
    """The time triage decides an event at: when the writer took it, or when the event
    happened if that is earlier — so a backlog or a replay decides as live traffic did."""
    return min(at, occurred_at)

