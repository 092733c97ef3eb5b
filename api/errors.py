"""Every error the API answers, as RFC 9457 problem details (``application/problem+json``).

The API raises errors of the project's one tree (:mod:`streams.errors`, and the
store's branch :mod:`store.errors`) and the HTTP-only branches declared here;
:func:`install` maps each to a status:

=============================  ======  ==========================================
error                          status  when
=============================  ======  ==========================================
``NotAuthenticated``           401     no API key, an unknown key, or no users file
``Forbidden``                  403     the user may not see or act on this
``NotFound`` (store)           404     an unknown case or assignment
``NotFound``                   404     an unknown Open311 service or request
``TransitionRejected``         409     the case engine refused the command (its reason)
``InvalidEvent``               422     an intake body the parser refuses (code, field)
``UnroutableEvent``            422     a valid message that cannot be placed or routed
``InvalidRequest``             422     a request that is well-formed but unusable
(FastAPI validation)           422     a parameter or body field of the wrong shape
(a body FastAPI cannot read)   422     JSON nested too deeply, or not decodable
(``api.limits``)               413     a body over ``api_max_body_bytes``
(``api.limits``)               429     a user's changes over ``api_rate_per_minute``
``EngineTimeout``              504     the case engine did not answer in time
``EngineUnavailable``          503     the API cannot reach the broker
=============================  ======  ==========================================

Every body has ``type``, ``title``, ``status``, ``detail`` and ``instance``,
plus ``code`` and, where known, ``field``, ``reason`` and ``errors``. The console's
pages (``app.state.problem_page``) show the same problem as a page a person reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from store import errors as store_errors
from streams.errors import GridLinkError, InvalidEvent, TransitionRejected, UnroutableEvent

PROBLEM_JSON = "application/problem+json"
PROBLEM_TYPE_BASE = "/problems/"  # a relative URI per problem code (RFC 9457 §3.1.1)


class ApiError(GridLinkError):
    """An error only the HTTP edge has (authentication, scope, lookups)."""

    status: int = 400
    title: str = "Bad request"


class NotAuthenticated(ApiError):
    code, status, title = "not_authenticated", 401, "Not authenticated"


class Forbidden(ApiError):
    code, status, title = "forbidden", 403, "Forbidden"


class NotFound(ApiError):
    code, status, title = "not_found", 404, "Not found"


class InvalidRequest(ApiError):
    code, status, title = "invalid_request", 422, "Invalid request"


class EngineUnavailable(ApiError):
    code, status, title = "engine_unavailable", 503, "Case engine unavailable"


class EngineTimeout(ApiError):
    code, status, title = "engine_timeout", 504, "Case engine did not answer"


#: statuses and titles of the errors raised below the HTTP edge (the core's, the store's)
_BELOW: dict[type[GridLinkError], tuple[int, str]] = {
    TransitionRejected: (409, "Command rejected by the case engine"),
    InvalidEvent: (422, "Invalid event"),
    UnroutableEvent: (422, "Unroutable event"),
    store_errors.NotFound: (404, NotFound.title),
}


def problem(request: Request, *, status: int, title: str, detail: str, code: str,
            headers: Mapping[str, str] | None = None, **extra: Any) -> JSONResponse:
    """A problem-details response for ``request``."""
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + code.replace("_", "-"),
        "title": title,
        "status": status,
        "detail": detail,
        "instance": request.url.path,
        "code": code,
    }
    body.update({key: value for key, value in extra.items() if value is not None})
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def status_of(error: GridLinkError) -> tuple[int, str]:
    """The HTTP status and title an error is answered with."""
    if isinstance(error, ApiError):
        return error.status, error.title
    for kind, answer in _BELOW.items():
        if isinstance(error, kind):
            return answer
    return 500, "Internal error"


async def _gridlink_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, GridLinkError)
    status, title = status_of(error)
    page = getattr(request.app.state, "problem_page", None)  # the console's HTML pages
    answer: Response | None = page(request, status, title, error) if page is not None else None
    if answer is not None:
        return answer
    headers = {"WWW-Authenticate": 'ApiKey header="X-API-Key"'} if status == 401 else None
    return problem(request, status=status, title=title, detail=error.reason, code=error.code,
                   reason=error.reason, field=error.field, headers=headers)


def _field(location: tuple[Any, ...]) -> str:
    """``("body", "days")`` → ``"days"``; ``("query", "limit")`` → ``"limit"``."""
    parts = [str(part) for part in location]
    if parts and parts[0] in ("body", "query", "path", "header", "cookie"):
        parts = parts[1:]
    return ".".join(parts) or str(location[0] if location else "")


async def _validation_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    errors = [{"field": _field(tuple(e.get("loc", ()))), "in": str(e.get("loc", ("",))[0]),
               "reason": e.get("msg", "")} for e in error.errors()]
    first = errors[0] if errors else {"field": "", "reason": "invalid request"}
    detail = "; ".join(f"{e['field']}: {e['reason']}" for e in errors[:8])
    return problem(request, status=422, title="Invalid request", detail=detail,
                   code="validation", field=first["field"], reason=first["reason"],
                   errors=errors)


async def _http_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, StarletteHTTPException)
    if error.status_code == 400 and error.__cause__ is not None:  # FastAPI could not read
        deep = isinstance(error.__cause__, RecursionError)  # the body (it says no more)
        detail = ("the body is JSON nested too deeply to read" if deep
                  else f"the body cannot be read: {error.__cause__}")
        return problem(request, status=422, title="Invalid request", detail=detail,
                       code="unreadable_body", reason=detail, field="body")
    detail = error.detail if isinstance(error.detail, str) else str(error.detail)
    return problem(request, status=error.status_code, title=detail, detail=detail,
                   code=f"http_{error.status_code}", headers=error.headers)


def install(app: FastAPI) -> None:
    """Answer every error of ``app`` with problem details."""
    app.add_exception_handler(GridLinkError, _gridlink_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)


class Problem(BaseModel):
    """RFC 9457 problem details, with GridLink's extension members."""

    type: str = Field(examples=["/problems/transition-rejected"])
    title: str = Field(examples=["Command rejected by the case engine"])
    status: int = Field(examples=[409])
    detail: str = Field(examples=["assignment A1 is already claimed by chengguan"])
    instance: str = Field(examples=["/cases/C-371502004-20261126-0001/assignments/A1/claim"])
    code: str = Field(examples=["transition_rejected"])
    reason: str | None = None
    field: str | None = None
    errors: list[dict[str, str]] | None = None


_DESCRIPTIONS = {401: "No or unknown API key", 403: "Outside the user's scope",
                 404: "Unknown case or assignment", 409: "Rejected by the case engine",
                 422: "Invalid request", 504: "The case engine did not answer in time"}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` of a route: a problem body for each of ``statuses``."""
    schema = Problem.model_json_schema()
    return {status: {"description": _DESCRIPTIONS.get(status, "Problem"),
                     "content": {PROBLEM_JSON: {"schema": schema}}} for status in statuses}


__all__ = [
    "PROBLEM_JSON",
    "ApiError",
    "EngineTimeout",
    "EngineUnavailable",
    "Forbidden",
    "InvalidRequest",
    "NotAuthenticated",
    "NotFound",
    "Problem",
    "install",
    "problem",
    "problem_responses",
    "status_of",
]
