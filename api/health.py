"""Liveness and readiness of the API, for a load balancer or an orchestrator.

``/healthz`` (and its older name ``/health``) answers as long as the process does.
``/readyz`` answers 200 only when the API can do its work:

- ``broker``: the broker answers a metadata request through the command gateway's
  producer;
- ``database``: the SQL projection answers ``SELECT 1``;
- ``replies``: the gateway's reply consumer is assigned ``cases.replies`` and reading,
  so the engine's answers to actions reach this process.

Otherwise 503, a problem-details body naming each failed check and why. Each check
is bounded by :data:`CHECK_TIMEOUT_SECONDS`, and they run side by side: a probe never
hangs on a broker or a database that does not answer. Neither needs a key.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from api.commands import CommandGateway
from api.errors import PROBLEM_JSON, EngineUnavailable, Problem, problem
from store.db import StoreError
from store.service import Store

router = APIRouter(tags=["operations"])

CHECK_TIMEOUT_SECONDS = 2.0


class Check(BaseModel):
    """One readiness check: whether it passed, and why not."""

    ok: bool = Field(examples=[True])
    detail: str = Field(examples=["answered in 0.004 s"])


class Readiness(BaseModel):
    """Every readiness check, by name."""

    status: str = Field(examples=["ready"], description="`ready`, or `not ready` (503)")
    checks: dict[str, Check] = Field(examples=[{
        "broker": {"ok": True, "detail": "answered in 0.004 s"},
        "database": {"ok": True, "detail": "answered in 0.001 s"},
        "replies": {"ok": True, "detail": "reading cases.replies"}}])


class NotReady(Problem):
    """A 503 of ``/readyz``: problem details, with every check."""

    failed: list[str] = Field(examples=[["database"]])
    checks: dict[str, Check]


async def _bounded(name: str, probe: Callable[[], Awaitable[None]]) -> tuple[str, Check]:
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        await asyncio.wait_for(probe(), CHECK_TIMEOUT_SECONDS)
    except TimeoutError:
        return name, Check(ok=False, detail=f"no answer within {CHECK_TIMEOUT_SECONDS:.0f} s")
    except EngineUnavailable as error:
        return name, Check(ok=False, detail=error.reason)
    except (StoreError, OSError) as error:
        return name, Check(ok=False, detail=f"{type(error).__name__}: {error}".splitlines()[0])
    return name, Check(ok=True, detail=f"answered in {loop.time() - started:.3f} s")


async def readiness(gateway: CommandGateway, store: Store) -> dict[str, Check]:
    """Every check, run side by side, each within :data:`CHECK_TIMEOUT_SECONDS`."""

    async def database() -> None:
        # a thread of its own: the driver blocks; a hung one is left behind, not awaited
        await asyncio.to_thread(store.ping)

    checks = dict(await asyncio.gather(_bounded("broker", gateway.broker_answers),
                                       _bounded("database", database)))
    stopped = gateway.replies_flowing()
    checks["replies"] = Check(ok=stopped is None, detail=stopped or "reading cases.replies")
    return checks


@router.get("/healthz")
@router.get("/health")
def healthz() -> dict[str, str]:
    """Liveness: the API process answers (``/health`` is the same, its older name)."""
    return {"status": "ok"}


@router.get("/readyz", response_model=Readiness, responses={
    503: {"description": "A check failed: each is named, with why",
          "content": {PROBLEM_JSON: {"schema": NotReady.model_json_schema()}}}})
async def readyz(request: Request) -> Readiness | JSONResponse:
    """Readiness: the broker answers, the database answers `SELECT 1`, and the case
    engine's replies reach this process; each check within 2 s."""
    checks = await readiness(request.app.state.gateway, request.app.state.store)
    failed = [name for name, check in checks.items() if not check.ok]
    if not failed:
        return Readiness(status="ready", checks=checks)
    detail = "; ".join(f"{name}: {checks[name].detail}" for name in failed)
    return problem(request, status=503, title="Not ready", detail=detail, code="not_ready",
                   failed=failed,
                   checks={name: check.model_dump() for name, check in checks.items()})


__all__ = ["CHECK_TIMEOUT_SECONDS", "Check", "Readiness", "readiness", "router"]
