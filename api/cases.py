"""Case queries: one case with its assignments, deadlines and timeline; a search."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from api.auth import CurrentUser, Role
from api.deps import Db, Limit, Offset, Priorities, ReadableCase, scope_of
from api.errors import Forbidden, InvalidRequest, problem_responses
from api.schemas import CaseDetail, CaseSummary, Page
from clock import wall_clock
from store import queries
from streams.cases import CaseStatus
from streams.jurisdiction import level_of

router = APIRouter(tags=["cases"])


@router.get("/cases/{case_id}", response_model=CaseDetail,
            responses=problem_responses(401, 403, 404))
def get_case(case: ReadableCase, db: Db) -> CaseDetail:
    """The case, its assignments (交办单), deadlines (时限), callbacks and its full
    timeline (办理过程) with who did each step."""
    return CaseDetail.model_validate(queries.case_detail(db, case), from_attributes=True)


@router.get("/cases", response_model=Page[CaseSummary], responses=problem_responses(401, 403, 422))
def search_cases(
    user: CurrentUser, db: Db,
    region: Annotated[str | None, Query(max_length=15, examples=["371502004"],
                                        description="a jurisdiction code, city down to grid: "
                                        "cases within it")] = None,
    category: Annotated[str | None, Query(max_length=32, examples=["05"],
                                          description="a category code or its prefix")] = None,
    priority: Priorities = None,
    status: Annotated[list[CaseStatus] | None, Query()] = None,
    opened_from: datetime | None = None,
    opened_to: datetime | None = None,
    department: Annotated[str | None, Query(max_length=32)] = None,
    text: Annotated[str | None, Query(max_length=100, description="words in the case id, "
                                      "title or report")] = None,
    overdue: Annotated[bool | None, Query(description="true: a red card fired or a running "
                                          "deadline is past; false: neither")] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[CaseSummary]:
    """Cases within the caller's scope, newest first."""
    if region is not None:
        try:
            level_of(region)
        except ValueError as error:
            raise InvalidRequest(str(error), field="region") from None
    if user.role is Role.DEPARTMENT and department not in (None, user.department):
        raise Forbidden(f"{user.actor} can only search the cases of {user.department}")
    found = queries.search_cases(
        db, scope=scope_of(user), region=region, category=category, priorities=priority or (),
        statuses=[str(s) for s in status or ()], opened_from=opened_from, opened_to=opened_to,
        department=department, text=text, overdue=overdue, now=wall_clock(), limit=limit,
        offset=offset)
    return Page[CaseSummary].model_validate(found, from_attributes=True)
