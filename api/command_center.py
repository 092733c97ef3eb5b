"""The command center (综治中心): the verification queue and the actions on a case.

Operators act on cases within their jurisdiction; each action is one command
and the case engine decides (a 409 problem carries its reason).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter
from pydantic import BaseModel, Field

from api import queries
from api.auth import CommandCenterUser, Role, User, require_region
from api.commands import CommandResult, Gateway
from api.deps import CommandCenterCase, Db, Limit, Offset, scope_of
from api.errors import InvalidRequest, problem_responses
from api.schemas import CaseSummary, Page
from streams.cases import (
    ApproveExtension,
    Check,
    Close,
    Deescalate,
    Escalate,
    Evaluate,
    Register,
    Reject,
    Reroute,
    Resume,
    Rework,
    Rule,
    Satisfaction,
    Supervise,
    Suspend,
)
from streams.records import Level, Priority, Routing

router = APIRouter(tags=["command center"])
ACTION_ERRORS = problem_responses(401, 403, 404, 409, 422, 504)
Department = Annotated[str, Field(max_length=32, examples=["chengguan"])]
Text = Annotated[str, Field(max_length=2000)]
Reason = Annotated[str, Field(min_length=1, max_length=2000, examples=["媒体关注"])]
Region = Annotated[str | None, Field(None, max_length=15, examples=["371502"],
                                     description="the deciding jurisdiction (default: the "
                                     "operator's own; required of an administrator)")]


class RoutingBody(BaseModel):
    lead: Department
    supports: list[Department] = Field(default_factory=list, examples=[["sifa"]])


class RegisterBody(BaseModel):
    note: Text = ""
    dispatch: bool = Field(True, description="dispatch at once (交办)")
    priority: int | None = Field(None, ge=1, le=4, description="corrected priority, 1 = P1")
    routing: RoutingBody | None = Field(None, description="corrected routing")


class ReasonBody(BaseModel):
    reason: Reason


class NoteBody(BaseModel):
    note: Text = ""


class RerouteBody(RoutingBody):
    reason: Reason


class RuleBody(RoutingBody):
    reason: Reason
    by_region: Region = None


class SuperviseBody(BaseModel):
    level: Level | None = Field(None, description="督办 level, 1 city … 5 grid (default: the "
                                "operator's own)")
    note: Text = ""


class EscalateBody(BaseModel):
    level: Level | None = Field(None, description="target level (default: one up)")
    reason: Reason


class DeescalateBody(BaseModel):
    level: Level
    reason: Reason
    by_region: Region = None


class ApproveExtensionBody(BaseModel):
    assignment_id: str = Field(max_length=16, examples=["A1"])
    approved: bool = True
    note: Text = ""


class EvaluateBody(BaseModel):
    result: Satisfaction = Field(examples=["satisfied"])
    note: Text = ""


def _deciding_region(user: User, given: str | None) -> str:
    region = given or user.region
    if region is None:
        raise InvalidRequest("by_region is required of an administrator", field="by_region")
    require_region(user, region, "the deciding jurisdiction")
    return region


def _routing(body: RoutingBody) -> Routing:
    return Routing(lead=body.lead, supports=tuple(body.supports))


@router.get("/verification-queue", response_model=Page[CaseSummary],
            responses=problem_responses(401, 403, 422))
def verification_queue(user: CommandCenterUser, db: Db,
                       limit: Limit = 50,
                       offset: Offset = 0) -> Page[CaseSummary]:
    """Cases awaiting verification (待核实) in the operator's jurisdiction."""
    return queries.verification_queue(db, scope=scope_of(user), limit=limit, offset=offset)


@router.post("/cases/{case_id}/register", responses=ACTION_ERRORS)
async def register(case: CommandCenterCase, user: CommandCenterUser, gateway: Gateway,
                   body: RegisterBody) -> CommandResult:
    """立案 after verification; may correct the priority or the routing."""
    return await gateway.run(
        Register, case.case_id, user, note=body.note, dispatch=body.dispatch,
        priority=Priority(body.priority) if body.priority else None,
        routing=_routing(body.routing) if body.routing else None)


@router.post("/cases/{case_id}/reject", responses=ACTION_ERRORS)
async def reject(case: CommandCenterCase, user: CommandCenterUser, gateway: Gateway,
                 body: ReasonBody) -> CommandResult:
    """不予立案."""
    return await gateway.run(Reject, case.case_id, user, reason=body.reason)


@router.post("/cases/{case_id}/reroute", responses=ACTION_ERRORS)
async def reroute(case: CommandCenterCase, user: CommandCenterUser, gateway: Gateway,
                  body: RerouteBody) -> CommandResult:
    """改派: cancel the current assignments and dispatch afresh."""
    return await gateway.run(Reroute, case.case_id, user, routing=_routing(body),
                             reason=body.reason)


@router.post("/cases/{case_id}/rule", responses=ACTION_ERRORS)
async def rule(case: CommandCenterCase, user: CommandCenterUser, gateway: Gateway,
               body: RuleBody) -> CommandResult:
    """裁定 a disputed lead, by the jurisdiction the ruling is awaited from."""
    return await gateway.run(Rule, case.case_id, user, lead=body.lead,
                             supports=tuple(body.supports), reason=body.reason,
                             by_region=_deciding_region(user, body.by_region))


@router.post("/cases/{case_id}/supervise", responses=ACTION_ERRORS)
async def supervise(case: CommandCenterCase, user: CommandCenterUser, gateway: Gateway,
                    body: SuperviseBody) -> CommandResult:
    """督办."""
    level = body.level or (user.level if user.role is Role.OPERATOR else None)
    return await gateway.run(Supervise, case.case_id, user, level=level, note=body.note)


@router.post("/cases/{case_id}/suspend", responses=ACTION_ERRORS)
async def suspend(case: CommandCenterCase, user: CommandCenterUser, gateway: Gateway,
                  body: ReasonBody) -> CommandResult:
    """挂起 while waiting on the citizen: every clock pauses."""
    return await gateway.run(Suspend, case.case_id, user, reason=body.reason)


@router.post("/cases/{case_id}/resume", responses=ACTION_ERRORS)
async def resume(case: CommandCenterCase, user: CommandCenterUser, gateway: Gateway,
                 body: NoteBody | None = None) -> CommandResult:
    """Resume a suspended case."""
    return await gateway.run(Resume, case.case_id, user, note=(body or NoteBody()).note)


@router.post("/cases/{case_id}/approve-extension", responses=ACTION_ERRORS)
async def approve_extension(case: CommandCenterCase, user: CommandCenterUser, gateway: Gateway,
                            body: ApproveExtensionBody) -> CommandResult:
    """Decide a pending extension request (``approved`` false denies it)."""
    return await gateway.run(ApproveExtension, case.case_id, user, **body.model_dump())


@router.post("/cases/{case_id}/check", responses=ACTION_ERRORS)
async def check(case: CommandCenterCase, user: CommandCenterUser, gateway: Gateway,
                body: NoteBody | None = None) -> CommandResult:
    """核查: start verifying the outcome."""
    return await gateway.run(Check, case.case_id, user, note=(body or NoteBody()).note)


@router.post("/cases/{case_id}/close", responses=ACTION_ERRORS)
async def close(case: CommandCenterCase, user: CommandCenterUser, gateway: Gateway,
                body: NoteBody | None = None) -> CommandResult:
    """结案: the outcome is verified."""
    return await gateway.run(Close, case.case_id, user, note=(body or NoteBody()).note)


@router.post("/cases/{case_id}/rework", responses=ACTION_ERRORS)
async def rework(case: CommandCenterCase, user: CommandCenterUser, gateway: Gateway,
                 body: ReasonBody) -> CommandResult:
    """返工: verification failed, the lead works again."""
    return await gateway.run(Rework, case.case_id, user, reason=body.reason)


@router.post("/cases/{case_id}/evaluate", responses=ACTION_ERRORS)
async def evaluate(case: CommandCenterCase, user: CommandCenterUser, gateway: Gateway,
                   body: EvaluateBody) -> CommandResult:
    """回访评价 of a closed case."""
    return await gateway.run(Evaluate, case.case_id, user, result=body.result, note=body.note)


@router.post("/cases/{case_id}/escalate", responses=ACTION_ERRORS)
async def escalate(case: CommandCenterCase, user: CommandCenterUser, gateway: Gateway,
                   body: EscalateBody) -> CommandResult:
    """Move coordination up (default: one level)."""
    return await gateway.run(Escalate, case.case_id, user, level=body.level, reason=body.reason)


@router.post("/cases/{case_id}/deescalate", responses=ACTION_ERRORS)
async def deescalate(case: CommandCenterCase, user: CommandCenterUser, gateway: Gateway,
                     body: DeescalateBody) -> CommandResult:
    """Move coordination down, by the dispatcher of the current level."""
    return await gateway.run(Deescalate, case.case_id, user, level=body.level,
                             reason=body.reason, by_region=_deciding_region(user, body.by_region))
