"""The REST API (FastAPI): department queues and actions, command-center actions, case
queries and intake over HTTP, plus health and metrics.

``create_app(settings)`` wires it: the users file (:mod:`api.auth`), the SQL
projection it reads (:mod:`store`), and the command gateway (:mod:`api.commands`)
that the lifespan starts and stops. Every error is a problem-details body
(:mod:`api.errors`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api import auth, cases, command_center, departments, errors, intake, open311, statistics
from api.board import BoardFeed
from api.board import router as board_router
from api.commands import CommandGateway
from api.store_metrics import StoreGauges
from settings import Settings
from store.service import Store


def create_app(settings: Settings, *, gateway: CommandGateway | None = None) -> FastAPI:
    users = auth.Directory.load(settings.users_file)
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
        "`Authorization: Bearer <key>`; errors are RFC 9457 problem details.",
        version="0.1.0",
        lifespan=lifespan,
        # one server span per request, under the caller's traceparent, when tracing is
        # on (observability.tracing); metrics come from prometheus-client instead
        telemetry={"operation_spans": False, "metrics": False, "logs": False},
    )
    app.state.settings = settings
    app.state.users = users
    app.state.store = store
    app.state.gateway = gateway
    app.state.board = board_feed
    errors.install(app)
    for module in (departments, command_center, cases, intake):
        app.include_router(module.router)
    app.include_router(statistics.router)
    app.include_router(open311.router)
    app.include_router(board_router)

    @app.get("/health", tags=["operations"])
    def health() -> dict[str, str]:
        """Liveness: the API process answers."""
        return {"status": "ok"}

    @app.get("/metrics", tags=["operations"], response_class=PlainTextResponse)
    def metrics() -> PlainTextResponse:
        """Prometheus exposition of this process's metrics."""
        return PlainTextResponse(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app


def run(settings: Settings) -> None:
    import uvicorn

    from observability import logging as log_setup
    from observability import tracing

    log_setup.configure(settings)
    tracing.configure(settings, service="gridlink-api")
    # JSON mode: uvicorn's loggers propagate to the root handler configured above
    uvicorn_logging = {"log_config": None} if settings.log_json else {}
    uvicorn.run(create_app(settings), host=settings.api_host, port=settings.api_port,
                log_level=settings.log_level, **uvicorn_logging)
