"""The read side: what the routers ask of the SQL projection.

Plain functions over a session, keyword-only filters; the scope of the
caller (a jurisdiction, a department) arrives as one more filter.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, exists, func, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from api.errors import NotFound
from api.schemas import (
    AssignmentOut,
    CaseDetail,
    CaseSummary,
    DeadlineOut,
    EvaluationOut,
    Page,
    QueueItem,
    TimelineEntry,
)
from store.models import (
    CANCELLED,
    AssignmentRow,
    Case,
    CaseEventRow,
    DeadlineRow,
    EvaluationRow,
    within_region,
)
from streams.cases import CaseStatus

_EVENT_ENVELOPE = {"case_id", "seq", "at", "actor", "command_id", "type"}


@dataclass(frozen=True)
class Scope:
    """What a caller may see: every case, a jurisdiction's, or a department's."""

    region: str | None = None
    department: str | None = None

    def clauses(self) -> list[ColumnElement[bool]]:
        clauses = []
        if self.region is not None:
            clauses.append(within_region(Case.region_code, self.region))
        if self.department is not None:
            clauses.append(_has_assignment(self.department))
        return clauses


def _has_assignment(department: str) -> ColumnElement[bool]:
    return exists().where(AssignmentRow.case_id == Case.case_id,
                          AssignmentRow.department == department)


def _page(session: Session, query: Select[Any], *, limit: int, offset: int) -> tuple[int, list]:
    total = session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    return total or 0, list(session.execute(query.limit(limit).offset(offset)))


def get_case(session: Session, case_id: str) -> Case:
    case = session.get(Case, case_id)
    if case is None:
        raise NotFound(f"no case {case_id}")
    return case


def get_assignment(session: Session, case_id: str, assignment_id: str) -> AssignmentRow:
    row = session.get(AssignmentRow, (case_id, assignment_id))
    if row is None:
        raise NotFound(f"case {case_id} has no assignment {assignment_id}")
    return row


def case_departments(session: Session, case_id: str) -> set[str]:
    return set(session.scalars(select(AssignmentRow.department)
                               .where(AssignmentRow.case_id == case_id)))


def case_detail(session: Session, case: Case) -> CaseDetail:
    def rows(model: Any, *order: Any) -> Sequence[Any]:
        return session.scalars(select(model).where(model.case_id == case.case_id)
                               .order_by(*order)).all()

    timeline = [
        TimelineEntry(seq=e.seq, type=e.type, at=e.at, actor=e.actor, command_id=e.command_id,
                      detail={k: v for k, v in e.payload.items() if k not in _EVENT_ENVELOPE})
        for e in rows(CaseEventRow, CaseEventRow.seq)
    ]
    return CaseDetail.model_validate({
        **CaseSummary.model_validate(case).model_dump(),
        "summary": case.summary, "classification_rule": case.classification_rule,
        "classification_confidence": case.classification_confidence,
        "base_level": case.base_level, "redo": case.redo, "satisfaction": case.satisfaction,
        "ruling_region": case.ruling_region,
        "assignments": [AssignmentOut.model_validate(a)
                        for a in rows(AssignmentRow, AssignmentRow.assignment_id)],
        "deadlines": [DeadlineOut.model_validate(d)
                      for d in rows(DeadlineRow, DeadlineRow.started_at, DeadlineRow.deadline_id)],
        "evaluations": [EvaluationOut.model_validate(e)
                        for e in rows(EvaluationRow, EvaluationRow.seq)],
        "timeline": timeline,
    })


def search_cases(session: Session, *, scope: Scope, region: str | None = None,
                 category: str | None = None, priorities: Sequence[int] = (),
                 statuses: Sequence[str] = (), opened_from: datetime | None = None,
                 opened_to: datetime | None = None, department: str | None = None,
                 limit: int, offset: int) -> Page[CaseSummary]:
    query = select(Case).where(*scope.clauses())
    if region is not None:
        query = query.where(within_region(Case.region_code, region))
    if category is not None:
        query = query.where(or_(Case.category == category,
                                Case.category.startswith(category + ".")))
    if priorities:
        query = query.where(Case.priority.in_(priorities))
    if statuses:
        query = query.where(Case.status.in_(statuses))
    if opened_from is not None:
        query = query.where(Case.opened_at >= opened_from)
    if opened_to is not None:
        query = query.where(Case.opened_at < opened_to)
    if department is not None:
        query = query.where(_has_assignment(department))
    query = query.order_by(Case.opened_at.desc(), Case.case_id)
    total, rows = _page(session, query, limit=limit, offset=offset)
    return Page[CaseSummary](items=[CaseSummary.model_validate(row[0]) for row in rows],
                             total=total, limit=limit, offset=offset)


def department_queue(session: Session, *, department: str, scope: Scope, now: datetime,
                     statuses: Sequence[str] = (), priorities: Sequence[int] = (),
                     overdue: bool | None = None, limit: int, offset: int) -> Page[QueueItem]:
    a = AssignmentRow
    late = or_(a.accept_due_at < now, a.resolve_due_at < now)
    query = (select(a, Case).join(Case, Case.case_id == a.case_id)
             .where(a.department == department, *scope.clauses()))
    query = query.where(a.status.in_(statuses)) if statuses else query.where(a.status != CANCELLED)
    if priorities:
        query = query.where(Case.priority.in_(priorities))
    if overdue is not None:
        query = query.where(late if overdue else ~func.coalesce(late, False))
    due = func.coalesce(a.accept_due_at, a.resolve_due_at)
    query = query.order_by(Case.priority, due.is_(None), due, a.dispatched_at, a.case_id)
    total, rows = _page(session, query, limit=limit, offset=offset)
    items = [_queue_item(assignment, case, now) for assignment, case in rows]
    return Page[QueueItem](items=items, total=total, limit=limit, offset=offset)


def _queue_item(a: AssignmentRow, case: Case, now: datetime) -> QueueItem:
    dues = [d for d in (a.accept_due_at, a.resolve_due_at) if d is not None]
    return QueueItem(
        case_id=a.case_id, assignment_id=a.assignment_id, role=a.role, status=a.status,
        case_status=case.status, priority=case.priority, category=case.category,
        category_name=case.category_name, title=case.title, region_code=case.region_code,
        dispatched_at=a.dispatched_at, return_by=a.return_by, accept_due_at=a.accept_due_at,
        resolve_due_at=a.resolve_due_at, overdue=any(d < now for d in dues),
        on_site=a.on_site, extension_pending=a.extension_pending)


def verification_queue(session: Session, *, scope: Scope, limit: int,
                       offset: int) -> Page[CaseSummary]:
    """Cases awaiting verification (待核实), most urgent and oldest first."""
    query = (select(Case).where(and_(Case.status == CaseStatus.VERIFYING, *scope.clauses()))
             .order_by(Case.priority, Case.opened_at, Case.case_id))
    total, rows = _page(session, query, limit=limit, offset=offset)
    return Page[CaseSummary](items=[CaseSummary.model_validate(row[0]) for row in rows],
                             total=total, limit=limit, offset=offset)
