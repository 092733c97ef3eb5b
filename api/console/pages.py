"""What every console page shares: the signed-in visitor, forms (CSRF and idempotency
keys), the templates, and problems shown as pages.

Pages are server-rendered Jinja2 templates (``api/templates``) with one stylesheet
and one small script of the project's own (``api/static/console.*``); nothing is
loaded from outside, so the console works on a network with no internet.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, TypeVar
from urllib.parse import parse_qsl, quote

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape
from pydantic import BaseModel, ValidationError

from api.auth import Role, User, session_user
from api.commands import CommandResult
from api.console import labels
from api.errors import Forbidden, InvalidRequest
from api.idempotency import FORM_FIELD, Commands, checked_key
from api.sessions import CSRF_FIELD, Session
from clock import wall_clock
from store import reads
from streams.errors import GridLinkError
from streams.zone import TZ

PROJECTION_WAIT_SECONDS = 5.0  # after an action, until the page can show what it did


class SignInRequired(Exception):
    """The page needs a signed-in visitor: answered with a redirect to /login."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.path = path


@dataclass(frozen=True)
class Visit:
    """The signed-in person looking at a page, and the CSRF token its forms carry."""

    user: User
    session: Session
    csrf: str


def visitor(request: Request) -> Visit:
    signed_in = session_user(request)
    if signed_in is None:
        raise SignInRequired(request.url.path)
    user, session = signed_in
    return Visit(user=user, session=session,
                 csrf=request.app.state.sessions.csrf_token(session))


Visitor = Annotated[Visit, Depends(visitor)]


class Form:
    """A posted ``application/x-www-form-urlencoded`` form."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self.pairs = pairs

    def get(self, name: str, default: str | None = None) -> str | None:
        values = self.getlist(name)
        return values[-1] if values else default  # a hidden default, then a checkbox

    def getlist(self, name: str) -> list[str]:
        return [value for key, value in self.pairs if key == name]

    def idempotency_key(self) -> str:
        key = checked_key(self.get(FORM_FIELD), field_name=FORM_FIELD)
        if key is None:
            raise InvalidRequest("the form has no idempotency key: reload the page and try "
                                 "again", field=FORM_FIELD)
        return key


async def posted_form(request: Request, visit: Visit) -> Form:
    """The form, once its CSRF token is checked against the visitor's session."""
    try:
        form = Form(parse_qsl((await request.body()).decode("utf-8"), keep_blank_values=True))
    except UnicodeDecodeError:
        raise InvalidRequest("the form is not UTF-8", field="body") from None
    if not request.app.state.sessions.check_csrf(visit.session, form.get(CSRF_FIELD)):
        raise Forbidden("this form did not come from your console session (CSRF token "
                        "missing or stale): reload the page and send it again")
    return form


Body = TypeVar("Body", bound=BaseModel)


def body_from(model: type[Body], form: Form, **given: Any) -> Body:
    """A REST body model from the form's fields of the same names (``given`` first)."""
    data: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        if name in given:
            data[name] = given[name]
            continue
        values = [v for v in form.getlist(name)]
        if "list" in str(info.annotation):
            data[name] = [v.strip() for v in values if v.strip()]
        elif values and values[-1].strip() != "":
            value = values[-1].strip()
            data[name] = int(value) if value.isdigit() and name != "note" else value
    try:
        return model.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise InvalidRequest(f"{where}: {first['msg']}", field=where) from None


def commands_for(request: Request, action_path: str, form: Form) -> Commands:
    """The gateway for one console action, keyed as the same REST action would be."""
    state = request.app.state
    return Commands(gateway=state.gateway, store=state.store, answers=state.answers,
                    action=action_path, key=form.idempotency_key())


async def projection_caught_up(request: Request, result: CommandResult) -> None:
    """Wait (a little) until the store shows what the command did: the next page reads
    it there."""
    if not result.seqs:
        return
    store = request.app.state.store
    deadline = time.monotonic() + PROJECTION_WAIT_SECONDS

    def seen() -> bool:
        with store.sessions() as session:
            return (reads.last_seq(session, result.case_id) or 0) >= max(result.seqs)

    while not await asyncio.to_thread(seen) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)


def local_path(path: str | None, default: str) -> str:
    """``path`` if it is one of this site's own pages (no open redirects)."""
    if path and path.startswith("/") and not path.startswith("//") and "\\" not in path:
        return path
    return default


def home_of(user: User) -> str:
    return {Role.OPERATOR: "/console/verify", Role.DEPARTMENT: "/console/desk",
            Role.DISPLAY: "/board"}.get(user.role, "/console/cases")


# -- templates ----------------------------------------------------------------------------


def _local(moment: datetime | None, pattern: str = "%m-%d %H:%M") -> str:
    return moment.astimezone(TZ).strftime(pattern) if moment is not None else "—"


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def _hours(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.0f} min"


def _iso(moment: datetime | None) -> str:
    return moment.isoformat() if moment is not None else ""


TEMPLATES = Environment(loader=PackageLoader("api", "templates"),
                        autoescape=select_autoescape(["html"]), trim_blocks=True,
                        lstrip_blocks=True)
TEMPLATES.filters.update(local=_local, percent=_percent, hours=_hours, iso=_iso,
                         urlquote=lambda value: quote(str(value), safe=""))
TEMPLATES.globals.update(labels=labels, new_key=lambda: uuid.uuid4().hex,
                         FORM_KEY=FORM_FIELD, CSRF=CSRF_FIELD)


def render(request: Request, template: str, visit: Visit | None, *, status: int = 200,
           **context: Any) -> HTMLResponse:
    page = TEMPLATES.get_template(template).render(
        request=request, visit=visit, user=visit.user if visit else None,
        now=wall_clock(), path=request.url.path, **context)
    return HTMLResponse(page, status_code=status, headers={"Cache-Control": "no-store"})


def problem_page(request: Request, status: int, title: str,
                 error: GridLinkError) -> Response | None:
    """The console's pages show a problem as a page (the REST API keeps its JSON)."""
    if not request.url.path.startswith(("/console", "/login", "/logout")):
        return None
    signed_in = session_user(request)
    visit = None
    if signed_in is not None:
        user, session = signed_in
        visit = Visit(user=user, session=session,
                      csrf=request.app.state.sessions.csrf_token(session))
    return render(request, "problem.html", visit, status=status, title=title,
                  detail=error.reason, code=error.code)


def sign_in_redirect(request: Request, error: Exception) -> Response:
    assert isinstance(error, SignInRequired)
    return RedirectResponse(f"/login?next={quote(error.path, safe='/')}", status_code=303)


__all__ = ["Form", "SignInRequired", "TEMPLATES", "Visit", "Visitor", "body_from",
           "commands_for", "home_of", "local_path", "posted_form", "problem_page",
           "projection_caught_up", "render", "sign_in_redirect", "visitor"]
