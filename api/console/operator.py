"""The command center's pages (综治中心): the verification queue (待核实), the case list
and the case page with every action the engine takes in the case's state.

Each action posts a form to ``/console/cases/{id}/act/{action}``; the form becomes the
REST action's own body and goes through the REST handler itself (same checks, same
command, same gateway, the same idempotency as the ``Idempotency-Key`` header). A
refused action shows the case page again with the engine's reason.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel

from api import command_center as center
from api import departments as desks
from api.auth import Role, User, operator_or_admin
from api.console import labels
from api.console.pages import (
    Form,
    Visit,
    Visitor,
    body_from,
    commands_for,
    local_path,
    posted_form,
    projection_caught_up,
    render,
)
from api.console.svg import Cell, case_map
from api.deps import Db, command_center_case, require_readable, scope_of, triage_reference
from api.errors import Forbidden, status_of
from clock import wall_clock
from store import queries, reads
from store.db import Session
from store.models import Case
from store.projector import decode_state
from streams import cases as engine
from streams.cases import CaseState
from streams.errors import GridLinkError

router = APIRouter(include_in_schema=False)
PAGE = 30


@dataclass(frozen=True)
class Action:
    """One command-center action: its REST handler, body and the engine's command."""

    name: str  # the REST path's last segment
    label: str
    command: type[engine.Command]
    handler: Callable[..., Any]
    body: type[BaseModel] | None


ACTIONS = {a.name: a for a in (
    Action("register", "核实立案 register", engine.Register, center.register, center.RegisterBody),
    Action("reject", "不予立案 reject", engine.Reject, center.reject, center.ReasonBody),
    Action("reroute", "改派 re-route", engine.Reroute, center.reroute, center.RerouteBody),
    Action("rule", "裁定 rule", engine.Rule, center.rule, center.RuleBody),
    Action("supervise", "督办 supervise", engine.Supervise, center.supervise,
           center.SuperviseBody),
    Action("suspend", "挂起 suspend", engine.Suspend, center.suspend, center.ReasonBody),
    Action("resume", "恢复 resume", engine.Resume, center.resume, center.NoteBody),
    Action("approve-extension", "审批延期 decide extension", engine.ApproveExtension,
           center.approve_extension, center.ApproveExtensionBody),
    Action("check", "核查 check", engine.Check, center.check, center.NoteBody),
    Action("close", "结案 close", engine.Close, center.close, center.NoteBody),
    Action("rework", "返工 rework", engine.Rework, center.rework, center.ReasonBody),
    Action("evaluate", "回访评价 evaluate", engine.Evaluate, center.evaluate,
           center.EvaluateBody),
    Action("escalate", "上报 escalate", engine.Escalate, center.escalate, center.EscalateBody),
    Action("deescalate", "回退 de-escalate", engine.Deescalate, center.deescalate,
           center.DeescalateBody),
    Action("merge", "合并 merge", engine.AbsorbCase, center.merge, center.MergeBody),
    Action("split", "拆分 split", engine.SplitCase, center.split, center.SplitBody),
)}

#: label, the engine's command, the REST handler, its body
DeskAction = tuple[str, type[engine.Command], Callable[..., Any], type[BaseModel] | None]

#: the desk's actions on one assignment (also shown on the case page to that desk)
DESK_ACTIONS: dict[str, DeskAction] = {
    "claim": ("签收 claim", engine.Claim, desks.claim, None),
    "return": ("退单 return", engine.Return, desks.return_, desks.ReturnBody),
    "on-site": ("到场 on site", engine.ReportOnSite, desks.on_site, desks.NoteBody),
    "progress": ("进展 progress", engine.Progress, desks.progress, desks.ProgressBody),
    "extension": ("申请延期 extension", engine.RequestExtension, desks.extension,
                  desks.ExtensionBody),
    "handle": ("办结 handle", engine.Handle, desks.handle, desks.HandleBody),
    "support-done": ("配合完成 our part done", engine.SupportDone, desks.support_done,
                     desks.NoteBody),
}


def offered(state: CaseState) -> list[Action]:
    """The actions the engine takes in the case's status (it may still refuse one for
    the case's particulars: the page then shows its reason)."""
    shown = [a for a in ACTIONS.values() if engine.allowed(a.command, state.status)]
    if not any(a.requested is not None for a in state.assignments):
        shown = [a for a in shown if a.name != "approve-extension"]
    if state.suspended_at is None:
        shown = [a for a in shown if a.name != "resume"]
    else:
        shown = [a for a in shown if a.name != "suspend"]
    if len(state.event_ids) < 2:
        shown = [a for a in shown if a.name != "split"]
    return shown


async def call(handler: Callable[..., Any], **given: Any) -> Any:
    """A REST handler called with the arguments it takes."""
    wanted = inspect.signature(handler).parameters
    return await handler(**{name: value for name, value in given.items() if name in wanted})


# -- reference lists the forms offer ------------------------------------------------------


def choices(request: Request, db: Session) -> dict[str, Any]:
    rules, _ = triage_reference(request)
    return {"departments": reads.departments(db),
            "categories": sorted(rules.categories.values(), key=lambda c: c.code)}


# -- the verification queue (待核实) --------------------------------------------------------


def _command_center(visit: Visit) -> User:
    return operator_or_admin(visit.user)


@router.get("/console/verify")
def verify_page(request: Request, visit: Visitor, db: Db, done: str | None = None) -> Response:
    user = _command_center(visit)
    page = queries.verification_queue(db, scope=scope_of(user), limit=50, offset=0)
    states = {item.case_id: decode_state(c.state) for item in page.items
              if (c := queries.find_case(db, item.case_id)) is not None}
    return render(request, "verify.html", visit, page=page, states=states, done=done,
                  **choices(request, db))


# -- the case list --------------------------------------------------------------------------


@router.get("/console/cases")
def cases_page(
    request: Request, visit: Visitor, db: Db,
    status: Annotated[list[str] | None, Query()] = None,
    priority: Annotated[list[int] | None, Query()] = None,
    department: Annotated[str | None, Query(max_length=32)] = None,
    region: Annotated[str | None, Query(max_length=15)] = None,
    overdue: Annotated[str | None, Query(max_length=5)] = None,
    text: Annotated[str | None, Query(max_length=100)] = None,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Response:
    user = visit.user
    if user.role is Role.DEPARTMENT and department not in (None, "", user.department):
        raise Forbidden(f"{user.actor} can only list the cases of {user.department}")
    late = {"yes": True, "no": False}.get(overdue or "")
    statuses = [s for s in status or () if s in labels.STATUS]
    page = queries.search_cases(
        db, scope=scope_of(user), region=region or None, priorities=priority or (),
        statuses=statuses, department=department or None, text=(text or "").strip() or None,
        overdue=late, now=wall_clock(), limit=PAGE, offset=offset)
    filters = {"status": statuses, "priority": priority or [], "department": department or "",
               "region": region or "", "overdue": overdue or "", "text": text or ""}
    return render(request, "cases.html", visit, page=page, filters=filters,
                  departments=reads.departments(db), query=request.url.query)


# -- the case page --------------------------------------------------------------------------


def case_context(request: Request, visit: Visit, db: Session, case: Case) -> dict[str, Any]:
    detail = queries.case_detail(db, case)
    state = decode_state(case.state)
    grids = reads.grids_near(db, case.grid_code or case.region_code)
    lon, lat = state.lon, state.lat
    if lon is None and case.grid_code:
        here = next((g for g in grids if g.code == case.grid_code), None)
        lon, lat = (here.lon, here.lat) if here else (None, None)
    drawing = case_map([Cell(g.code, g.name, g.lon or 0.0, g.lat or 0.0) for g in grids],
                       here=case.grid_code, lon=lon, lat=lat)
    events = queries.event_records(db, case.case_id, state.event_ids)
    user = visit.user
    center_actions = offered(state) if user.role in (Role.OPERATOR, Role.ADMINISTRATOR) else []
    own = [a for a in detail.assignments if user.role is Role.DEPARTMENT
           and user.sees_unit(a.department, a.region)]
    names = reads.region_names(db, [case.region_code, case.coordinating_region])
    return {"case": case, "detail": detail, "state": state, "map_svg": drawing,
            "events": [events[i] for i in state.event_ids if i in events],
            "actions": center_actions, "own": own, "desk_actions": DESK_ACTIONS,
            "region_names": names, **choices(request, db)}


@router.get("/console/cases/{case_id}")
def case_page(request: Request, case_id: str, visit: Visitor, db: Db,
              done: str | None = None) -> Response:
    case = queries.get_case(db, case_id)
    require_readable(visit.user, case, db)
    return render(request, "case.html", visit, done=done,
                  **case_context(request, visit, db, case))


def _body(action: Action, form: Form) -> BaseModel | None:
    if action.body is None:
        return None
    if action.name == "register":
        lead = form.get("lead")
        routing = (center.RoutingBody(lead=lead, supports=[s for s in form.getlist("supports")
                                                           if s and s != lead])
                   if lead else None)
        return body_from(center.RegisterBody, form, routing=routing)
    if action.name in ("reroute", "rule"):
        lead = form.get("lead") or ""
        supports = [s for s in form.getlist("supports") if s and s != lead]
        return body_from(action.body, form, supports=supports)
    return body_from(action.body, form)


@router.post("/console/cases/{case_id}/act/{action_name}")
async def act(request: Request, case_id: str, action_name: str, visit: Visitor,
              db: Db) -> Response:
    form = await posted_form(request, visit)
    user = _command_center(visit)
    action = ACTIONS.get(action_name)
    if action is None:
        raise Forbidden(f"there is no command-center action {action_name}")
    case = command_center_case(case_id, user, db)
    back = local_path(form.get("back"), f"/console/cases/{case_id}")
    try:
        body = _body(action, form)
        result = await call(action.handler, case=case, user=user, body=body, db=db,
                            request=request,
                            gateway=commands_for(request, f"/cases/{case_id}/{action.name}",
                                                 form))
    except GridLinkError as error:
        db.expire_all()
        fresh = queries.get_case(db, case_id)
        return render(request, "case.html", visit, status=status_of(error)[0],
                      problem=f"{action.label}: {error.reason}",
                      **case_context(request, visit, db, fresh))
    await projection_caught_up(request, result)
    seqs = ", ".join(f"#{n}" for n in result.seqs) or "无新事件 nothing new"
    done = f"{action.label} ✓ {labels.STATUS.get(result.status or '', result.status)} ({seqs})"
    separator = "&" if "?" in back else "?"
    return RedirectResponse(f"{back}{separator}done={quote(done, safe='')}", status_code=303)


__all__ = ["ACTIONS", "DESK_ACTIONS", "Action", "call", "case_context", "offered", "router"]
