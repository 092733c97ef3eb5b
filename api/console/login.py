"""Signing in and out (登录 / 退出).

``GET /login`` shows the form: a user name and a password or API key. Its CSRF
token is a random value kept in a short-lived HttpOnly, SameSite=Strict cookie and
repeated in the form (double submit: there is no session yet to tie it to).
``POST /login`` checks the name and secret against the users file (scrypt), sets the
session cookie (:mod:`api.sessions`) and goes to ``next`` or the user's home page;
``POST /logout`` (with the session's CSRF token) ends the session.
"""

from __future__ import annotations

import asyncio
import hmac
import secrets
from typing import Annotated
from urllib.parse import parse_qsl

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response

from api.auth import Directory, session_user
from api.console.pages import Visitor, home_of, local_path, posted_form, render
from api.errors import NotAuthenticated
from api.sessions import COOKIE, SessionSigner
from settings import Settings

router = APIRouter(include_in_schema=False)
LOGIN_COOKIE = "gridlink_login"
LOGIN_FORM_SECONDS = 15 * 60
Next = Annotated[str | None, Query(max_length=512)]


def _login_page(request: Request, *, next_path: str | None, status: int = 200,
                problem: str | None = None, name: str = "") -> Response:
    token = secrets.token_urlsafe(24)
    response = render(request, "login.html", None, status=status, next_path=next_path or "",
                      login_token=token, problem=problem, name=name)
    settings: Settings = request.app.state.settings
    response.set_cookie(LOGIN_COOKIE, token, max_age=LOGIN_FORM_SECONDS, httponly=True,
                        samesite="strict", secure=settings.cookie_secure, path="/login")
    return response


@router.get("/")
def root() -> RedirectResponse:
    return RedirectResponse("/console", status_code=303)


@router.get("/login")
def login_form(request: Request, next: Next = None) -> Response:  # noqa: A002 (the form's name)
    signed_in = session_user(request)
    if signed_in is not None:
        return RedirectResponse(local_path(next, home_of(signed_in[0])), status_code=303)
    return _login_page(request, next_path=next)


@router.post("/login")
async def login(request: Request) -> Response:
    form = dict(parse_qsl((await request.body()).decode("utf-8", "replace"),
                          keep_blank_values=True))
    next_path = form.get("next") or None
    expected = request.cookies.get(LOGIN_COOKIE, "")
    if not expected or not hmac.compare_digest(expected, form.get("login_token", "")):
        return _login_page(request, next_path=next_path, status=403,
                           problem="登录表单已过期，请重试 · the sign-in form expired (or did "
                           "not come from this site): please sign in again")
    directory: Directory = request.app.state.users
    name = form.get("name", "").strip()
    try:
        account = await asyncio.to_thread(directory.sign_in, name, form.get("secret", ""))
    except NotAuthenticated as error:
        return _login_page(request, next_path=next_path, status=401, name=name,
                           problem=f"用户名或口令/密钥不对 · {error.reason}")
    signer: SessionSigner = request.app.state.sessions
    token, session = signer.issue(account.user.name, account.fingerprint)
    settings: Settings = request.app.state.settings
    response = RedirectResponse(local_path(next_path, home_of(account.user)), status_code=303)
    response.set_cookie(COOKIE, token, max_age=signer.lifetime_seconds, httponly=True,
                        samesite="strict", secure=settings.cookie_secure, path="/")
    response.delete_cookie(LOGIN_COOKIE, path="/login")
    return response


@router.post("/logout")
async def logout(request: Request, visit: Visitor) -> Response:
    await posted_form(request, visit)  # the CSRF check
    request.app.state.sessions.revoke(visit.session)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


@router.get("/console")
def console_home(visit: Visitor) -> RedirectResponse:
    return RedirectResponse(home_of(visit.user), status_code=303)


__all__ = ["router"]
