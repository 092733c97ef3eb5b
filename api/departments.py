"""Departments (职能部门): their queue, and the actions on their assignments.

Each action is one command; the case engine decides whether it is allowed
(a 409 problem carries its reason). The department named in the command is
the assignment's own, so a user can only ever act for its department.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field

from api.auth import CurrentUser, DepartmentUser, Role, require_department
from api.commands import CommandResult
from api.deps import Db, DepartmentAssignment, Limit, Offset, Priorities, scope_of
from api.errors import problem_responses
from api.idempotency import IdempotentGateway
from api.schemas import Page, QueueItem
from clock import wall_clock
from store import queries
from streams.cases import (
    Claim,
    Handle,
    Progress,
    ReportOnSite,
    RequestExtension,
    Return,
    SupportDone,
)

router = APIRouter(tags=["departments"])
ACTION = "/cases/{case_id}/assignments/{assignment_id}"
ACTION_ERRORS = problem_responses(401, 403, 404, 409, 422, 504)
QueueStatus = Literal["dispatched", "accepted", "in_progress", "returned", "handled", "cancelled"]


class ReturnBody(BaseModel):
    reason_code: str = Field(max_length=32, examples=["not_ours"])
    note: str = Field("", max_length=2000, examples=["属住建管辖"])
    suggested_department: str | None = Field(None, max_length=32, examples=["zhujian"])
    suggested_region: str | None = Field(None, max_length=15, examples=["371503001"])


class ProgressBody(BaseModel):
    note: str = Field(min_length=1, max_length=2000, examples=["已联系物业，明早清运"])
    controlled: bool = Field(False, description="first control of a P1 situation")


class NoteBody(BaseModel):
    note: str = Field("", max_length=2000, examples=["已到场"])


class ExtensionBody(BaseModel):
    days: int = Field(ge=1, le=60, examples=[3])
    reason: str = Field(min_length=1, max_length=2000, examples=["需等待配件到货"])


class HandleBody(BaseModel):
    outcome: str = Field(min_length=1, max_length=2000, examples=["垃圾已清运，路面已清扫"])
    note: str = Field("", max_length=2000)


@router.get("/departments/{code}/queue", response_model=Page[QueueItem],
            responses=problem_responses(401, 403, 422))
def queue(
    code: Annotated[str, Path(max_length=32, examples=["chengguan"])], user: CurrentUser, db: Db,
    status: Annotated[list[QueueStatus] | None, Query()] = None,
    priority: Priorities = None,
    overdue: bool | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[QueueItem]:
    """A department's to-do list (待办): its dispatched, accepted and in-progress
    assignments, most urgent first (the case's priority, then the running deadline).
    Returned, handled and cancelled ones when asked for by ``status``. An operator sees
    those of cases in its jurisdiction; a desk with a jurisdiction (a township's, a
    county's) those served within it."""
    if user.role is Role.DEPARTMENT:
        require_department(user, code, f"the queue of {code}")
    found = queries.department_queue(
        db, department=code, scope=scope_of(user), now=wall_clock(),
        statuses=status or (), priorities=priority or (), overdue=overdue, limit=limit,
        offset=offset)
    return Page[QueueItem].model_validate(found, from_attributes=True)


def _target(a: DepartmentAssignment) -> dict[str, str]:
    return {"assignment_id": a.assignment_id, "department": a.department}


@router.post(ACTION + "/claim", responses=ACTION_ERRORS)
async def claim(a: DepartmentAssignment, user: DepartmentUser,
                gateway: IdempotentGateway) -> CommandResult:
    """签收/领办 the assignment."""
    return await gateway.run(Claim, a.case_id, user, **_target(a))


@router.post(ACTION + "/return", responses=ACTION_ERRORS)
async def return_(a: DepartmentAssignment, user: DepartmentUser, gateway: IdempotentGateway,
                  body: ReturnBody) -> CommandResult:
    """退单 within the return window, with a reason code."""
    return await gateway.run(Return, a.case_id, user, **_target(a), **body.model_dump())


@router.post(ACTION + "/progress", responses=ACTION_ERRORS)
async def progress(a: DepartmentAssignment, user: DepartmentUser, gateway: IdempotentGateway,
                   body: ProgressBody) -> CommandResult:
    """进展反馈."""
    return await gateway.run(Progress, a.case_id, user, **_target(a), **body.model_dump())


@router.post(ACTION + "/on-site", responses=ACTION_ERRORS)
async def on_site(a: DepartmentAssignment, user: DepartmentUser, gateway: IdempotentGateway,
                  body: NoteBody | None = None) -> CommandResult:
    """到场."""
    return await gateway.run(ReportOnSite, a.case_id, user, **_target(a),
                             **(body or NoteBody()).model_dump())


@router.post(ACTION + "/extension", responses=ACTION_ERRORS)
async def extension(a: DepartmentAssignment, user: DepartmentUser, gateway: IdempotentGateway,
                    body: ExtensionBody) -> CommandResult:
    """延期申请: ``days`` more on the resolve clock, for the dispatching level to approve."""
    return await gateway.run(RequestExtension, a.case_id, user, **_target(a), **body.model_dump())


@router.post(ACTION + "/handle", responses=ACTION_ERRORS)
async def handle(a: DepartmentAssignment, user: DepartmentUser, gateway: IdempotentGateway,
                 body: HandleBody) -> CommandResult:
    """办结反馈 by the lead department."""
    return await gateway.run(Handle, a.case_id, user, **_target(a), **body.model_dump())


@router.post(ACTION + "/support-done", responses=ACTION_ERRORS)
async def support_done(a: DepartmentAssignment, user: DepartmentUser, gateway: IdempotentGateway,
                       body: NoteBody | None = None) -> CommandResult:
    """配合反馈: a supporting department reports its part."""
    return await gateway.run(SupportDone, a.case_id, user, **_target(a),
                             **(body or NoteBody()).model_dump())
