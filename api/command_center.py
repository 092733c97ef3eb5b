"""The command center (综治中心): the verification queue and the actions on a case.

Operators act on cases within their jurisdiction; each action is one command
and the case engine decides (a 409 problem carries its reason).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from api.auth import CommandCenterUser, Role, User, require_region
from api.commands import CommandResult, result_of
from api.deps import CommandCenterCase, Db, Limit, Offset, scope_of, triage_reference
from api.errors import InvalidRequest, problem_responses
from api.idempotency import IdempotentGateway
from api.schemas import CASE_ID_EXAMPLE, CaseSummary, Page
from store import queries
from store.projector import decode_state
from streams.cases import (
    AbsorbCase,
    ApproveExtension,
    CaseStatus,
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
    SplitCase,
    Supervise,
    Suspend,
)
from streams.cases.follow_ups import MERGE, OPEN, case_location
from streams.errors import TransitionRejected
from streams.records import Classification, Level, Priority, Routing
from streams.route import route

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
    category: str | None = Field(None, max_length=32, examples=["05.03"],
                                 description="corrected category (a taxonomy code)")
    priority: int | None = Field(None, ge=1, le=4, description="corrected priority, 1 = P1")
    routing: RoutingBody | None = Field(None, description="corrected routing")


class ReasonBody(BaseModel):
    reason: Reason


class NoteBody(BaseModel):
    note: Text = ""


class RerouteBody(RoutingBody):
    reason: Reason
    category: str | None = Field(None, max_length=32, examples=["06.02"],
                                 description="corrected category, if the case was misclassified")


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


class MergeBody(BaseModel):
    into: str = Field(min_length=1, max_length=64, examples=["C20261126-371502004-1a2b3c4d"],
                      description="the case that takes this one's events and goes on (合并目标)")
    reason: Reason


class SplitBody(BaseModel):
    event_ids: list[Annotated[str, Field(min_length=1, max_length=128)]] = Field(
        min_length=1, max_length=200, examples=[["grid:GR-20261126-0002"]],
        description="events of the case (its `event_ids`) to move to a new case; not all")
    reason: Reason
    category: str | None = Field(None, max_length=32, examples=["05.01"],
                                 description="the new case's category (default: this "
                                 "case's); its departments then follow the routing table")


class MergeResult(CommandResult):
    """The merged case, now ``merged``, and the case that took its events."""

    into: CommandResult = Field(description="the target case (合并目标): it holds the events now")


class SplitResult(CommandResult):
    """The case the events left, and the new case they opened."""

    new_case: CommandResult = Field(description="the case opened with the events split off "
                                    "(拆分), e.g. `" + CASE_ID_EXAMPLE + "-S1`")


#: statuses a case cannot be merged from (the engine refuses them too)
_UNMERGEABLE = frozenset({CaseStatus.CLOSED, CaseStatus.REJECTED, CaseStatus.EVALUATED,
                          CaseStatus.MERGED})


def _deciding_region(user: User, given: str | None) -> str:
    region = given or user.region
    if region is None:
        raise InvalidRequest("by_region is required of an administrator", field="by_region")
    require_region(user, region, "the deciding jurisdiction")
    return region


def _routing(request: Request, body: RoutingBody) -> Routing:
    """The routing an operator chose, every department of it one the city has (a code
    that is not would otherwise name a queue nobody reads)."""
    known = triage_reference(request)[1].departments
    for field, code in [("lead", body.lead), *(("supports", c) for c in body.supports)]:
        if code not in known:
            raise InvalidRequest(f"no department {code!r} in the reference data; known: "
                                 f"{', '.join(sorted(known))}", field=field)
    return Routing(lead=body.lead, supports=tuple(body.supports))


@router.get("/verification-queue", response_model=Page[CaseSummary],
            responses=problem_responses(401, 403, 422))
def verification_queue(user: CommandCenterUser, db: Db,
                       limit: Limit = 50,
                       offset: Offset = 0) -> Page[CaseSummary]:
    """Cases awaiting verification (待核实) in the operator's jurisdiction."""
    found = queries.verification_queue(db, scope=scope_of(user), limit=limit, offset=offset)
    return Page[CaseSummary].model_validate(found, from_attributes=True)


def _classification(request: Request, user: User, code: str, field: str) -> Classification:
    """An operator's choice of category, as the engine records a classification."""
    rules, _ = triage_reference(request)
    category = rules.categories.get(code)
    if category is None:
        raise InvalidRequest(f"no category {code} in the taxonomy", field=field)
    return Classification(category=category.code, name=category.name_zh, confidence=1.0,
                          rule=f"operator:{user.name}")


@router.post("/cases/{case_id}/register", responses=ACTION_ERRORS)
async def register(case: CommandCenterCase, user: CommandCenterUser,
                   gateway: IdempotentGateway, request: Request, db: Db,
                   body: RegisterBody) -> CommandResult:
    """立案 after verification; may correct the category, the priority or the routing. A
    corrected category without a routing takes that category's departments from the
    routing table."""
    classification = (_classification(request, user, body.category, "category")
                      if body.category else None)
    routing = _routing(request, body.routing) if body.routing else None
    if classification is not None and routing is None:
        state = decode_state(case.state)
        first = queries.event_records(db, case.case_id, state.event_ids[:1])
        if first:
            routing = route(classification, next(iter(first.values())), case_location(state),
                            triage_reference(request)[0])
    return await gateway.run(
        Register, case.case_id, user, note=body.note, dispatch=body.dispatch,
        classification=classification,
        priority=Priority(body.priority) if body.priority else None, routing=routing)


@router.post("/cases/{case_id}/reject", responses=ACTION_ERRORS)
async def reject(case: CommandCenterCase, user: CommandCenterUser, gateway: IdempotentGateway,
                 body: ReasonBody) -> CommandResult:
    """不予立案."""
    return await gateway.run(Reject, case.case_id, user, reason=body.reason)


@router.post("/cases/{case_id}/reroute", responses=ACTION_ERRORS)
async def reroute(case: CommandCenterCase, user: CommandCenterUser, gateway: IdempotentGateway,
                  request: Request, body: RerouteBody) -> CommandResult:
    """改派: cancel the current assignments and dispatch afresh; may correct the category."""
    classification = (_classification(request, user, body.category, "category")
                      if body.category else None)
    return await gateway.run(Reroute, case.case_id, user, routing=_routing(request, body),
                             reason=body.reason, classification=classification)


@router.post("/cases/{case_id}/rule", responses=ACTION_ERRORS)
async def rule(case: CommandCenterCase, user: CommandCenterUser, gateway: IdempotentGateway,
               request: Request, body: RuleBody) -> CommandResult:
    """裁定 a disputed lead, by the jurisdiction the ruling is awaited from."""
    routing = _routing(request, body)
    return await gateway.run(Rule, case.case_id, user, lead=routing.lead,
                             supports=routing.supports, reason=body.reason,
                             by_region=_deciding_region(user, body.by_region))


@router.post("/cases/{case_id}/supervise", responses=ACTION_ERRORS)
async def supervise(case: CommandCenterCase, user: CommandCenterUser, gateway: IdempotentGateway,
                    body: SuperviseBody) -> CommandResult:
    """督办."""
    level = body.level or (user.level if user.role is Role.OPERATOR else None)
    return await gateway.run(Supervise, case.case_id, user, level=level, note=body.note)


@router.post("/cases/{case_id}/suspend", responses=ACTION_ERRORS)
async def suspend(case: CommandCenterCase, user: CommandCenterUser, gateway: IdempotentGateway,
                  body: ReasonBody) -> CommandResult:
    """挂起 while waiting on the citizen: every clock pauses."""
    return await gateway.run(Suspend, case.case_id, user, reason=body.reason)


@router.post("/cases/{case_id}/resume", responses=ACTION_ERRORS)
async def resume(case: CommandCenterCase, user: CommandCenterUser, gateway: IdempotentGateway,
                 body: NoteBody | None = None) -> CommandResult:
    """Resume a suspended case."""
    return await gateway.run(Resume, case.case_id, user, note=(body or NoteBody()).note)


@router.post("/cases/{case_id}/approve-extension", responses=ACTION_ERRORS)
async def approve_extension(case: CommandCenterCase, user: CommandCenterUser,
                            gateway: IdempotentGateway,
                            body: ApproveExtensionBody) -> CommandResult:
    """Decide a pending extension request (``approved`` false denies it)."""
    return await gateway.run(ApproveExtension, case.case_id, user, **body.model_dump())


@router.post("/cases/{case_id}/check", responses=ACTION_ERRORS)
async def check(case: CommandCenterCase, user: CommandCenterUser, gateway: IdempotentGateway,
                body: NoteBody | None = None) -> CommandResult:
    """核查: start verifying the outcome."""
    return await gateway.run(Check, case.case_id, user, note=(body or NoteBody()).note)


@router.post("/cases/{case_id}/close", responses=ACTION_ERRORS)
async def close(case: CommandCenterCase, user: CommandCenterUser, gateway: IdempotentGateway,
                body: NoteBody | None = None) -> CommandResult:
    """结案: the outcome is verified."""
    return await gateway.run(Close, case.case_id, user, note=(body or NoteBody()).note)


@router.post("/cases/{case_id}/rework", responses=ACTION_ERRORS)
async def rework(case: CommandCenterCase, user: CommandCenterUser, gateway: IdempotentGateway,
                 body: ReasonBody) -> CommandResult:
    """返工: verification failed, the lead works again."""
    return await gateway.run(Rework, case.case_id, user, reason=body.reason)


@router.post("/cases/{case_id}/evaluate", responses=ACTION_ERRORS)
async def evaluate(case: CommandCenterCase, user: CommandCenterUser, gateway: IdempotentGateway,
                   body: EvaluateBody) -> CommandResult:
    """回访评价 of a closed case."""
    return await gateway.run(Evaluate, case.case_id, user, result=body.result, note=body.note)


@router.post("/cases/{case_id}/escalate", responses=ACTION_ERRORS)
async def escalate(case: CommandCenterCase, user: CommandCenterUser, gateway: IdempotentGateway,
                   body: EscalateBody) -> CommandResult:
    """Move coordination up (default: one level)."""
    return await gateway.run(Escalate, case.case_id, user, level=body.level, reason=body.reason)


@router.post("/cases/{case_id}/deescalate", responses=ACTION_ERRORS)
async def deescalate(case: CommandCenterCase, user: CommandCenterUser, gateway: IdempotentGateway,
                     body: DeescalateBody) -> CommandResult:
    """Move coordination down, by the dispatcher of the current level."""
    return await gateway.run(Deescalate, case.case_id, user, level=body.level,
                             reason=body.reason, by_region=_deciding_region(user, body.by_region))


@router.post("/cases/{case_id}/merge", responses=ACTION_ERRORS)
async def merge(case: CommandCenterCase, user: CommandCenterUser,
                gateway: IdempotentGateway, db: Db,
                body: MergeBody) -> MergeResult:
    """合并: merge this case into case ``into``, which takes its events (as if linked to
    it) and goes on; this case ends ``merged``: its open assignments are cancelled (the
    departments are told) and its deadlines stop. Both cases must lie in the operator's
    jurisdiction.

    The target decides first (it may refuse: closed, merged, the same case), then this
    case (it may refuse: closed or merged meanwhile, or an event linked since the
    operator looked — merge again); if it refuses, the target gives the events back.
    Either way no event is lost and nothing is left half merged: 409 says why."""
    if body.into == case.case_id:
        raise InvalidRequest(f"case {case.case_id} cannot be merged into itself", field="into")
    target = queries.find_case(db, body.into)
    if target is None:
        raise InvalidRequest(f"no case {body.into} to merge into", field="into")
    require_region(user, target.region_code, f"case {body.into}")
    status = CaseStatus(case.status)
    if status in _UNMERGEABLE:
        where = f" into case {case.merged_into}" if case.merged_into else ""
        raise TransitionRejected(f"case {case.case_id} is {status}{where}: it cannot be merged")
    state = decode_state(case.state)
    into, then = await gateway.run_chain(
        AbsorbCase, body.into, user, follow_up=MERGE, source=case.case_id,
        event_ids=state.event_ids, priority=state.priority, reason=body.reason)
    if then is None:
        raise TransitionRejected(f"case {body.into} took nothing of case {case.case_id}")
    if not then.accepted:
        raise TransitionRejected(f"case {case.case_id} refused the merge: {then.reason}; case "
                                 f"{body.into} gives its events back")
    return MergeResult(**result_of(then).model_dump(), into=into)


@router.post("/cases/{case_id}/split", responses=ACTION_ERRORS)
async def split(case: CommandCenterCase, user: CommandCenterUser,
                gateway: IdempotentGateway, db: Db,
                request: Request, body: SplitBody) -> SplitResult:
    """拆分: move some of the case's events to a new case, opened at once with them at
    the case's place, with its priority and its departments — or, given a ``category``,
    that category's departments from the routing table. The new case waits for
    verification (核实) if this one still does. At least one event stays (409 otherwise);
    an event the case does not hold is a 422."""
    state = decode_state(case.state)
    wanted = list(dict.fromkeys(body.event_ids))
    unknown = [i for i in wanted if i not in state.event_ids]
    if unknown:
        raise InvalidRequest(f"case {case.case_id} holds no event {', '.join(unknown)} "
                             f"(its events: {', '.join(state.event_ids)})", field="event_ids")
    records = queries.event_records(db, case.case_id, wanted)
    if len(records) < len(wanted):
        missing = ", ".join(i for i in wanted if i not in records)
        raise TransitionRejected(f"events {missing} of case {case.case_id} are not readable yet; "
                                 "try again in a moment")
    events = tuple(records[i] for i in wanted)
    classification = routing = None
    if body.category is not None:
        classification = _classification(request, user, body.category, "category")
        routing = route(classification, events[0], case_location(state),
                        triage_reference(request)[0])
    result, then = await gateway.run_chain(
        SplitCase, case.case_id, user, follow_up=OPEN, events=events, reason=body.reason,
        classification=classification, routing=routing)
    if then is None:
        raise TransitionRejected(f"case {case.case_id} split nothing off")
    if not then.accepted:  # cannot happen: the new case's id is this case's alone
        raise TransitionRejected(f"the events left case {case.case_id}, but the new case "
                                 f"{then.case_id} did not open: {then.reason}")
    return SplitResult(**result.model_dump(), new_case=result_of(then))
