"""Response schemas of the read side (the SQL projection as the API shows it)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

T = TypeVar("T")

CASE_ID_EXAMPLE = "C-371502004-20261126-0001"


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int = Field(description="rows matching the filters, over all pages")
    limit: int
    offset: int


class CaseSummary(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    case_id: str = Field(examples=[CASE_ID_EXAMPLE])
    status: str = Field(examples=["dispatched"])
    priority: int = Field(examples=[3], description="1 = P1 特急 … 4 = P4")
    category: str = Field(examples=["05.03"])
    category_name: str | None = Field(examples=["垃圾暴露/满溢"])
    title: str
    region_code: str = Field(examples=["371502004001002"])
    grid_code: str | None
    coordinating_region: str
    level: int
    lead_department: str | None = Field(examples=["chengguan"])
    source: str | None
    event_count: int
    hot_spot: bool
    overdue: bool
    suspended: bool
    opened_at: datetime
    updated_at: datetime
    next_due_at: datetime | None


class AssignmentOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    assignment_id: str = Field(examples=["A1"])
    department: str = Field(examples=["chengguan"])
    role: str = Field(examples=["lead"])
    status: str = Field(examples=["accepted"])
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


class DeadlineOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    deadline_id: str = Field(examples=["A1.resolve"])
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


class TimelineEntry(BaseModel):
    seq: int = Field(examples=[3])
    type: str = Field(examples=["assignment_claimed"])
    at: datetime
    actor: str = Field(examples=["department:cg-desk"])
    command_id: str | None
    detail: dict[str, Any] = Field(description="the event's own fields, as on cases.events")


class EvaluationOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    seq: int
    result: str = Field(examples=["satisfied"])
    note: str
    actor: str
    at: datetime


class CaseDetail(CaseSummary):
    summary: str | None
    classification_rule: str | None
    classification_confidence: float | None
    base_level: int
    redo: int
    satisfaction: str | None
    ruling_region: str | None
    assignments: list[AssignmentOut]
    deadlines: list[DeadlineOut]
    evaluations: list[EvaluationOut]
    timeline: list[TimelineEntry]


class QueueItem(BaseModel):
    """One assignment in a department's queue (待办), with its case."""

    case_id: str = Field(examples=[CASE_ID_EXAMPLE])
    assignment_id: str = Field(examples=["A1"])
    role: str
    status: str = Field(examples=["dispatched"])
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
    overdue: bool = Field(description="a running deadline of the assignment is past due")
    on_site: bool
    extension_pending: bool
