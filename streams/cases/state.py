"""The state of one case: a compact record folded from its events.

It lives in a changelog-backed table, one entry per case, so it keeps only what
deciding the next command needs; the full history is the event log. Every
running deadline is in ``clocks``: :func:`pending_deadlines` lists what each
will fire and when, so a worker can rebuild its timer heap from the table after
a restart or a rebalance.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import msgspec

from streams.cases.commands import FireDeadline
from streams.escalation import EscalationTerms, Rung, region_at
from streams.records import Level, Priority, Role, Routing
from streams.sla import Budget, Clock, Stage, Step, Terms

RECENT_COMMANDS = 16  # command ids remembered per case for idempotency
SUMMARY_CHARS = 140  # of the first event's text, kept for department queues


class CaseStatus(StrEnum):
    REPORTED = "reported"  # 已上报
    VERIFYING = "verifying"  # 待核实
    REGISTERED = "registered"  # 已立案
    REJECTED = "rejected"  # 不予立案 (final)
    DISPATCHED = "dispatched"  # 已交办
    ACCEPTED = "accepted"  # 已签收 (lead)
    RETURNED = "returned"  # 已退单 (lead), awaiting re-route or ruling
    IN_PROGRESS = "in_progress"  # 处置中
    HANDLED = "handled"  # 已办结 (lead handled, every support reported)
    CHECKING = "checking"  # 核查中
    REWORK = "rework"  # 返工
    CLOSED = "closed"  # 已结案
    REOPENED = "reopened"  # 重办
    EVALUATED = "evaluated"  # 已评价 (final)
    MERGED = "merged"  # 已合并 (final): merged into another case, which holds its events now


FINAL = frozenset({CaseStatus.REJECTED, CaseStatus.EVALUATED, CaseStatus.MERGED})
#: statuses in which departments work on their assignments
WORKING = frozenset(
    {
        CaseStatus.DISPATCHED,
        CaseStatus.ACCEPTED,
        CaseStatus.RETURNED,
        CaseStatus.IN_PROGRESS,
        CaseStatus.REWORK,
        CaseStatus.REOPENED,
    }
)


class AssignmentStatus(StrEnum):
    DISPATCHED = "dispatched"  # 待签收
    ACCEPTED = "accepted"  # 已签收
    IN_PROGRESS = "in_progress"  # 处置中
    RETURNED = "returned"  # 已退单
    HANDLED = "handled"  # lead: 办结; support: its part reported


class Assignment(msgspec.Struct, frozen=True, array_like=True):
    """One department's share of a case (交办单), with its own status."""

    id: str  # "A1", "A2", … unique within the case
    department: str
    role: Role
    status: AssignmentStatus
    region: str  # the jurisdiction of the department unit (for rulings)
    dispatched_at: datetime
    return_by: datetime  # end of the return window (退单时限)
    ruled: bool = False  # assigned by a ruling (裁定): cannot be returned
    on_site: bool = False
    extensions: int = 0  # approved extensions
    requested: Budget | None = None  # pending extension request


class CaseState(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    case_id: str
    seq: int  # sequence number of the last event applied (1 = CaseOpened)
    status: CaseStatus
    priority: Priority
    category: str
    region: str  # the deepest jurisdiction code known (grid code when there is one)
    level: Level  # the level that coordinates the case now
    base_level: Level  # the level that coordinated it at opening
    opened_at: datetime
    terms: Terms  # SLA budgets frozen on the case
    esc: EscalationTerms  # escalation rules frozen on the case
    title: str = ""
    category_name: str = ""
    summary: str = ""  # the first event's text, cut to SUMMARY_CHARS, for department queues
    grid: str | None = None  # the grid of the first event, when known
    lon: float | None = None
    lat: float | None = None
    address: str | None = None
    event_ids: tuple[str, ...] = ()  # linked inbound events
    repeats: int = 0  # repeated camera alarms folded into the case (重复告警)
    routing: Routing | None = None  # routing waiting for dispatch (before 交办)
    assignments: tuple[Assignment, ...] = ()
    clocks: tuple[Clock, ...] = ()
    next_assignment: int = 1
    lead_returns: int = 0
    disputed: tuple[str, ...] = ()  # jurisdictions in a lead dispute (for the ruling level)
    ruling: str | None = None  # region whose ruling (裁定) is awaited
    suspended_at: datetime | None = None
    hot_spot: bool = False
    overdue: bool = False  # a red card has fired
    redo: int = 0  # reopenings after dissatisfied callbacks (重办)
    ladder: tuple[Rung, ...] = ()  # 四级七天 rungs frozen at opening
    merged_into: str | None = None  # the case it was merged into (合并), once MERGED
    absorbed: tuple[str, ...] = ()  # cases merged into this one (合并来源)
    splits: int = 0  # cases split off this one so far (拆分); names the next one
    recent: tuple[int, ...] = ()  # hashes of the last command ids
    # awaiting an operator's verification (核实) — also while dispatched at once
    # to the fallback lead, as a P1 of unknown category is
    verifying: bool = False

    @property
    def region_code(self) -> str:
        """The jurisdiction code of the coordinating level."""
        return region_at(self.region, self.level)

    @property
    def lead(self) -> Assignment | None:
        return next((a for a in self.assignments if a.role is Role.LEAD), None)

    def assignment(self, assignment_id: str) -> Assignment | None:
        return next((a for a in self.assignments if a.id == assignment_id), None)

    def clock(self, clock_id: str) -> Clock | None:
        return next((c for c in self.clocks if c.id == clock_id), None)


class Deadline(msgspec.Struct, frozen=True, kw_only=True):
    """One instant a case's clock will fire, for the worker's timer heap."""

    case_id: str
    deadline_id: str  # the clock's id, "A1.resolve" or "case.ladder"
    kind: str  # "yellow" | "red" | "over" (take-over 吹哨, or the ladder's climb)
    step: Step
    assignment_id: str
    due: datetime

    def command(self) -> FireDeadline:
        """The command that fires it; its id is stable, so a double fire is a no-op."""
        return FireDeadline(
            case_id=self.case_id,
            command_id=f"fire:{self.deadline_id}:{self.kind}:{self.due.isoformat()}",
            actor="system:sla",
            at=self.due,
            deadline_id=self.deadline_id,
            kind=self.kind,
            step=self.step,
            assignment_id=self.assignment_id,
            due=self.due,
        )


_KIND = {Stage.YELLOW: "yellow", Stage.RED: "red", Stage.OVER: "over"}


def pending_deadlines(state: CaseState | None) -> list[Deadline]:
    """Every instant still to fire, earliest first (paused clocks fire nothing)."""
    if state is None:
        return []
    out = [
        Deadline(
            case_id=state.case_id,
            deadline_id=clock.id,
            kind=_KIND[stage],
            step=clock.step,
            assignment_id=clock.assignment,
            due=at,
        )
        for clock in state.clocks
        for stage, at in clock.stages()
    ]
    out.sort(key=lambda d: d.due)
    return out


class CaseClocks(msgspec.Struct, frozen=True, kw_only=True):
    """The clocks of a stored :class:`CaseState` alone: a packed state decodes as this
    without building the rest of the case, for the timer index's rebuild, which reads
    every open case and needs only its clocks."""

    clocks: tuple[Clock, ...] = ()


def next_wakeup(state: CaseState | CaseClocks | None) -> datetime | None:
    """The earliest instant the case needs the timer, or None (bytewax-style)."""
    if state is None:
        return None
    return min((at for clock in state.clocks if (at := clock.next_at()) is not None),
               default=None)
