"""Every Prometheus metric GridLink exposes, in one place.

Names follow Prometheus conventions: units in the name, ``_total`` for
counters. Workers serve them on ``GRIDLINK_WORKER_METRICS_PORT``; the API on
``/metrics``.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

EVENTS_IN = Counter(
    "gridlink_events_in_total", "Inbound messages read from the ingest topics", ["source"])
DEAD_LETTERS = Counter(
    "gridlink_dead_letters_total", "Messages rejected to ingest.dead-letter", ["source", "code"])
TRIAGE_DECISIONS = Counter(
    "gridlink_triage_decisions_total",
    "Triage outcomes: open, join, repeat, duplicate", ["action"])
CLASSIFICATIONS = Counter(
    "gridlink_classifications_total", "Events classified, by category and deciding rule kind",
    ["category", "rule"])
CASE_COMMANDS = Counter(
    "gridlink_case_commands_total", "Case commands applied or rejected", ["type", "outcome"])
CASE_EVENTS = Counter(
    "gridlink_case_events_total", "Events appended to the case log", ["type"])
DEADLINES_FIRED = Counter(
    "gridlink_deadlines_fired_total", "SLA deadlines sent to their case's owner to fire")
TIMER_LATENESS = Histogram(
    "gridlink_timer_lateness_seconds", "How late a deadline was sent to fire after falling due",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
DEADLINES_INDEXED = Gauge(
    "gridlink_deadline_index_cases", "Cases with a pending deadline in this worker's index")
OVERDUE_UNFIRED = Gauge(
    "gridlink_deadlines_overdue_unfired",
    "Auditor: deadlines past due by more than the grace period and not yet fired (should be 0)")
PROJECTED_EVENTS = Counter(
    "gridlink_projected_events_total", "Case events written to the SQL projection")
CALENDAR_GAPS = Counter(
    "gridlink_calendar_fallback_total",
    "Working-day calendar lookups for a year without official data (Monday-Friday fallback)",
    ["year"])


def serve(port: int) -> None:
    """Serve this process's metrics over HTTP on ``port`` (0: do not serve)."""
    if port:
        start_http_server(port, addr="0.0.0.0")
