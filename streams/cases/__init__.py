"""The case engine (steps 3–6 of the closed loop): commands in, events out.

- :func:`decide` ``(state, command, policy, calendar, now) -> list[CaseEvent]``
- :func:`apply` ``(state, event) -> CaseState`` — the state is the fold of the events
- :func:`pending_deadlines` / :func:`next_wakeup` — the timers a case needs
- :func:`department_messages` / :func:`alert_messages` — what the outside must see
- :func:`follow_ups` / :func:`compensations` — commands for other cases (merge, split)
"""

from streams.cases import commands, events
from streams.cases.commands import *  # noqa: F403
from streams.cases.commands import AnyCommand, Command, Satisfaction, command_decoder
from streams.cases.events import *  # noqa: F403
from streams.cases.events import AnyEvent, CaseEvent, event_decoder
from streams.cases.evolve import apply, fold
from streams.cases.follow_ups import compensations, follow_up_id, follow_ups
from streams.cases.machine import (
    CasePolicy,
    allowed,
    decide,
    decide_applied,
    load_case_policy,
    when,
)
from streams.cases.messages import alert_messages, department_messages
from streams.cases.state import (
    Assignment,
    AssignmentStatus,
    CaseClocks,
    CaseState,
    CaseStatus,
    Deadline,
    next_wakeup,
    pending_deadlines,
)

__all__ = [
    "AnyCommand",
    "AnyEvent",
    "Assignment",
    "AssignmentStatus",
    "CaseClocks",
    "CaseEvent",
    "CasePolicy",
    "CaseState",
    "CaseStatus",
    "Command",
    "Deadline",
    "Satisfaction",
    "alert_messages",
    "allowed",
    "apply",
    "command_decoder",
    "compensations",
    "decide",
    "decide_applied",
    "department_messages",
    "event_decoder",
    "fold",
    "follow_up_id",
    "follow_ups",
    "load_case_policy",
    "next_wakeup",
    "pending_deadlines",
    "when",
]
# every command and event by name, so `from streams.cases import Register` type-checks
__all__ += commands.__all__
__all__ += events.__all__
