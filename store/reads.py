"""Read models of the console and of repeated commands, over the SQL projection.

Plain functions over a session with keyword-only filters, like the API's other
queries: who serves a case (its assignments' units), how far the projection has
read a case's log, what a command did (for a repeated ``Idempotency-Key``), the
console's case list (text and overdue filters besides the REST search's), and
the grids a case map draws.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import Select, exists, func, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from store.models import AssignmentRow, Case, CaseEventRow, Department, Region, within_region
from streams.cases import AnyEvent, CaseEvent, CaseState, apply


def case_units(session: Session, case_id: str) -> set[tuple[str, str]]:
    """(department, unit's jurisdiction) of every assignment the case has had."""
    return {(department, region) for department, region in session.execute(
        select(AssignmentRow.department, AssignmentRow.region)
        .where(AssignmentRow.case_id == case_id))}


def last_seq(session: Session, case_id: str) -> int | None:
    """The sequence number of the case's last event the projection holds (None: none)."""
    return session.scalar(select(Case.last_seq).where(Case.case_id == case_id))


@dataclass(frozen=True)
class CommandOutcome:
    """What one command did to a case, read back from its log."""

    seqs: tuple[int, ...]
    events: tuple[CaseEvent, ...]
    state: CaseState  # the case right after the command's last event

    @property
    def status(self) -> str:
        return str(self.state.status)


def command_outcome(session: Session, case_id: str, command_id: str) -> CommandOutcome | None:
    """The events command ``command_id`` caused on case ``case_id`` and the case's state
    after them; None when the projection holds none (not applied, or not read yet)."""
    seqs = tuple(session.scalars(
        select(CaseEventRow.seq).where(CaseEventRow.case_id == case_id,
                                       CaseEventRow.command_id == command_id)
        .order_by(CaseEventRow.seq)))
    if not seqs:
        return None
    payloads = session.scalars(
        select(CaseEventRow.payload).where(CaseEventRow.case_id == case_id,
                                           CaseEventRow.seq <= seqs[-1])
        .order_by(CaseEventRow.seq))
    state: CaseState | None = None
    caused = []
    for payload in payloads:
        event: CaseEvent = msgspec.convert(payload, AnyEvent)
        state = apply(state, event)
        if event.seq in seqs:
            caused.append(event)
    assert state is not None
    return CommandOutcome(seqs=seqs, events=tuple(caused), state=state)


# -- the console's case list ------------------------------------------------------------------


def text_matches(text: str) -> ColumnElement[bool]:
    """The case id, title or first report's text contains ``text`` (case-insensitive for
    Latin letters)."""
    pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    return or_(Case.case_id.ilike(pattern, escape="\\"), Case.title.ilike(pattern, escape="\\"),
               Case.summary.ilike(pattern, escape="\\"))


def overdue_now(now: datetime) -> ColumnElement[bool]:
    """A red card fired on the case, or one of its running deadlines is past."""
    return or_(Case.overdue.is_(True), Case.next_due_at < now)


def filter_cases(query: Select[Any], *, text: str | None = None, overdue: bool | None = None,
                 now: datetime) -> Select[Any]:
    """The console's filters on top of a case search."""
    if text:
        query = query.where(text_matches(text))
    if overdue is True:
        query = query.where(overdue_now(now))
    elif overdue is False:
        query = query.where(~overdue_now(now))
    return query


def has_assignment(department: str) -> ColumnElement[bool]:
    return exists().where(AssignmentRow.case_id == Case.case_id,
                          AssignmentRow.department == department)


# -- reference data the console shows ---------------------------------------------------------


def departments(session: Session) -> list[Department]:
    return list(session.scalars(select(Department).order_by(Department.code)))


def regions(session: Session, *, levels: Sequence[int], within: str | None = None
            ) -> list[Region]:
    query = select(Region).where(Region.level.in_(levels))
    if within is not None:
        query = query.where(within_region(Region.code, within))
    return list(session.scalars(query.order_by(Region.code)))


def region_names(session: Session, codes: Sequence[str]) -> dict[str, str]:
    return dict(session.execute(select(Region.code, Region.name)
                                .where(Region.code.in_(set(codes)))).all())


def grids_near(session: Session, grid_or_region: str) -> list[Region]:
    """The grids of the community (or, above it, the region) a case lies in: what its
    map draws around it."""
    prefix = grid_or_region[:12] if len(grid_or_region) >= 12 else grid_or_region
    rows = session.scalars(select(Region).where(Region.level == 5,
                                                within_region(Region.code, prefix))
                           .order_by(Region.code).limit(400))
    return [r for r in rows if r.lon is not None and r.lat is not None]


# -- the period report (日报/周报/月报) -----------------------------------------------------------


def opened_breakdown(session: Session, *, region: str | None, department: str | None,
                     start: datetime, end: datetime) -> dict[str, dict[str, int]]:
    """Cases opened in [``start``, ``end``) within ``region`` and led by ``department``
    (either may be None), counted by ``source``, ``priority`` and category ``family``."""
    clauses = [Case.opened_at >= start, Case.opened_at < end]
    if region is not None:
        clauses.append(within_region(Case.region_code, region))
    if department is not None:
        clauses.append(Case.lead_department == department)
    family = func.substr(Case.category, 1, 2)
    out: dict[str, dict[str, int]] = {}
    for name, column in (("source", func.coalesce(Case.source, "")), ("priority", Case.priority),
                         ("family", family)):
        rows = session.execute(select(column, func.count()).where(*clauses).group_by(column)
                               .order_by(column))
        out[name] = {str(key): int(n) for key, n in rows}
    return out


def count(session: Session, query: Select[Any]) -> int:
    return session.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0


__all__ = ["CommandOutcome", "case_units", "command_outcome", "count", "departments",
           "filter_cases", "grids_near", "has_assignment", "last_seq", "opened_breakdown",
           "overdue_now",
           "region_names", "regions", "text_matches"]
