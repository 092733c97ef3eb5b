"""The department desk (职能部门): its to-do queue, most urgent first with live SLA
countdowns, and the actions on each assignment — claim, return with a reason code,
on site, progress, extension request, handle with the outcome, a support's part done.

New assignments appear without a reload: the page follows the board's server-sent
events (``/board/events``, which sends a desk only what its department serves within
its jurisdiction) and fetches its rows again (``/console/desk/rows``), waiting until
the store has read the event it was told of.
"""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response

from api.auth import Role, User, department_or_admin
from api.console import labels
from api.console.operator import DESK_ACTIONS, call
from api.console.pages import (
    TEMPLATES,
    Visit,
    Visitor,
    body_from,
    commands_for,
    local_path,
    posted_form,
    projection_caught_up,
    render,
)
from api.deps import Db, department_assignment, scope_of
from api.errors import Forbidden, InvalidRequest, status_of
from clock import wall_clock
from store import queries, reads
from store.db import Session
from streams.errors import GridLinkError

router = APIRouter(include_in_schema=False)
ROWS = 200
WAIT_SECONDS = 5.0
Department = Annotated[str | None, Query(max_length=32)]


def _desk(visit: Visit, department: str | None) -> tuple[User, str]:
    user = department_or_admin(visit.user)
    code = user.department if user.role is Role.DEPARTMENT else department
    if not code:
        raise InvalidRequest("an administrator opens a desk with ?department=<code>",
                             field="department")
    return user, code


def _rows(request: Request, visit: Visit, db: Session, department: str) -> dict[str, Any]:
    user = visit.user
    page = queries.department_queue(db, department=department, scope=scope_of(user),
                                    now=wall_clock(), limit=ROWS, offset=0)
    return {"page": page, "department": department, "desk_actions": DESK_ACTIONS,
            "departments": reads.departments(db), "reasons": labels.RETURN_REASONS}


@router.get("/console/desk")
def desk_page(request: Request, visit: Visitor, db: Db, department: Department = None,
              done: str | None = None) -> Response:
    _, code = _desk(visit, department)
    return render(request, "desk.html", visit, done=done, **_rows(request, visit, db, code))


@router.get("/console/desk/rows")
async def desk_rows(request: Request, visit: Visitor, db: Db, department: Department = None,
                    case: Annotated[str | None, Query(max_length=64, alias="case")] = None,
                    seq: Annotated[int | None, Query(ge=1)] = None) -> Response:
    """The queue's rows alone, for the live page; with ``case`` and ``seq``, once the
    store holds that event of that case (or after a few seconds)."""
    _, code = _desk(visit, department)
    if case is not None and seq is not None:
        deadline = time.monotonic() + WAIT_SECONDS
        store = request.app.state.store

        def seen() -> bool:
            with store.sessions() as session:
                return (reads.last_seq(session, case) or 0) >= seq

        while not await asyncio.to_thread(seen) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        db.expire_all()
    context = _rows(request, visit, db, code)
    html = TEMPLATES.get_template("desk_rows.html").render(
        now=wall_clock(), visit=visit, user=visit.user, **context)
    return Response(html, media_type="text/html; charset=utf-8",
                    headers={"Cache-Control": "no-store"})


@router.post("/console/desk/{case_id}/{assignment_id}/{action_name}")
async def desk_act(request: Request, case_id: str, assignment_id: str, action_name: str,
                   visit: Visitor, db: Db) -> Response:
    form = await posted_form(request, visit)
    user = department_or_admin(visit.user)
    if action_name not in DESK_ACTIONS:
        raise Forbidden(f"there is no department action {action_name}")
    label, _, handler, body_model = DESK_ACTIONS[action_name]
    assignment = department_assignment(case_id, assignment_id, user, db)
    back = local_path(form.get("back"), "/console/desk")
    try:
        body = body_from(body_model, form) if body_model is not None else None
        result = await call(handler, a=assignment, user=user, body=body, gateway=commands_for(
            request, f"/cases/{case_id}/assignments/{assignment_id}/{action_name}", form))
    except GridLinkError as error:
        db.expire_all()
        context = _rows(request, visit, db, assignment.department)
        return render(request, "desk.html", visit, status=status_of(error)[0],
                      problem=f"{label} · {case_id} {assignment_id}: {error.reason}", **context)
    await projection_caught_up(request, result)
    done = (f"{label} ✓ {case_id} {assignment_id} · "
            f"{labels.STATUS.get(result.status or '', result.status)}")
    separator = "&" if "?" in back else "?"
    return RedirectResponse(f"{back}{separator}done={quote(done, safe='')}", status_code=303)


__all__ = ["router"]
