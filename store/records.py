"""What the read models answer: plain, frozen records of the SQL projection.

The store's queries (:mod:`store.queries`, :mod:`store.statistics`) return
these rather than rows bound to a session or an entry point's schemas; the
API turns them into its response bodies, the console shows them as they are.
Field names are the API's (docs/api.md), so one record fits each response.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a listing, and how many rows the filters match over all pages."""

    items: tuple[T, ...]
    total: int
    limit: int
    offset: int


@dataclass(frozen=True)
class CaseSummary:
    """A case as listings show it (案件列表)."""

    case_id: str
    status: str
    priority: int  # 1 = P1 特急 … 4 = P4
    category: str
    category_name: str | None
    title: str
    region_code: str
    grid_code: str | None
    coordinating_region: str
    level: int
    lead_department: str | None
    source: str | None
    event_count: int
    hot_spot: bool
    overdue: bool
    suspended: bool
    opened_at: datetime
    updated_at: datetime
    next_due_at: datetime | None


@dataclass(frozen=True)
class Assignment:
    """An assignment (交办单) of a case."""

    assignment_id: str
    department: str
    role: str
    status: str
    region: str
    ruled: bool
    on_site: bool
    extensions: int
    extension_pending: bool
    dispatched_at: datetime
    return_by: datetime
    accept_due_at: datetime | None
    resolve_due_at: datetime | None
    claimed_at: datetime | None
    handled_at: datetime | None


@dataclass(frozen=True)
class Deadline:
    """A clock (时限) of a case, running or stopped."""

    deadline_id: str
    step: str
    assignment_id: str | None
    department: str | None
    started_at: datetime
    warn_at: datetime | None
    due_at: datetime
    yellow_fired: bool
    red_fired: bool
    paused: bool
    active: bool
    cleared_at: datetime | None


@dataclass(frozen=True)
class Evaluation:
    """A callback's verdict (回访评价)."""

    seq: int
    result: str
    note: str
    actor: str
    at: datetime


@dataclass(frozen=True)
class TimelineEntry:
    """One event of a case's timeline (办理过程); ``detail`` holds the event's own fields."""

    seq: int
    type: str
    at: datetime
    actor: str
    command_id: str | None
    detail: dict[str, Any]


@dataclass(frozen=True)
class CaseDetail(CaseSummary):
    """A case with everything the projection holds about it."""

    summary: str | None
    classification_rule: str | None
    classification_confidence: float | None
    base_level: int
    redo: int
    satisfaction: str | None
    ruling_region: str | None
    event_ids: tuple[str, ...]  # the inbound events it holds now (关联事件)
    merged_into: str | None  # 合并: the case it went into
    absorbed: tuple[str, ...]  # the cases merged into it
    split_from: str | None  # 拆分: the case its events came from
    assignments: tuple[Assignment, ...]
    deadlines: tuple[Deadline, ...]
    evaluations: tuple[Evaluation, ...]
    timeline: tuple[TimelineEntry, ...]


@dataclass(frozen=True)
class QueueItem:
    """One assignment in a department's queue (待办), with its case; ``overdue``: a
    running deadline of the assignment is past due."""

    case_id: str
    assignment_id: str
    role: str
    status: str
    case_status: str
    priority: int
    category: str
    category_name: str | None
    title: str
    region_code: str
    dispatched_at: datetime
    return_by: datetime
    accept_due_at: datetime | None
    resolve_due_at: datetime | None
    overdue: bool
    on_site: bool
    extension_pending: bool


@dataclass(frozen=True)
class CaseFacts:
    """What the case row does not hold: its first report and place, its lead's name and
    resolve deadline."""

    first_report: dict[str, Any]  # the ``event`` of ``case_opened``
    location: dict[str, Any]  # the ``location`` of ``case_opened``
    lead_department_name: str | None
    lead_resolve_due_at: datetime | None


# -- statistics (考核指标, docs/domain.md §7) ----------------------------------------------------


@dataclass(frozen=True)
class Durations:
    """Nearest-rank percentiles of a duration over assignments (None without samples)."""

    count: int
    p50_seconds: float | None
    p90_seconds: float | None


@dataclass(frozen=True)
class StatisticsGroup:
    """The command center's metrics for one group of cases: the counts, and the rates
    that are their quotients (None when the denominator is 0). The definitions are the
    API's (``api.schemas.StatisticsGroup``, docs/domain.md §7)."""

    group: str | None  # the lead department, the jurisdiction, or None when not grouped
    name: str | None
    due: int
    due_closed: int
    due_overdue: int
    closed: int
    closed_on_time: int
    closed_self_resolved: int
    disputes_finished: int
    disputes_mediated: int
    callbacks_reached: int
    callbacks_satisfied: int
    dispatched: int
    returned: int
    second_returned: int
    supervised: int
    checked: int
    reworked: int
    handling_rate: float | None  # 办结率
    on_time_rate: float | None  # 按期办结率
    overdue_rate: float | None  # 超期率
    satisfaction_rate: float | None  # 满意率
    mediation_success_rate: float | None  # 调处成功率
    self_resolved_rate: float | None  # 自办率
    return_rate: float | None  # 退单率
    second_return_rate: float | None  # 二次退单率
    rework_rate: float | None  # 返工率
    supervision_rate: float | None  # 督办率
    time_to_accept: Durations  # 签收用时
    time_to_resolve: Durations  # 办结用时


@dataclass(frozen=True)
class Statistics:
    """The metrics of every group, over [``period_from``, ``period_to``)."""

    group_by: str
    region: str | None
    department: str | None
    period_from: datetime | None
    period_to: datetime | None
    groups: tuple[StatisticsGroup, ...]


R = TypeVar("R", bound="DataclassInstance")


def copy_of(record: type[R], row: Any) -> R:
    """A ``record`` of the attributes of ``row`` (a model row) that it names."""
    return record(**{field.name: getattr(row, field.name) for field in fields(record)})


__all__ = ["Assignment", "CaseDetail", "CaseFacts", "CaseSummary", "Deadline", "Durations",
           "Evaluation", "Page", "QueueItem", "Statistics", "StatisticsGroup", "TimelineEntry",
           "copy_of"]
