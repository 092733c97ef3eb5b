"""The read side: what the API and the console ask of the SQL projection.

Plain functions over a session, keyword-only filters; the scope of the
caller (a jurisdiction, a department) arrives as one more filter. Answers are
model rows or the plain records of :mod:`store.records`; a case or assignment
the projection does not hold raises :class:`store.errors.NotFound`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, TypeVarTuple

import msgspec
from sqlalchemy import Select, and_, exists, func, or_, select
from sqlalchemy.orm import Session

from clock import wall_clock
from store.errors import NotFound
from store.filters import Scope, assignment_overdue, case_filters, serves, within
from store.models import (
    CANCELLED,
    AssignmentRow,
    Case,
    CaseEventRow,
    DeadlineRow,
    Department,
    EvaluationRow,
)
from store.projector import decode_state
from store.records import (
    Assignment,
    CaseDetail,
    CaseFacts,
    CaseSummary,
    Deadline,
    Evaluation,
    Page,
    QueueItem,
    TimelineEntry,
    copy_of,
)
from streams.cases import CaseStatus
from streams.records import Event
from streams.sla import Step

_EVENT_ENVELOPE = {"case_id", "seq", "at", "actor", "command_id", "type"}


Columns = TypeVarTuple("Columns")


def _page(session: Session, query: Select[*Columns], *, limit: int, offset: int
          ) -> tuple[int, list]:
    total = session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    return total or 0, list(session.execute(query.limit(limit).offset(offset)))


def _summaries(session: Session, query: Select[Any], *, limit: int, offset: int
               ) -> Page[CaseSummary]:
    total, rows = _page(session, query, limit=limit, offset=offset)
    return Page(items=tuple(case_summary(row[0]) for row in rows), total=total, limit=limit,
                offset=offset)


def case_summary(case: Case) -> CaseSummary:
    return copy_of(CaseSummary, case)


def find_case(session: Session, case_id: str) -> Case | None:
    """The case ``case_id``; None when the projection does not hold it."""
    return session.get(Case, case_id)


def get_case(session: Session, case_id: str) -> Case:
    case = find_case(session, case_id)
    if case is None:
        raise NotFound(f"no case {case_id}")
    return case


def get_assignment(session: Session, case_id: str, assignment_id: str) -> AssignmentRow:
    row = session.get(AssignmentRow, (case_id, assignment_id))
    if row is None:
        raise NotFound(f"case {case_id} has no assignment {assignment_id}")
    return row


def case_detail(session: Session, case: Case) -> CaseDetail:
    state = decode_state(case.state)
    def rows(model: Any, *order: Any) -> Sequence[Any]:
        return session.scalars(select(model).where(model.case_id == case.case_id)
                               .order_by(*order)).all()

    timeline = tuple(
        TimelineEntry(seq=e.seq, type=e.type, at=e.at, actor=e.actor, command_id=e.command_id,
                      detail={k: v for k, v in e.payload.items() if k not in _EVENT_ENVELOPE})
        for e in rows(CaseEventRow, CaseEventRow.seq))
    return CaseDetail(
        **vars(case_summary(case)),
        summary=case.summary, classification_rule=case.classification_rule,
        classification_confidence=case.classification_confidence,
        base_level=case.base_level, redo=case.redo, satisfaction=case.satisfaction,
        ruling_region=case.ruling_region,
        merged_into=case.merged_into, split_from=case.split_from,
        event_ids=tuple(state.event_ids), absorbed=tuple(state.absorbed),
        assignments=tuple(copy_of(Assignment, row)
                          for row in rows(AssignmentRow, AssignmentRow.assignment_id)),
        deadlines=tuple(copy_of(Deadline, row) for row in
                        rows(DeadlineRow, DeadlineRow.started_at, DeadlineRow.deadline_id)),
        evaluations=tuple(copy_of(Evaluation, row)
                          for row in rows(EvaluationRow, EvaluationRow.seq)),
        timeline=timeline)


def search_cases(session: Session, *, scope: Scope, region: str | None = None,
                 category: str | None = None, priorities: Sequence[int] = (),
                 statuses: Sequence[str] = (), opened_from: datetime | None = None,
                 opened_to: datetime | None = None, department: str | None = None,
                 text: str | None = None, overdue: bool | None = None,
                 now: datetime | None = None, limit: int, offset: int) -> Page[CaseSummary]:
    """Cases in ``scope`` matching the filters (:func:`store.filters.case_filters`; overdue
    at ``now``, by default the wall clock), newest first."""
    query = (select(Case)
             .where(*scope.clauses(), *case_filters(
                 region=region, category=category, priorities=priorities, statuses=statuses,
                 opened_from=opened_from, opened_to=opened_to, department=department,
                 text=text, overdue=overdue, now=now or wall_clock()))
             .order_by(Case.opened_at.desc(), Case.case_id))
    return _summaries(session, query, limit=limit, offset=offset)


#: a department's to-do list (待办) when no status is asked for
QUEUE_STATUSES = ("dispatched", "accepted", "in_progress")


def department_queue(session: Session, *, department: str, scope: Scope, now: datetime,
                     statuses: Sequence[str] = (), priorities: Sequence[int] = (),
                     overdue: bool | None = None, limit: int, offset: int) -> Page[QueueItem]:
    """A department's assignments, most urgent first: by the case's priority, then the
    running deadline. Read off the assignments' own (department, status, priority,
    due_at) index; the cases are joined only to check a jurisdiction and to fill the page.
    A scope's ``unit_region`` keeps the assignments served within it."""
    a = AssignmentRow
    late = assignment_overdue(now)
    query = select(a, late).where(*serves(department, scope.unit_region),
                                  a.status.in_(statuses or QUEUE_STATUSES))
    if scope.region is not None:  # the department is this queue's already
        query = query.join(Case, Case.case_id == a.case_id).where(within(scope.region))
    if priorities:
        query = query.where(a.priority.in_(priorities))
    if overdue is not None:
        query = query.where(late if overdue else ~late)
    query = query.order_by(a.priority, a.due_at.is_(None), a.due_at, a.dispatched_at, a.case_id,
                           a.assignment_id)
    total, rows = _page(session, query, limit=limit, offset=offset)
    cases = {case.case_id: case for case in session.scalars(
        select(Case).where(Case.case_id.in_({row[0].case_id for row in rows})))}
    items = tuple(_queue_item(x, cases[x.case_id], bool(overdue_))
                  for x, overdue_ in rows)
    return Page(items=items, total=total, limit=limit, offset=offset)


def _queue_item(a: AssignmentRow, case: Case, overdue: bool) -> QueueItem:
    return QueueItem(
        case_id=a.case_id, assignment_id=a.assignment_id, role=a.role, status=a.status,
        case_status=case.status, priority=case.priority, category=case.category,
        category_name=case.category_name, title=case.title, region_code=case.region_code,
        dispatched_at=a.dispatched_at, return_by=a.return_by, accept_due_at=a.accept_due_at,
        resolve_due_at=a.resolve_due_at, overdue=overdue,
        on_site=a.on_site, extension_pending=a.extension_pending)


def verification_queue(session: Session, *, scope: Scope, limit: int,
                       offset: int) -> Page[CaseSummary]:
    """Cases awaiting verification (待核实), most urgent and oldest first: those held
    for it, and those dispatched at once while it runs (a P1 of unknown category,
    whose verification clock is still active)."""
    verifying = exists().where(and_(DeadlineRow.case_id == Case.case_id,
                                    DeadlineRow.step == Step.VERIFY.value,
                                    DeadlineRow.active))
    query = (select(Case).where(and_(or_(Case.status == CaseStatus.VERIFYING, verifying),
                                     *scope.clauses()))
             .order_by(Case.priority, Case.opened_at, Case.case_id))
    return _summaries(session, query, limit=limit, offset=offset)


# -- merge and split (合并 / 拆分) --------------------------------------------------------------

#: timeline rows that bring inbound events into a case
_BRINGS_EVENTS = ("case_opened", "event_linked", "case_absorbed")


def event_records(session: Session, case_id: str, event_ids: Sequence[str]) -> dict[str, Event]:
    """The inbound events ``event_ids`` of a case, as its log carries them: the report
    that opened it and those linked later, or — for events it absorbed (合并) — as the
    log of the case merged into it carries them (followed as deep as need be)."""
    wanted = set(event_ids)
    found: dict[str, Event] = {}
    todo, seen = [case_id], set()
    while todo and wanted - found.keys():
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        rows = session.execute(
            select(CaseEventRow.type, CaseEventRow.payload)
            .where(CaseEventRow.case_id == current, CaseEventRow.type.in_(_BRINGS_EVENTS))
            .order_by(CaseEventRow.seq))
        for kind, payload in rows:
            if kind == "case_absorbed":
                if wanted & set(payload.get("event_ids", ())):
                    todo.append(payload["source"])
                continue
            report = payload.get("event") or {}
            if report.get("event_id") in wanted:
                found.setdefault(report["event_id"], msgspec.convert(report, Event))
    return found


# -- reports and their cases (Open311) --------------------------------------------------------


def case_of_report(session: Session, report_id: str) -> Case | None:
    """The case an inbound report (its source id, e.g. a grid report's ``report_id``)
    opened or was linked to; None while no case holds it. The case holding it now: the
    last one it came to (a split 拆分 moves it to a new case), followed to the case that
    one was merged into (合并)."""
    case = session.scalar(
        select(Case).join(CaseEventRow, CaseEventRow.case_id == Case.case_id)
        .where(CaseEventRow.source_id == report_id)
        .order_by(CaseEventRow.at.desc(), CaseEventRow.seq.desc()).limit(1))
    seen: set[str] = set()
    while case is not None and case.merged_into is not None and case.case_id not in seen:
        seen.add(case.case_id)
        case = session.get(Case, case.merged_into) or case
    return case


def list_cases(session: Session, *, scope: Scope, case_ids: Sequence[str] | None = None,
               categories: Sequence[str] = (), statuses: Sequence[str] = (),
               opened_from: datetime | None = None, opened_to: datetime | None = None,
               limit: int) -> list[Case]:
    """Cases in ``scope``, newest first, by exact case ids and categories if given."""
    query = select(Case).where(*scope.clauses(), *case_filters(
        case_ids=case_ids, categories=categories, statuses=statuses, opened_from=opened_from,
        opened_to=opened_to))
    return list(session.scalars(query.order_by(Case.opened_at.desc(), Case.case_id)
                                .limit(limit)))


def case_facts(session: Session, cases: Sequence[Case]) -> dict[str, CaseFacts]:
    ids = [case.case_id for case in cases]
    opened = {case_id: payload for case_id, payload in session.execute(
        select(CaseEventRow.case_id, CaseEventRow.payload)
        .where(CaseEventRow.case_id.in_(ids), CaseEventRow.type == "case_opened"))}
    a, d = AssignmentRow, DeadlineRow
    due = {case_id: due_at for case_id, due_at in session.execute(
        select(a.case_id, d.due_at)
        .join(d, and_(d.case_id == a.case_id, d.assignment_id == a.assignment_id))
        .where(a.case_id.in_(ids), a.role == "lead", a.status != CANCELLED, d.step == "resolve"))}
    leads = {case.lead_department for case in cases if case.lead_department}
    names = {code: name for code, name in session.execute(
        select(Department.code, Department.name_zh).where(Department.code.in_(leads)))}
    return {case.case_id: CaseFacts(
        first_report=opened.get(case.case_id, {}).get("event", {}),
        location=opened.get(case.case_id, {}).get("location", {}),
        lead_department_name=names.get(case.lead_department or "", case.lead_department),
        lead_resolve_due_at=due.get(case.case_id)) for case in cases}


# -- the live board ------------------------------------------------------------

BOARD_CLOSED = (CaseStatus.CLOSED, CaseStatus.EVALUATED, CaseStatus.REJECTED,
                CaseStatus.MERGED)


def board_open_cases(session: Session, *, scope: Scope, limit: int) -> list[Case]:
    """Cases not yet closed, rejected or evaluated, most urgent and oldest first."""
    query = (select(Case).where(Case.status.not_in(BOARD_CLOSED), *scope.clauses())
             .order_by(Case.priority, Case.opened_at, Case.case_id).limit(limit))
    return list(session.scalars(query))


def board_department_load(session: Session, *, scope: Scope, now: datetime
                          ) -> list[tuple[Department, int, int]]:
    """(department, open assignments, overdue ones) for every department, in the
    caller's jurisdiction; open = dispatched, accepted or in progress."""
    a = AssignmentRow
    late = assignment_overdue(now)
    # a department sees its own load only
    own = serves(scope.department, scope.unit_region) if scope.department is not None else []
    counts = (select(a.department, func.count().label("open"),
                     func.count().filter(late).label("overdue"))
              .join(Case, Case.case_id == a.case_id)
              .where(a.status.in_(QUEUE_STATUSES),
                     *Scope(region=scope.region).clauses(), *own)
              .group_by(a.department).subquery())
    departments = select(Department, counts.c.open, counts.c.overdue).outerjoin(
        counts, counts.c.department == Department.code)
    if scope.department is not None:
        departments = departments.where(Department.code == scope.department)
    rows = session.execute(departments.order_by(Department.code))
    return [(department, open_ or 0, overdue or 0) for department, open_, overdue in rows]


def case_region(session: Session, case_id: str) -> str | None:
    """The deepest jurisdiction code of a case, if the projection has it."""
    return session.scalar(select(Case.region_code).where(Case.case_id == case_id))
