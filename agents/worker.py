"""Entry point of ``gridlink worker``: build the app, register the agents, run."""

from __future__ import annotations

import faust
from faust.worker import Worker

from agents import pipeline
from agents.app import Topics, create_app
from settings import Settings


def build(settings: Settings) -> faust.App:
    app = create_app(settings)
    pipeline.register(app, Topics(app, settings), settings)
    return app


def run(settings: Settings) -> None:
    """Run one worker until SIGINT/SIGTERM; several workers share the partitions."""
    app = build(settings)
    worker = Worker(app, loglevel=settings.log_level, redirect_stdouts=False)
    worker.execute_from_commandline()
