"""The statistics' read side (考核指标, docs/domain.md §7): counts over the SQL projection.

Three grouped queries — cases, callbacks, assignment durations — each filtered
by :class:`StatsFilter` and grouped by one key (the lead department, the
jurisdiction one level below the one asked for, or nothing). The rates are
plain quotients of these counts (:func:`statistics`), answered as the records
of :mod:`store.records`; the definitions live in the field descriptions of the
API's ``StatisticsGroup`` (docs/domain.md §7).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import and_, case, exists, func, literal_column, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from store.filters import led_by, period, serves, within
from store.models import (
    AssignmentRow,
    Case,
    CaseEventRow,
    DeadlineRow,
    Department,
    EvaluationRow,
    Region,
)
from store.records import Durations, Statistics, StatisticsGroup
from streams.cases import CaseStatus
from streams.cases.commands import Satisfaction
from streams.jurisdiction import level_of
from streams.records import Level
from streams.sla import Step

DISPUTES = "01."  # 矛盾纠纷: the family of mediated categories
_CLOSED_NOW = (CaseStatus.CLOSED, CaseStatus.EVALUATED)
_SATISFIED = (Satisfaction.SATISFIED, Satisfaction.BASICALLY_SATISFIED)
#: digits of the level below: a city groups by county, a county by township …
_CHILD_DIGITS = {Level.CITY: 6, Level.COUNTY: 9, Level.TOWNSHIP: 12, Level.COMMUNITY: 15,
                 Level.GRID: 15}


class GroupBy(StrEnum):
    DEPARTMENT = "department"
    REGION = "region"
    NONE = "none"


@dataclass(frozen=True)
class StatsFilter:
    """Which cases count: within ``region`` (if any), led by ``department`` (if any), and
    the period [``start``, ``end``) (open-ended where None)."""

    region: str | None = None
    department: str | None = None
    start: datetime | None = None
    end: datetime | None = None

    def during(self, column: Any) -> ColumnElement[bool]:
        """``column`` is set and lies in the period."""
        return and_(column.is_not(None), *period(column, self.start, self.end))

    def before_end(self, column: Any) -> ColumnElement[bool]:
        """``column`` is set and lies before the period's end."""
        return and_(column.is_not(None), *period(column, None, self.end))

    def cases(self) -> list[ColumnElement[bool]]:
        """The cases counted: within the region, led by the department."""
        clauses: list[ColumnElement[bool]] = []
        if self.region is not None:
            clauses.append(within(self.region))
        if self.department is not None:
            clauses.append(led_by(self.department))
        return clauses


def region_key_digits(region: str | None) -> int:
    """How many digits of ``region_code`` name a group: the level below ``region``
    (counties when no region is given)."""
    return 6 if region is None else _CHILD_DIGITS[level_of(region)]


def _case_key(group_by: GroupBy, region: str | None) -> list[ColumnElement[Any]]:
    """The grouping column, none when not grouped. Constants are inlined, not bound: the
    select list and GROUP BY must be the same expression to PostgreSQL."""
    if group_by is GroupBy.DEPARTMENT:
        return [func.coalesce(Case.lead_department, literal_column("''"))]
    if group_by is GroupBy.REGION:
        digits: ColumnElement[Any] = literal_column(str(region_key_digits(region)))
        return [func.substr(Case.region_code, literal_column("1"), digits)]
    return []


def _key(row: Any, keys: Sequence[Any]) -> str:
    return str(row[0]) if keys else ""


def _event(type_: str, *extra: ColumnElement[bool]) -> ColumnElement[bool]:
    return exists().where(CaseEventRow.case_id == Case.case_id, CaseEventRow.type == type_,
                          *extra)


def _count(condition: ColumnElement[bool]) -> ColumnElement[Any]:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def _case_counts(session: Session, f: StatsFilter, key: list[ColumnElement[Any]]
                 ) -> dict[str, dict[str, int]]:
    resolve_due = exists().where(DeadlineRow.case_id == Case.case_id,
                                 DeadlineRow.step == Step.RESOLVE, f.during(DeadlineRow.due_at))
    closed_now = Case.status.in_(_CLOSED_NOW)
    due = or_(resolve_due, f.during(Case.closed_at))
    closed = and_(closed_now, f.during(Case.closed_at))
    self_resolved = _event("case_closed",
                           CaseEventRow.payload["self_resolved"].as_boolean().is_(True))
    dispute = and_(closed, Case.category.startswith(DISPUTES))
    opened = f.during(Case.opened_at)
    dispatched = and_(opened, Case.dispatched_at.is_not(None))
    checked = and_(opened, _event("check_started"))
    conditions = {
        "due": due,
        "due_closed": and_(due, closed_now, f.before_end(Case.closed_at)),
        "due_overdue": and_(due, Case.overdue.is_(True)),
        "closed": closed,
        "closed_on_time": and_(closed, Case.overdue.is_(False)),
        "closed_self_resolved": and_(closed, self_resolved),
        "disputes_finished": dispute,
        "disputes_mediated": and_(dispute, Case.satisfaction.in_(_SATISFIED)),
        "dispatched": dispatched,
        "returned": and_(dispatched, _event("assignment_returned")),
        "second_returned": and_(dispatched, _event("ruling_requested")),
        "supervised": and_(dispatched, _event("supervised")),
        "checked": checked,
        "reworked": and_(checked, _event("rework_ordered")),
    }
    query = (select(*key, *(_count(c).label(name) for name, c in conditions.items()))
             .where(*f.cases()).group_by(*key))
    skip = len(key)
    return {_key(row, key): {name: int(row[skip + i]) for i, name in enumerate(conditions)}
            for row in session.execute(query)}


def _callback_counts(session: Session, f: StatsFilter, key: list[ColumnElement[Any]]
                     ) -> dict[str, dict[str, int]]:
    e = EvaluationRow
    reached = e.result != Satisfaction.UNREACHED
    query = (select(*key, _count(reached), _count(e.result.in_(_SATISFIED)))
             .select_from(e).join(Case, Case.case_id == e.case_id)
             .where(f.during(e.at), *f.cases()).group_by(*key))
    return {_key(row, key): {"callbacks_reached": int(row[-2]),
                             "callbacks_satisfied": int(row[-1])}
            for row in session.execute(query)}


def _durations(session: Session, f: StatsFilter, group_by: GroupBy
               ) -> dict[str, tuple[list[float], list[float]]]:
    """Seconds to accept and to resolve, per group, of the assignments dispatched in the
    period (grouped by the assignment's own department when grouping by department)."""
    a = AssignmentRow
    key = [a.department] if group_by is GroupBy.DEPARTMENT else _case_key(group_by, f.region)
    clauses = [f.during(a.dispatched_at), or_(a.claimed_at.is_not(None),
                                              a.handled_at.is_not(None))]
    if f.region is not None:
        clauses.append(within(f.region))
    if f.department is not None:
        clauses += serves(f.department)
    query = (select(*key, a.dispatched_at, a.claimed_at, a.handled_at).select_from(a)
             .join(Case, Case.case_id == a.case_id).where(*clauses))
    found: dict[str, tuple[list[float], list[float]]] = {}
    for row in session.execute(query):
        dispatched, claimed, handled = row[-3:]
        accept, resolve = found.setdefault(_key(row, key), ([], []))
        if claimed is not None:
            accept.append((claimed - dispatched).total_seconds())
        if handled is not None:
            resolve.append((handled - dispatched).total_seconds())
    return found


def percentile(samples: Sequence[float], fraction: float) -> float | None:
    """The nearest-rank percentile of ``samples`` (None when there are none)."""
    if not samples:
        return None
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def _durations_of(samples: Sequence[float]) -> Durations:
    return Durations(count=len(samples), p50_seconds=percentile(samples, 0.5),
                     p90_seconds=percentile(samples, 0.9))


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _names(session: Session, group_by: GroupBy, keys: Iterable[str]) -> dict[str, str]:
    wanted = [k for k in keys if k]
    if group_by is GroupBy.DEPARTMENT:
        rows = session.execute(select(Department.code, Department.name_zh)
                               .where(Department.code.in_(wanted)))
    elif group_by is GroupBy.REGION:
        rows = session.execute(select(Region.code, Region.name).where(Region.code.in_(wanted)))
    else:
        return {}
    return {code: name for code, name in rows}


def statistics(session: Session, *, group_by: GroupBy, f: StatsFilter,
               times: bool = True) -> Statistics:
    """The metrics of every group that has a case in the caller's scope, or one row when
    not grouped; ``times=False`` leaves the times to accept and resolve empty (they read
    every assignment of the period)."""
    key = _case_key(group_by, f.region)
    cases = _case_counts(session, f, key)
    callbacks = _callback_counts(session, f, key)
    durations = _durations(session, f, group_by) if times else {}
    keys = sorted(set(cases) | set(callbacks) | set(durations))
    if group_by is GroupBy.NONE:
        keys = [""]  # one row, zeros included
    names = _names(session, group_by, keys)
    groups = []
    for k in keys:
        n = {**cases.get(k, {}), **callbacks.get(k, {})}
        accept, resolve = durations.get(k, ([], []))
        groups.append(_group(group_by, k, names.get(k), n, accept, resolve))
    return Statistics(group_by=group_by, region=f.region, department=f.department,
                      period_from=f.start, period_to=f.end, groups=tuple(groups))


def _group(group_by: GroupBy, key: str, name: str | None, n: dict[str, int],
           accept: Sequence[float], resolve: Sequence[float]) -> StatisticsGroup:
    counts = {field: n.get(field, 0) for field in _COUNT_FIELDS}
    return StatisticsGroup(
        group=None if group_by is GroupBy.NONE else (key or None), name=name, **counts,
        handling_rate=_rate(counts["due_closed"], counts["due"]),
        on_time_rate=_rate(counts["closed_on_time"], counts["closed"]),
        overdue_rate=_rate(counts["due_overdue"], counts["due"]),
        satisfaction_rate=_rate(counts["callbacks_satisfied"], counts["callbacks_reached"]),
        mediation_success_rate=_rate(counts["disputes_mediated"], counts["disputes_finished"]),
        self_resolved_rate=_rate(counts["closed_self_resolved"], counts["closed"]),
        return_rate=_rate(counts["returned"], counts["dispatched"]),
        second_return_rate=_rate(counts["second_returned"], counts["dispatched"]),
        rework_rate=_rate(counts["reworked"], counts["checked"]),
        supervision_rate=_rate(counts["supervised"], counts["dispatched"]),
        time_to_accept=_durations_of(accept), time_to_resolve=_durations_of(resolve))


def opened_breakdown(session: Session, f: StatsFilter) -> dict[str, dict[str, int]]:
    """The cases ``f`` counts that opened in its period, counted by ``source``,
    ``priority`` and category ``family`` (the period report's 新增)."""
    clauses = [*f.cases(), f.during(Case.opened_at)]
    family = func.substr(Case.category, 1, 2)
    out: dict[str, dict[str, int]] = {}
    for name, column in (("source", func.coalesce(Case.source, "")), ("priority", Case.priority),
                         ("family", family)):
        rows = session.execute(select(column, func.count()).where(*clauses).group_by(column)
                               .order_by(column))
        out[name] = {str(key): int(n) for key, n in rows}
    return out


_COUNT_FIELDS = ("due", "due_closed", "due_overdue", "closed", "closed_on_time",
                 "closed_self_resolved", "disputes_finished", "disputes_mediated",
                 "callbacks_reached", "callbacks_satisfied", "dispatched", "returned",
                 "second_returned", "supervised", "checked", "reworked")

__all__ = ["GroupBy", "StatsFilter", "opened_breakdown", "percentile", "region_key_digits",
           "statistics"]
