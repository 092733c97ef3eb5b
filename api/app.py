"""The REST API (FastAPI): health and metrics for now; the command center's and
departments' routes join here."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from settings import Settings


def create_app(settings: Settings) -> FastAPI:
    app = FastAPI(
        title="GridLink",
        description="Dispatch core of a city command center (综治中心): cases, department "
        "queues, SLA clocks and escalation.",
        version="0.1.0",
    )
    app.state.settings = settings

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
