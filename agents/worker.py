"""Entry point of ``gridlink worker``: load the rules, build the app, run."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import faust
from faust.worker import Worker

from agents import cases, intake, lag, projection, triage
from agents.app import Topics, create_app
from observability import logging as log_setup
from observability import metrics, tracing
from settings import Settings
from store.service import Store
from streams.calendar import CalendarGap, load_calendar
from streams.cases import load_case_policy
from streams.reference import load_city
from streams.triage_rules import load_triage_rules

log = logging.getLogger(__name__)


def _calendar_gap(gap: CalendarGap) -> None:
    metrics.CALENDAR_GAPS.labels(str(gap.year)).inc()
    log.warning("working-day calendar: %s (falling back to Monday-Friday plus the override "
                "file)", gap.reason)


#: the agents a worker can run (``gridlink worker --agents``); all of them by default
AGENTS = ("intake", "triage", "cases", "projection")


def build(settings: Settings, agents: Sequence[str] = AGENTS) -> faust.App:
    """The worker's Faust app with its agents; rule files are validated here,
    so a bad rule stops the worker at start with the file and entry named."""
    city = load_city(settings.reference_dir)
    triage_rules = load_triage_rules(settings.rules_dir, departments=city.departments)
    policy = load_case_policy(settings.rules_dir)
    calendar = load_calendar(settings.rules_dir, on_gap=_calendar_gap)
    app = create_app(settings)
    topics = Topics(app, settings)
    if "intake" in agents:
        intake.register(app, topics, settings, city)
    if "triage" in agents:
        triage.register(app, topics, settings, triage_rules)
    if "cases" in agents:
        cases.register(app, topics, settings, policy, calendar)
    if "projection" in agents:
        projection.register(app, topics, Store.open(settings.database_url, city=city))
    lag.register(app)
    return app


def run(settings: Settings, agents: Sequence[str] = AGENTS) -> None:
    """Run one worker until SIGINT/SIGTERM; several workers share the partitions."""
    log_setup.configure(settings)
    tracing.configure(settings, service="gridlink-worker")  # before build: agents read it
    app = build(settings, agents)
    metrics.serve(settings.worker_metrics_port)
    # Faust sets logging up again when it starts: in JSON mode, hand it ours (and keep its
    # banner off stdout, so every line stays JSON); in text mode its own format stays.
    json_logs = {"logging_config": log_setup.logging_config(settings), "quiet": True}
    worker = Worker(app, loglevel=settings.log_level, redirect_stdouts=False,
                    **(json_logs if settings.log_json else {}))
    # Faust's terminal spinner, at level warning or above, turns the root logger to DEBUG
    # so that every debug call (aiokafka logs one per record sent) builds a log record;
    # a worker is a service, not a terminal program.
    worker.spinner = None
    worker.execute_from_commandline()
