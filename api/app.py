"""The REST API (FastAPI): department queues and actions, command-center actions, case
queries and intake over HTTP, plus liveness, readiness (:mod:`api.health`) and metrics.

``create_app(settings)`` wires it: the users file (:mod:`api.auth`), the SQL
projection it reads (:mod:`store`), and the command gateway (:mod:`api.commands`)
that the lifespan starts and stops. Every error is a problem-details body
(:mod:`api.errors`).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, PlainTextResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api import (
    auth,
    cases,
    command_center,
    console,
    departments,
    errors,
    health,
    intake,
    open311,
    statistics,
)
from api.board import BoardFeed
from api.board import router as board_router
from api.commands import CommandGateway
from api.idempotency import Answers
from api.limits import RateLimiter, RequestGuard
from api.sessions import signer_for
from api.store_metrics import StoreGauges
from settings import Settings
from store.service import Store

log = logging.getLogger(__name__)


def create_app(settings: Settings, *, gateway: CommandGateway | None = None) -> FastAPI:
    users = auth.Directory.load(settings.users_file)
    if users.legacy:
        log.warning("users %s still have a key kept as unsalted SHA-256: give each a new key "
                    "with `gridlink users rekey <name>`", ", ".join(users.legacy))
    store = Store.open(settings.database_url)
    gateway = gateway or CommandGateway(settings)
    board_feed = BoardFeed(settings, store)
    store_gauges = StoreGauges(store)  # open cases and rates, for /metrics

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await gateway.start()
        await board_feed.start()
        await store_gauges.start()
        try:
            yield
        finally:
            await store_gauges.stop()
            await board_feed.stop()
            await gateway.stop()
            store.close()

    app = FastAPI(
        title="GridLink",
        description="Dispatch core of a city command center (综治中心): cases, department "
        "queues, SLA clocks and escalation. Authenticate with `X-API-Key: <key>` or "
        "`Authorization: Bearer <key>`; errors are RFC 9457 problem details. Every action "
        "takes an `Idempotency-Key` header: sent again with the same key, it applies once "
        "and answers as the first time. People use the console at `/console`.",
        version="0.1.0",
        lifespan=lifespan,
        # one server span per request, under the caller's traceparent, when tracing is
        # on (observability.tracing); metrics come from prometheus-client instead
        telemetry={"operation_spans": False, "metrics": False, "logs": False},
        docs_url=None, redoc_url=None,  # served below from vendored assets: no CDN
    )
    app.state.settings = settings
    app.state.users = users
    app.state.store = store
    app.state.gateway = gateway
    app.state.board = board_feed
    app.state.sessions = signer_for(
        settings.session_secret.get_secret_value() if settings.session_secret else None,
        settings.session_hours)
    app.state.answers = Answers()  # idempotency keys' answers (api.idempotency)
    errors.install(app)
    app.add_middleware(RequestGuard, max_body_bytes=settings.api_max_body_bytes,
                       limiter=RateLimiter(settings.api_rate_per_minute, settings.api_rate_burst))
    for module in (departments, command_center, cases, intake):
        app.include_router(module.router)
    app.include_router(statistics.router)
    app.include_router(open311.router)
    app.include_router(board_router)
    app.include_router(health.router)
    console.install(app)
    app.mount("/static", StaticFiles(directory=str(resources.files("api") / "static")),
              name="static")
    _offline_docs(app)

    @app.get("/metrics", tags=["operations"], response_class=PlainTextResponse)
    def metrics() -> PlainTextResponse:
        """Prometheus exposition of this process's metrics."""
        return PlainTextResponse(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app


def _offline_docs(app: FastAPI) -> None:
    """/docs (Swagger UI) and /redoc from the assets vendored under ``api/static/vendor``:
    they work on a network without internet."""
    vendor = "/static/vendor"

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json", title=f"{app.title} · API",
            swagger_js_url=f"{vendor}/swagger-ui/swagger-ui-bundle.js",
            swagger_css_url=f"{vendor}/swagger-ui/swagger-ui.css",
            swagger_favicon_url=f"{vendor}/swagger-ui/favicon-32x32.png")

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        return get_redoc_html(openapi_url=app.openapi_url or "/openapi.json",
                              title=f"{app.title} · API",
                              redoc_js_url=f"{vendor}/redoc/redoc.standalone.js",
                              redoc_favicon_url=f"{vendor}/swagger-ui/favicon-32x32.png",
                              with_google_fonts=False)


def run(settings: Settings) -> None:
    import uvicorn

    from observability import logging as log_setup
    from observability import tracing

    log_setup.configure(settings)
    tracing.configure(settings, service="gridlink-api")
    # JSON mode: uvicorn's loggers propagate to the root handler configured above
    uvicorn_logging: dict[str, Any] = {"log_config": None} if settings.log_json else {}
    uvicorn.run(create_app(settings), host=settings.api_host, port=settings.api_port,
                log_level=settings.log_level, **uvicorn_logging)
