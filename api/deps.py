"""Dependencies the routers share: a store session, the caller's scope, and the case or
assignment a route names, loaded and checked against who is asking (404, then 403)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Path, Query, Request
from pydantic import Field

from api.auth import (
    CommandCenterUser,
    CurrentUser,
    DepartmentUser,
    Role,
    User,
    require_region,
    require_unit,
)
from api.errors import Forbidden
from settings import Settings
from store import queries, reads
from store.db import Session
from store.filters import Scope
from store.models import AssignmentRow, Case
from streams.reference import City, load_city
from streams.triage_rules import TriageRules, load_triage_rules

CaseId = Annotated[str, Path(max_length=64, examples=["C-371502004-20261126-0001"])]
AssignmentId = Annotated[str, Path(max_length=16, examples=["A1"])]
Priorities = Annotated[list[Annotated[int, Field(ge=1, le=4)]] | None,
                       Query(description="priorities, 1 = P1 特急 … 4 = P4 (repeatable)")]
Limit = Annotated[int, Query(ge=1, le=200, description="page size")]
Offset = Annotated[int, Query(ge=0, le=2**31 - 1, description="rows skipped")]


def _session(request: Request) -> Iterator[Session]:
    with request.app.state.store.sessions() as session:
        yield session


Db = Annotated[Session, Depends(_session)]


def triage_reference(request: Request) -> tuple[TriageRules, City]:
    """The rules (taxonomy, routing) and the reference city, loaded once per app."""
    state = request.app.state
    loaded: tuple[TriageRules, City] | None = getattr(state, "triage_reference", None)
    if loaded is None:
        settings: Settings = state.settings
        city = load_city(settings.reference_dir)
        rules = load_triage_rules(settings.rules_dir, departments=city.departments)
        state.triage_reference = loaded = (rules, city)
    return loaded


def scope_of(user: User) -> Scope:
    if user.role in (Role.OPERATOR, Role.DISPLAY):
        return Scope(region=user.region)
    if user.role is Role.DEPARTMENT:
        return Scope(department=user.department, unit_region=user.region)
    return Scope()


def require_readable(user: User, case: Case, db: Session) -> None:
    """A department user reads a case that has (or had) an assignment of its department
    served within its jurisdiction; others the cases of their jurisdiction."""
    if user.role is Role.DEPARTMENT:
        units = reads.case_units(db, case.case_id)
        if not any(user.sees_unit(department, region) for department, region in units):
            where = f" within {user.region}" if user.region else ""
            raise Forbidden(f"case {case.case_id} has no assignment for department "
                            f"{user.department}{where}; {user.actor} cannot see it")
    else:
        require_region(user, case.region_code, f"case {case.case_id}")


def _readable_case(case_id: CaseId, user: CurrentUser, db: Db) -> Case:
    case = queries.get_case(db, case_id)
    require_readable(user, case, db)
    return case


def _command_center_case(case_id: CaseId, user: CommandCenterUser, db: Db) -> Case:
    case = queries.get_case(db, case_id)
    require_region(user, case.region_code, f"case {case_id}")
    return case


def _department_assignment(case_id: CaseId, assignment_id: AssignmentId, user: DepartmentUser,
                           db: Db) -> AssignmentRow:
    assignment = queries.get_assignment(db, case_id, assignment_id)
    require_unit(user, assignment.department, assignment.region,
                 f"assignment {assignment_id} of case {case_id}")
    return assignment


command_center_case = _command_center_case  # for the console, which resolves them itself
department_assignment = _department_assignment
ReadableCase = Annotated[Case, Depends(_readable_case)]
CommandCenterCase = Annotated[Case, Depends(_command_center_case)]
DepartmentAssignment = Annotated[AssignmentRow, Depends(_department_assignment)]

__all__ = ["CommandCenterCase", "Db", "DepartmentAssignment", "command_center_case",
           "department_assignment", "Limit", "Offset", "Priorities",
           "ReadableCase", "require_readable", "scope_of", "triage_reference"]
