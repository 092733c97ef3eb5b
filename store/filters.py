"""Which cases a read takes: each filter rule over the projection, written once.

The case search, the console's lists, Open311's listing, the department queues,
the live board and the statistics all build their ``WHERE`` clauses from these.
A caller's :class:`Scope` (what it may see) is one more list of clauses on top
of the filters it asks for (:func:`case_filters`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, exists, or_
from sqlalchemy.sql.elements import ColumnElement

from store.models import AssignmentRow, Case, within_region


def within(region: str) -> ColumnElement[bool]:
    """The case lies in jurisdiction ``region`` (city down to grid)."""
    return within_region(Case.region_code, region)


def in_category(code: str) -> ColumnElement[bool]:
    """The case's category is ``code`` or one below it (``05`` takes ``05.03``)."""
    return or_(Case.category == code, Case.category.startswith(code + "."))


def led_by(department: str) -> ColumnElement[bool]:
    """The department leads the case (责任主体)."""
    return Case.lead_department == department


def serves(department: str, unit_region: str | None = None) -> list[ColumnElement[bool]]:
    """An assignment is the department's — served within ``unit_region`` when given (a
    township's or a county's desk)."""
    clauses: list[ColumnElement[bool]] = [AssignmentRow.department == department]
    if unit_region is not None:
        clauses.append(within_region(AssignmentRow.region, unit_region))
    return clauses


def has_assignment(department: str, unit_region: str | None = None) -> ColumnElement[bool]:
    """The case has (or had) an assignment the department serves (see :func:`serves`)."""
    return exists().where(AssignmentRow.case_id == Case.case_id,
                          *serves(department, unit_region))


def text_matches(text: str) -> ColumnElement[bool]:
    """The case id, title or first report's text contains ``text`` (case-insensitive for
    Latin letters)."""
    pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    return or_(Case.case_id.ilike(pattern, escape="\\"), Case.title.ilike(pattern, escape="\\"),
               Case.summary.ilike(pattern, escape="\\"))


def assignment_overdue(now: datetime) -> ColumnElement[bool]:
    """One of the assignment's running deadlines (accept, resolve) is past: the earliest
    of them, ``due_at``, is. Never NULL: with none running it is not overdue."""
    return and_(AssignmentRow.due_at.is_not(None), AssignmentRow.due_at < now)


def overdue_now(now: datetime) -> ColumnElement[bool]:
    """A red card fired on the case, or one of its running deadlines is past. Never NULL:
    a case with no running deadline is not overdue, so its negation keeps that case."""
    return or_(Case.overdue.is_(True),
               and_(Case.next_due_at.is_not(None), Case.next_due_at < now))


def period(column: Any, start: datetime | None, end: datetime | None
           ) -> list[ColumnElement[bool]]:
    """``column`` lies in [``start``, ``end``), each bound left open when None."""
    clauses: list[ColumnElement[bool]] = []
    if start is not None:
        clauses.append(column >= start)
    if end is not None:
        clauses.append(column < end)
    return clauses


def case_filters(*, case_ids: Sequence[str] | None = None, region: str | None = None,
                 category: str | None = None, categories: Sequence[str] = (),
                 priorities: Sequence[int] = (), statuses: Sequence[str] = (),
                 opened_from: datetime | None = None, opened_to: datetime | None = None,
                 department: str | None = None, text: str | None = None,
                 overdue: bool | None = None, now: datetime | None = None
                 ) -> list[ColumnElement[bool]]:
    """The clauses of the filters given (None or empty: not filtered): exact case ids,
    a jurisdiction, a category and those below it, exact categories, priorities,
    statuses, opened in [``opened_from``, ``opened_to``), an assignment of
    ``department``, ``text`` in the case, and overdue (or not) at ``now``."""
    clauses: list[ColumnElement[bool]] = []
    if case_ids is not None:
        clauses.append(Case.case_id.in_(case_ids))
    if region is not None:
        clauses.append(within(region))
    if category is not None:
        clauses.append(in_category(category))
    if categories:
        clauses.append(Case.category.in_(categories))
    if priorities:
        clauses.append(Case.priority.in_(priorities))
    if statuses:
        clauses.append(Case.status.in_(statuses))
    clauses += period(Case.opened_at, opened_from, opened_to)
    if department is not None:
        clauses.append(has_assignment(department))
    if text:
        clauses.append(text_matches(text))
    if overdue is not None:
        if now is None:
            raise ValueError("the overdue filter needs the time it is read at")
        clauses.append(overdue_now(now) if overdue else ~overdue_now(now))
    return clauses


@dataclass(frozen=True)
class Scope:
    """What a caller may see: every case, a jurisdiction's, or a department's — all of
    its cases, or (``unit_region``) those where one of its assignments is served within
    that jurisdiction (a township's or a county's desk)."""

    region: str | None = None
    department: str | None = None
    unit_region: str | None = None

    def clauses(self) -> list[ColumnElement[bool]]:
        clauses: list[ColumnElement[bool]] = []
        if self.region is not None:
            clauses.append(within(self.region))
        if self.department is not None:
            clauses.append(has_assignment(self.department, self.unit_region))
        return clauses

    @property
    def place(self) -> str | None:
        """The jurisdiction whose map the caller sees (None: the whole city)."""
        return self.region or self.unit_region


__all__ = ["Scope", "assignment_overdue", "case_filters", "has_assignment", "in_category",
           "led_by", "overdue_now", "period", "serves", "text_matches", "within"]
