"""Events of a case (``cases.events``): the full case log, in order.

Each event names its case, its sequence number in the case (1, 2, 3 …), when
it was decided (``at``), who caused it (``actor``) and the command it came from.
Events carry everything needed to evolve the state without the rules or the
calendar: ``clocks`` are the deadlines the event starts or moves (replacing
clocks of the same id), ``cleared`` the ones it stops. They encode to JSON with
a ``"type"`` field; decode with :data:`event_decoder`.
"""

from __future__ import annotations

from datetime import datetime

import msgspec

from streams.cases.commands import Satisfaction
from streams.cases.state import Assignment
from streams.escalation import EscalationTerms, FanOut, Rung
from streams.records import (
    Classification,
    Event,
    Level,
    Location,
    Priority,
    PriorityDecision,
    Role,
    Routing,
)
from streams.sla import Budget, Clock, Step, Terms


class CaseEvent(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, tag_field="type"):
    case_id: str
    seq: int
    at: datetime
    actor: str
    command_id: str = ""
    clocks: tuple[Clock, ...] = ()  # deadlines started or moved
    cleared: tuple[str, ...] = ()  # deadlines stopped (clock ids)


class CaseOpened(CaseEvent, frozen=True, kw_only=True, omit_defaults=True, tag="case_opened"):
    event: Event
    location: Location
    classification: Classification
    priority: Priority
    priority_reasons: tuple[str, ...] = ()
    routing: Routing
    level: Level
    needs_verification: bool = False
    hot_spot: bool = False
    terms: Terms
    escalation_terms: EscalationTerms
    ladder: tuple[Rung, ...] = ()
    fan_out: FanOut | None = None
    split_from: str | None = None  # the case its events were split off (拆分)


class EventLinked(CaseEvent, frozen=True, kw_only=True, omit_defaults=True, tag="event_linked"):
    event: Event
    event_priority: Priority | None = None  # the event's own priority, as triage judged it


class AlarmRepeated(CaseEvent, frozen=True, kw_only=True, omit_defaults=True, tag="alarm_repeated"):
    """A camera alarmed again about the case's incident (重复告警): the alarm is
    recorded on the case and folded into it, not linked as an event of its own."""

    event: Event
    event_priority: Priority | None = None


class PriorityChanged(CaseEvent, frozen=True, kw_only=True, omit_defaults=True,
                                 tag="priority_changed"):
    old: Priority
    new: Priority
    reason: str
    hot_spot: bool = False
    terms: Terms
    escalation_terms: EscalationTerms
    fan_out: FanOut | None = None


class CaseRegistered(CaseEvent, frozen=True, kw_only=True, omit_defaults=True,
                                tag="case_registered"):
    note: str = ""
    classification: Classification | None = None
    routing: Routing | None = None
    terms: Terms | None = None  # re-frozen when the category changed


class CaseReclassified(CaseEvent, frozen=True, kw_only=True, omit_defaults=True,
                                  tag="case_reclassified"):
    """The category corrected by an operator when re-routing (改派): ``classification``
    is the operator's, ``previous`` the category it replaces."""

    classification: Classification
    previous: str
    reason: str = ""
    terms: Terms | None = None  # re-frozen for the new category


class CaseRejected(CaseEvent, frozen=True, kw_only=True, omit_defaults=True, tag="case_rejected"):
    reason: str


class CaseAbsorbed(CaseEvent, frozen=True, kw_only=True, omit_defaults=True, tag="case_absorbed"):
    """合并: this case took the events of case ``source`` (its timeline: "absorbed case B")."""

    source: str
    event_ids: tuple[str, ...]
    reason: str


class AbsorbReleased(CaseEvent, frozen=True, kw_only=True, omit_defaults=True,
                                tag="absorb_released"):
    """Case ``source`` refused the merge: its events are no longer this case's."""

    source: str
    event_ids: tuple[str, ...]
    reason: str


class CaseMerged(CaseEvent, frozen=True, kw_only=True, omit_defaults=True, tag="case_merged"):
    """合并: this case ended, its events (``event_ids``) now held by case ``into``.
    Its open assignments were cancelled just before, its clocks stop here."""

    into: str
    event_ids: tuple[str, ...]
    reason: str


class EventForwarded(CaseEvent, frozen=True, kw_only=True, omit_defaults=True,
                                tag="event_forwarded"):
    """An event sent to this merged case after the merge, passed on to ``into``."""

    event: Event
    into: str
    priority: PriorityDecision | None = None


class EventsSplit(CaseEvent, frozen=True, kw_only=True, omit_defaults=True, tag="events_split"):
    """拆分: ``event_ids`` left this case for the new case ``new_case_id``."""

    event_ids: tuple[str, ...]
    new_case_id: str
    reason: str


class AssignmentDispatched(CaseEvent, frozen=True, kw_only=True, omit_defaults=True,
                                      tag="assignment_dispatched"):
    assignment: Assignment


class AssignmentCancelled(CaseEvent, frozen=True, kw_only=True, omit_defaults=True,
                                     tag="assignment_cancelled"):
    assignment_id: str
    department: str
    reason: str


class AssignmentClaimed(CaseEvent, frozen=True, kw_only=True, omit_defaults=True,
                                   tag="assignment_claimed"):
    assignment_id: str
    department: str


class AssignmentReturned(CaseEvent, frozen=True, kw_only=True, omit_defaults=True,
                                    tag="assignment_returned"):
    assignment_id: str
    department: str
    role: Role
    reason_code: str
    note: str = ""
    suggested_department: str | None = None
    suggested_region: str | None = None
    lead_returns: int = 0  # lead returns on the case so far, this one included


class RulingRequested(CaseEvent, frozen=True, kw_only=True, omit_defaults=True,
                                 tag="ruling_requested"):
    region: str  # the lowest common ancestor that must rule (裁定)
    level: Level
    returns: int


class RulingMade(CaseEvent, frozen=True, kw_only=True, omit_defaults=True, tag="ruling_made"):
    region: str
    lead: str
    supports: tuple[str, ...] = ()
    reason: str
    returned_by: tuple[str, ...] = ()  # departments whose returns were ruled on


class ProgressReported(CaseEvent, frozen=True, kw_only=True, omit_defaults=True,
                                  tag="progress_reported"):
    assignment_id: str
    department: str
    note: str
    controlled: bool = False


class OnSiteReported(CaseEvent, frozen=True, kw_only=True, omit_defaults=True,
                                tag="on_site_reported"):
    assignment_id: str
    department: str
    note: str = ""


class ExtensionRequested(CaseEvent, frozen=True, kw_only=True, omit_defaults=True,
                                    tag="extension_requested"):
    assignment_id: str
    department: str
    extra: Budget
    reason: str


class ExtensionApproved(CaseEvent, frozen=True, kw_only=True, omit_defaults=True,
                                   tag="extension_approved"):
    assignment_id: str
    department: str
    extra: Budget
    due: datetime  # the new resolve deadline
    note: str = ""


class ExtensionDenied(CaseEvent, frozen=True, kw_only=True, omit_defaults=True,
                                 tag="extension_denied"):
    assignment_id: str
    department: str
    note: str = ""


class CaseSuspended(CaseEvent, frozen=True, kw_only=True, omit_defaults=True, tag="case_suspended"):
    reason: str


class CaseResumed(CaseEvent, frozen=True, kw_only=True, omit_defaults=True, tag="case_resumed"):
    note: str = ""
    paused_seconds: int = 0  # wall-clock length of the suspension


class AssignmentHandled(CaseEvent, frozen=True, kw_only=True, omit_defaults=True,
                                   tag="assignment_handled"):
    assignment_id: str
    department: str
    role: Role
    outcome: str = ""
    note: str = ""


class CaseHandled(CaseEvent, frozen=True, kw_only=True, omit_defaults=True, tag="case_handled"):
    pass


class CheckStarted(CaseEvent, frozen=True, kw_only=True, omit_defaults=True, tag="check_started"):
    note: str = ""


class CaseClosed(CaseEvent, frozen=True, kw_only=True, omit_defaults=True, tag="case_closed"):
    note: str = ""
    self_resolved: bool = False  # 就地化解 at the grid
    overdue: bool = False  # some step ran past its deadline


class ReworkOrdered(CaseEvent, frozen=True, kw_only=True, omit_defaults=True, tag="rework_ordered"):
    reason: str


class CaseEvaluated(CaseEvent, frozen=True, kw_only=True, omit_defaults=True, tag="case_evaluated"):
    result: Satisfaction
    note: str = ""


class CaseReopened(CaseEvent, frozen=True, kw_only=True, omit_defaults=True, tag="case_reopened"):
    redo: int
    reason: str


class YellowCard(CaseEvent, frozen=True, kw_only=True, omit_defaults=True, tag="yellow_card"):
    deadline_id: str
    step: Step
    assignment_id: str = ""
    department: str = ""
    due: datetime  # the deadline it warns of


class RedCard(CaseEvent, frozen=True, kw_only=True, omit_defaults=True, tag="red_card"):
    deadline_id: str
    step: Step
    assignment_id: str = ""
    department: str = ""
    due: datetime


class Supervised(CaseEvent, frozen=True, kw_only=True, omit_defaults=True, tag="supervised"):
    level: Level
    region: str
    reason: str


class Escalated(CaseEvent, frozen=True, kw_only=True, omit_defaults=True, tag="escalated"):
    from_level: Level
    to_level: Level
    region: str  # the new coordinating jurisdiction
    reason: str


class Deescalated(CaseEvent, frozen=True, kw_only=True, omit_defaults=True, tag="deescalated"):
    from_level: Level
    to_level: Level
    region: str
    reason: str


AnyEvent = (
    CaseOpened
    | EventLinked
    | AlarmRepeated
    | PriorityChanged
    | CaseRegistered
    | CaseReclassified
    | CaseRejected
    | CaseAbsorbed
    | AbsorbReleased
    | CaseMerged
    | EventForwarded
    | EventsSplit
    | AssignmentDispatched
    | AssignmentCancelled
    | AssignmentClaimed
    | AssignmentReturned
    | RulingRequested
    | RulingMade
    | ProgressReported
    | OnSiteReported
    | ExtensionRequested
    | ExtensionApproved
    | ExtensionDenied
    | CaseSuspended
    | CaseResumed
    | AssignmentHandled
    | CaseHandled
    | CheckStarted
    | CaseClosed
    | ReworkOrdered
    | CaseEvaluated
    | CaseReopened
    | YellowCard
    | RedCard
    | Supervised
    | Escalated
    | Deescalated
)

event_decoder = msgspec.json.Decoder(AnyEvent)

# spelled out, not computed, so a type checker sees what `streams.cases` re-exports
__all__ = [
    "CaseEvent",
    "CaseOpened",
    "EventLinked",
    "AlarmRepeated",
    "PriorityChanged",
    "CaseRegistered",
    "CaseReclassified",
    "CaseRejected",
    "CaseAbsorbed",
    "AbsorbReleased",
    "CaseMerged",
    "EventForwarded",
    "EventsSplit",
    "AssignmentDispatched",
    "AssignmentCancelled",
    "AssignmentClaimed",
    "AssignmentReturned",
    "RulingRequested",
    "RulingMade",
    "ProgressReported",
    "OnSiteReported",
    "ExtensionRequested",
    "ExtensionApproved",
    "ExtensionDenied",
    "CaseSuspended",
    "CaseResumed",
    "AssignmentHandled",
    "CaseHandled",
    "CheckStarted",
    "CaseClosed",
    "ReworkOrdered",
    "CaseEvaluated",
    "CaseReopened",
    "YellowCard",
    "RedCard",
    "Supervised",
    "Escalated",
    "Deescalated",
]
__all__ += ["AnyEvent", "event_decoder"]
