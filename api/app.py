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

from api import auth, cases, command_center, departments, errors, intake
from api.commands import CommandGateway
from settings import Settings
from store.service import Store


def create_app(settings: Settings, *, gateway: CommandGateway | None = None) -> FastAPI:
    users = auth.Directory.load(settings.users_file)
    store = Store.open(settings.database_url)
    gateway = gateway or CommandGateway(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await gateway.start()
        try:
            yield
        finally:
            await gateway.stop()
            store.close()

    app = FastAPI(
        title="GridLink",
        description="Dispatch core of a city command center (综治中心): cases, department "
        "queues, SLA clocks and escalation. Authenticate with `X-API-Key: <key>` or "
        "`Authorization: Bearer <key>`; errors are RFC 9457 problem details.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.users = users
    app.state.store = store
    app.state.gateway = gateway
    errors.install(app)
    for module in (departments, command_center, cases, intake):
        app.include_router(module.router)

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

    uvicorn.run(create_app(settings), host=settings.api_host, port=settings.api_port,
                log_level=settings.log_level)
