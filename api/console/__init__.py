"""The console (工作台): server-rendered pages for the people who work the cases.

- :mod:`api.console.login` — sign in and out (session cookie, CSRF);
- :mod:`api.console.operator` — the command center: verification queue, case list, case
  page and its actions;
- :mod:`api.console.desk` — a department's to-do queue and its actions, live;
- :mod:`api.console.reports` — statistics with charts, daily/weekly/monthly reports.

Every action goes through the REST API's own handlers and command gateway
(:mod:`api.command_center`, :mod:`api.departments`, :mod:`api.idempotency`).
See ``docs/console.md``.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI

from api.console import desk, login, operator, reports
from api.console.pages import SignInRequired, problem_page, sign_in_redirect

router = APIRouter(include_in_schema=False)
for module in (login, operator, desk, reports):
    router.include_router(module.router)


def install(app: FastAPI) -> None:
    """The console's routes, and its pages for problems and for signing in."""
    app.include_router(router)
    app.state.problem_page = problem_page
    app.add_exception_handler(SignInRequired, sign_in_redirect)


__all__ = ["install", "router"]
