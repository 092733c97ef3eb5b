"""Commands on a case (``cases.commands``): what someone or something asks of it.

Every command names its case, carries a ``command_id`` (a repeated id produces
no events: idempotency for at-least-once delivery), the ``actor`` who issued it
and the time ``at`` they issued it. Commands encode to JSON with a ``"type"``
field (``{"type": "claim", …}``); decode with :data:`command_decoder`.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import msgspec

from streams.records import (
    Classification,
    Event,
    Level,
    Location,
    Priority,
    PriorityDecision,
    Routing,
)
from streams.sla import Step


class Satisfaction(StrEnum):
    """The callback's verdict (回访评价)."""

    SATISFIED = "satisfied"  # 满意
    BASICALLY_SATISFIED = "basically_satisfied"  # 基本满意
    DISSATISFIED = "dissatisfied"  # 不满意
    UNREACHED = "unreached"  # 回访未接通 (counts in no satisfaction rate)


class Command(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    case_id: str
    command_id: str
    actor: str
    at: datetime


# -- step 2: verify and register (核实立案) ------------------------------------------------


class OpenCase(Command, frozen=True, kw_only=True, tag="open_case"):
    """From triage: a new case. ``closed_at_grid`` for reports already settled
    on the spot (就地化解); a routing with ``dispatch`` false is recorded and
    closed without assignments (kept by the police). ``priority`` is final
    (triage already raised it for recurrence); ``hot_spot`` / ``recurrences``
    (earlier cases of the same grid and category in the window) flag a hot spot."""

    event: Event
    location: Location
    classification: Classification
    priority: PriorityDecision
    routing: Routing
    needs_verification: bool = False
    closed_at_grid: bool = False
    recurrences: int = 0
    hot_spot: bool = False
    more_events: tuple[Event, ...] = ()  # further events of the case (a split: 拆分)
    split_from: str | None = None  # the case these events were split off


class LinkEvent(Command, frozen=True, kw_only=True, tag="link_event"):
    """Another event joins the case (关联); it may raise the priority. ``repeat``: a
    camera's repeated alarm, recorded on the case as :class:`AlarmRepeated`."""

    event: Event
    priority: PriorityDecision | None = None
    repeat: bool = False


class Register(Command, frozen=True, kw_only=True, tag="register"):
    """立案 after verification; may correct category, priority or routing, and
    dispatches at once unless ``dispatch`` is false. A case dispatched at once
    while it waited for verification (a P1 of unknown category) is registered
    the same way: a corrected routing then replaces its assignments."""

    note: str = ""
    dispatch: bool = True
    classification: Classification | None = None
    priority: Priority | None = None
    routing: Routing | None = None


class Reject(Command, frozen=True, kw_only=True, tag="reject"):
    """不予立案."""

    reason: str


# -- merge and split (合并 / 拆分), across two cases -------------------------------------------
#
# A merge of case B into case A is three commands at most, each applied by the one
# writer of its case (see streams.cases.follow_ups):
#
# 1. ``AbsorbCase`` to A (the operator's): A checks itself and takes B's events;
# 2. ``MarkMerged`` to B (sent by the engine once A absorbed): B checks that A took
#    exactly its events and ends, status ``merged``;
# 3. ``ReleaseCase`` to A, only if B refused: A gives B's events back.


class AbsorbCase(Command, frozen=True, kw_only=True, tag="absorb_case"):
    """合并, step 1, to the target: take the events of case ``source`` (all of them,
    as the operator saw them), which is then marked merged into this one.
    ``priority``: the source's, which may raise this case's."""

    source: str
    event_ids: tuple[str, ...]
    priority: Priority | None = None
    reason: str


class MarkMerged(Command, frozen=True, kw_only=True, tag="mark_merged"):
    """合并, step 2, to the absorbed case: case ``into`` took ``event_ids``; end
    this case as merged into it, or refuse (then ``into`` releases them)."""

    into: str
    event_ids: tuple[str, ...]
    reason: str


class ReleaseCase(Command, frozen=True, kw_only=True, tag="release_case"):
    """合并, compensation, to the target: case ``source`` refused the merge; give
    back the ``event_ids`` taken from it."""

    source: str
    event_ids: tuple[str, ...]
    reason: str


class SplitCase(Command, frozen=True, kw_only=True, tag="split_case"):
    """拆分: move ``events`` (some of the case's own, not all) to a new case, which
    the engine opens with them. The new case takes this case's place, category,
    priority and departments unless ``classification`` / ``routing`` say otherwise."""

    events: tuple[Event, ...]
    reason: str
    classification: Classification | None = None
    routing: Routing | None = None


# -- step 3: route and assign (分流交办) ---------------------------------------------------


class Dispatch(Command, frozen=True, kw_only=True, tag="dispatch"):
    """交办 a registered case (with the stored routing unless one is given)."""

    routing: Routing | None = None


class Reroute(Command, frozen=True, kw_only=True, tag="reroute"):
    """改派: cancel the current assignments and dispatch afresh; ``classification``
    corrects the category at the same time (it goes on the log for learning)."""

    routing: Routing
    reason: str
    classification: Classification | None = None


class Rule(Command, frozen=True, kw_only=True, tag="rule"):
    """裁定 on a disputed lead, by the dispatcher of ``by_region`` (the ruling level)."""

    by_region: str
    lead: str
    supports: tuple[str, ...] = ()
    reason: str


# -- step 4: track (跟踪处理) --------------------------------------------------------------


class Claim(Command, frozen=True, kw_only=True, tag="claim"):
    """签收/领办."""

    assignment_id: str
    department: str


class Return(Command, frozen=True, kw_only=True, tag="return"):
    """退单 within the return window, with a reason code."""

    assignment_id: str
    department: str
    reason_code: str
    note: str = ""
    suggested_department: str | None = None
    suggested_region: str | None = None  # the jurisdiction the department thinks responsible


class Progress(Command, frozen=True, kw_only=True, tag="progress"):
    """进展反馈; ``controlled`` reports first control of a P1 situation."""

    assignment_id: str
    department: str
    note: str
    controlled: bool = False


class ReportOnSite(Command, frozen=True, kw_only=True, tag="report_on_site"):
    """到场."""

    assignment_id: str
    department: str
    note: str = ""


class RequestExtension(Command, frozen=True, kw_only=True, tag="request_extension"):
    """延期申请: ``days`` on the resolve step's own clock (working days on a
    working-day budget, calendar days on a wall-clock one)."""

    assignment_id: str
    department: str
    days: int
    reason: str


class ApproveExtension(Command, frozen=True, kw_only=True, tag="approve_extension"):
    """The dispatching level's decision on a pending extension request."""

    assignment_id: str
    approved: bool = True
    note: str = ""


class Suspend(Command, frozen=True, kw_only=True, tag="suspend"):
    """挂起 while waiting on the citizen: every clock of the case pauses."""

    reason: str


class Resume(Command, frozen=True, kw_only=True, tag="resume"):
    note: str = ""


# -- step 5: feedback (事件反馈) -----------------------------------------------------------


class Handle(Command, frozen=True, kw_only=True, tag="handle"):
    """办结反馈 by the lead department."""

    assignment_id: str
    department: str
    outcome: str
    note: str = ""


class SupportDone(Command, frozen=True, kw_only=True, tag="support_done"):
    """A supporting department reports its part (配合反馈)."""

    assignment_id: str
    department: str
    note: str = ""


# -- step 6: evaluate (考核评价) -----------------------------------------------------------


class Check(Command, frozen=True, kw_only=True, tag="check"):
    """核查: the command center starts verifying the outcome."""

    note: str = ""


class Close(Command, frozen=True, kw_only=True, tag="close"):
    """结案: the outcome is verified."""

    note: str = ""


class Rework(Command, frozen=True, kw_only=True, tag="rework"):
    """返工: verification failed, the lead works again."""

    reason: str


class Evaluate(Command, frozen=True, kw_only=True, tag="evaluate"):
    """回访评价 of a closed case."""

    result: Satisfaction
    note: str = ""


# -- escalation and timers -------------------------------------------------------------


class Supervise(Command, frozen=True, kw_only=True, tag="supervise"):
    """督办 by ``level`` (default: one above the case's level)."""

    level: Level | None = None
    note: str = ""


class Escalate(Command, frozen=True, kw_only=True, tag="escalate"):
    """Move coordination up to ``level`` (default: one up)."""

    level: Level | None = None
    reason: str


class Deescalate(Command, frozen=True, kw_only=True, tag="deescalate"):
    """Move coordination down, by the dispatcher of the current level only."""

    by_region: str
    level: Level
    reason: str


class FireDeadline(Command, frozen=True, kw_only=True, tag="fire_deadline"):
    """The timer: ``kind`` ("yellow", "red", "over") of deadline ``deadline_id``
    fell due. A stale or already-fired deadline is a no-op."""

    deadline_id: str
    kind: str
    step: Step
    assignment_id: str = ""
    due: datetime


AnyCommand = (
    OpenCase
    | LinkEvent
    | Register
    | Reject
    | AbsorbCase
    | MarkMerged
    | ReleaseCase
    | SplitCase
    | Dispatch
    | Reroute
    | Rule
    | Claim
    | Return
    | Progress
    | ReportOnSite
    | RequestExtension
    | ApproveExtension
    | Suspend
    | Resume
    | Handle
    | SupportDone
    | Check
    | Close
    | Rework
    | Evaluate
    | Supervise
    | Escalate
    | Deescalate
    | FireDeadline
)

command_decoder = msgspec.json.Decoder(AnyCommand)

# spelled out, not computed, so a type checker sees what `streams.cases` re-exports
__all__ = [
    "Command",
    "OpenCase",
    "LinkEvent",
    "Register",
    "Reject",
    "AbsorbCase",
    "MarkMerged",
    "ReleaseCase",
    "SplitCase",
    "Dispatch",
    "Reroute",
    "Rule",
    "Claim",
    "Return",
    "Progress",
    "ReportOnSite",
    "RequestExtension",
    "ApproveExtension",
    "Suspend",
    "Resume",
    "Handle",
    "SupportDone",
    "Check",
    "Close",
    "Rework",
    "Evaluate",
    "Supervise",
    "Escalate",
    "Deescalate",
    "FireDeadline",
]
__all__ += ["AnyCommand", "Satisfaction", "command_decoder"]
