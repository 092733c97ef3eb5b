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
    event_ids: list[str] = Field(examples=[["grid:GR-20261126-0001"]], description="the "
                                 "inbound events the case holds now (关联事件): what a split "
                                 "(拆分) may move to a new case; a merged case's, as it had "
                                 "them when merged")
    merged_into: str | None = Field(examples=[None], description="the case it was merged "
                                    "into (合并, status `merged`)")
    absorbed: list[str] = Field(examples=[[]], description="the cases merged into this one")
    split_from: str | None = Field(examples=[None], description="the case its events were "
                                   "split off (拆分)")
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


# -- statistics (docs/domain.md §7) ----------------------------------------------------------------


class Durations(BaseModel):
    """Percentiles of a duration over assignments (nearest-rank; None without samples)."""

    count: int = Field(examples=[12], description="assignments measured")
    p50_seconds: float | None = Field(examples=[1260.0], description="median")
    p90_seconds: float | None = Field(examples=[7200.0], description="90th percentile")


class StatisticsGroup(BaseModel):
    """The command center's metrics (考核指标) for one group of cases.

    Each rate is a fraction in [0, 1], or None when its denominator is 0. The
    period [``from``, ``to``) anchors each metric on its own moment: deadlines
    on the resolve deadline, closing on ``closed_at``, callbacks on their
    time, process rates (returns, rework, supervision) on ``opened_at``,
    durations on the assignment's ``dispatched_at``.
    """

    group: str | None = Field(examples=["chengguan"], description="the department code "
                              "(the case's lead department, 责任主体), the jurisdiction code, or "
                              "None when not grouped")
    name: str | None = Field(examples=["城管/综合执法"], description="the department's or "
                             "jurisdiction's name from the reference data")
    due: int = Field(description="应办结: cases whose resolve deadline (办结时限) falls in the "
                     "period, or that were closed in the period")
    due_closed: int = Field(description="of `due`: cases closed (结案) by the end of the period "
                            "and not reopened")
    due_overdue: int = Field(description="of `due`: cases on which a red card (超期) fired")
    closed: int = Field(description="办结: cases whose last closing (结案) lies in the period "
                        "and that are closed or evaluated now")
    closed_on_time: int = Field(description="of `closed`: cases on which no red card fired")
    closed_self_resolved: int = Field(description="of `closed`: cases closed as settled at the "
                                      "grid (就地化解, the closing event's `self_resolved`)")
    disputes_finished: int = Field(description="of `closed`: disputes (category 01.*), i.e. "
                                   "mediations finished")
    disputes_mediated: int = Field(description="of `disputes_finished`: the last callback was "
                                   "satisfied or basically satisfied")
    callbacks_reached: int = Field(description="callbacks (回访) in the period whose verdict is "
                                   "not `unreached`")
    callbacks_satisfied: int = Field(description="of `callbacks_reached`: satisfied or "
                                     "basically satisfied")
    dispatched: int = Field(description="cases opened in the period and dispatched (交办) to "
                            "at least one department")
    returned: int = Field(description="of `dispatched`: cases with at least one return (退单, "
                          "`assignment_returned`)")
    second_returned: int = Field(description="of `dispatched`: cases returned a second time and "
                                 "sent for a ruling (二次退单 → 裁定, `ruling_requested`)")
    supervised: int = Field(description="of `dispatched`: cases supervised (督办, `supervised`)")
    checked: int = Field(description="cases opened in the period that reached verification "
                         "(核查, `check_started`)")
    reworked: int = Field(description="of `checked`: cases sent back for rework (返工, "
                          "`rework_ordered`)")
    handling_rate: float | None = Field(examples=[0.92], description="办结率 = due_closed / due")
    on_time_rate: float | None = Field(examples=[0.97], description="按期办结率 = "
                                       "closed_on_time / closed")
    overdue_rate: float | None = Field(examples=[0.03], description="超期率 = due_overdue / due")
    satisfaction_rate: float | None = Field(examples=[0.95], description="满意率 = "
                                            "callbacks_satisfied / callbacks_reached")
    mediation_success_rate: float | None = Field(examples=[0.9], description="调处成功率 = "
                                                 "disputes_mediated / disputes_finished")
    self_resolved_rate: float | None = Field(examples=[0.3], description="自办率 = "
                                             "closed_self_resolved / closed")
    return_rate: float | None = Field(examples=[0.05], description="退单率 = returned / "
                                      "dispatched")
    second_return_rate: float | None = Field(examples=[0.01], description="二次退单率 = "
                                             "second_returned / dispatched")
    rework_rate: float | None = Field(examples=[0.02], description="返工率 = reworked / checked")
    supervision_rate: float | None = Field(examples=[0.04], description="督办率 = supervised / "
                                           "dispatched")
    time_to_accept: Durations = Field(description="签收 time: claimed_at − dispatched_at of the "
                                      "assignments dispatched in the period and claimed (by "
                                      "the assignment's own department when grouped by "
                                      "department)")
    time_to_resolve: Durations = Field(description="办结 time: handled_at − dispatched_at of the "
                                       "assignments dispatched in the period and handled")


class Statistics(BaseModel):
    group_by: str = Field(examples=["department"], description="department, region or none")
    region: str | None = Field(examples=["371502"], description="the jurisdiction counted "
                               "(None: all the caller may see)")
    department: str | None = Field(examples=[None], description="the lead department counted")
    period_from: datetime | None = Field(alias="from", description="start of the period "
                                         "(inclusive)")
    period_to: datetime | None = Field(alias="to", description="end of the period (exclusive)")
    groups: list[StatisticsGroup]

    model_config = ConfigDict(populate_by_name=True)


# -- Open311 GeoReport v2 -------------------------------------------------------------------


class Open311Service(BaseModel):
    """A service (事件类别) as Open311 lists it: one category of the taxonomy."""

    service_code: str = Field(examples=["05.03"], description="the category code")
    service_name: str = Field(examples=["垃圾暴露/满溢"], description="its Chinese name")
    description: str = Field(examples=["exposed or overflowing garbage"],
                             description="its English name")
    metadata: bool = Field(examples=[True], description="attributes are defined "
                           "(GET services/{service_code}.json)")
    type: str = Field(examples=["realtime"])
    keywords: str = Field(examples=["垃圾,满溢"], description="the keyword rules' words, "
                          "comma-separated")
    group: str = Field(examples=["城市管理"], description="the category's family")


class Open311Attribute(BaseModel):
    variable: bool = True
    code: str = Field(examples=["grid_code"])
    datatype: str = Field(examples=["string"])
    required: bool = False
    datatype_description: str
    order: int = 1
    description: str


class Open311ServiceDefinition(BaseModel):
    service_code: str = Field(examples=["05.03"])
    attributes: list[Open311Attribute]


class Open311Created(BaseModel):
    service_request_id: str = Field(examples=["O311-20261126-3f9a1c2b7d"],
                                    description="the report's id; GET requests/{id}.json "
                                    "answers once the case is open")
    service_notice: str
    account_id: str | None = None


class Open311Request(BaseModel):
    """A service request (诉求) as Open311 shows it: the case its report opened or joined."""

    service_request_id: str = Field(examples=["O311-20261126-3f9a1c2b7d"],
                                    description="the report's id (a case's first report when "
                                    "listed)")
    case_id: str = Field(examples=[CASE_ID_EXAMPLE], description="GridLink's case (extension)")
    status: str = Field(examples=["open"], description="closed once the case is closed, "
                        "evaluated or rejected; open otherwise")
    status_notes: str | None = Field(examples=["已交办 (dispatched)"])
    service_name: str | None = Field(examples=["垃圾暴露/满溢"])
    service_code: str = Field(examples=["05.03"])
    description: str | None
    agency_responsible: str | None = Field(examples=["城管/综合执法"],
                                           description="the lead department (责任单位)")
    service_notice: str | None = None
    requested_datetime: datetime = Field(description="when the case opened")
    updated_datetime: datetime = Field(description="the case's last event")
    expected_datetime: datetime | None = Field(description="the resolve deadline (办结时限) of "
                                               "the lead assignment")
    address: str | None
    address_id: str | None = None
    zipcode: str | None = None
    lat: float | None
    long: float | None
    media_url: str | None = None
