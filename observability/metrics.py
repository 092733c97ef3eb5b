"""Every Prometheus metric GridLink exposes, in one place.

Names follow Prometheus conventions: units in the name, ``_total`` for
counters. Workers serve them on ``GRIDLINK_WORKER_METRICS_PORT``
(:mod:`observability.health`, beside their probes); the API on ``/metrics``.

Where each is computed:

- **worker**, as messages flow: inbound events and dead letters (intake), triage
  decisions, case commands and every case event (:func:`observe_case_event`: cases
  opened and merged, assignments, status transitions, SLA cards, escalations,
  supervision, times to accept and resolve), the ingest-to-department-queue
  latency (:func:`observe_department_messages`, from the ingest time triage passes
  on in the :data:`INGEST_TIME_HEADER` of a case command), timers, and the
  consumer lag of the agents' topics (:func:`set_consumer_lag`, every few seconds).
- **API**, from the SQL projection: open cases and the statistics' rates
  (docs/domain.md §7), refreshed in the background and published as one snapshot
  (:func:`publish_store_snapshot`), so a scrape never queries the database.
  One place only: several workers would each see only their own partitions.

Agents and the API call the small helpers here; they stay one-liners.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from prometheus_client import (
    REGISTRY,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

# no ``<name>_created`` series: the text format would show each as a gauge of its own
disable_created_metrics()

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
PROJECTION_GAPS = Counter(
    "gridlink_projection_gaps_total",
    "Case events the projection could not apply: a gap in the case's log (should be 0; "
    "gridlink replay rebuilds the store)")
SEND_FAILURES = Counter(
    "gridlink_send_failures_total",
    "Records the broker did not take after every retry (should be 0): the worker stops, "
    "nothing past them is committed, and the partition's next owner takes its inputs again",
    ["topic"])
INPUTS_FORWARDED = Counter(
    "gridlink_inputs_forwarded_total",
    "Inputs found in another township's partition of cases.commands, forwarded to its writer")
INPUTS_MISSED = Counter(
    "gridlink_inputs_missed_total",
    "Inputs of cases.commands the consumer skipped over (after a rebalance), read directly "
    "and taken in their place (should stay 0)")
LOG_GAPS = Counter(
    "gridlink_log_gaps_total",
    "Case events read back from cases.events that do not follow their case's last one "
    "(should be 0)")
FOREIGN_RECORDS = Counter(
    "gridlink_log_foreign_records_total",
    "Records another writer appended to a partition of cases.events while this one owned it "
    "(a previous owner's last batch, arriving late)")
REDECIDED_DIFFERENTLY = Counter(
    "gridlink_redecided_differently_total",
    "Inputs taken again after a crash whose decision differs from the events the log holds "
    "(should be 0; the log's events are kept)")
CALENDAR_GAPS = Counter(
    "gridlink_calendar_fallback_total",
    "Working-day calendar lookups for a year without official data (Monday-Friday fallback)",
    ["year"])
PROJECTION_RETRIES = Counter(
    "gridlink_projection_retries_total",
    "Batch writes the database refused (down, full, locked, read-only), each retried after a "
    "backoff until stored; the batch stays uncommitted meanwhile")

# -- the case log (worker: observe_case_event) -------------------------------------------

CASES_OPENED = Counter(
    "gridlink_cases_opened_total", "Cases opened (立案), by priority, entry level and source",
    ["priority", "level", "source"])
CASES_MERGED = Counter(
    "gridlink_cases_merged_total",
    "Case merges (合并), by event type: case_merged (a case ended, absorbed by another) and "
    "case_absorbed (a case took another's events)",
    ["type"])
ASSIGNMENTS = Counter(
    "gridlink_assignments_total", "Assignments dispatched to a department queue (交办)",
    ["department", "role"])
TRANSITIONS = Counter(
    "gridlink_case_transitions_total", "Case status changes (from 'none' when opened)",
    ["from", "to"])
SLA_CARDS = Counter(
    "gridlink_sla_cards_total",
    "SLA cards: yellow (预警, 80 % of a step's budget) and red (超期, at the deadline), by "
    "step, department ('none' for a case-level clock) and the coordinating level",
    ["card", "step", "department", "level"])
ESCALATIONS = Counter(
    "gridlink_escalations_total",
    "Cases moved up a level (越级/吹哨), by reason (takeover, ladder, ruling, operator) and the "
    "level moved to", ["reason", "level"])
SUPERVISIONS = Counter(
    "gridlink_supervisions_total",
    "Supervision (督办) from above, by reason (red_card, takeover, ladder, dissatisfied, "
    "operator) and the supervising level", ["reason", "level"])
DURATION_BUCKETS_ACCEPT = (10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 28800, 86400,
                           172800, 432000, 864000)
DURATION_BUCKETS_RESOLVE = (300, 900, 1800, 3600, 7200, 14400, 28800, 86400, 172800, 259200,
                            432000, 864000, 1296000, 2592000, 5184000)
TIME_TO_ACCEPT = Histogram(
    "gridlink_time_to_accept_seconds",
    "From an assignment's dispatch to its claim (签收), by department and coordinating level",
    ["department", "level"], buckets=DURATION_BUCKETS_ACCEPT)
TIME_TO_RESOLVE = Histogram(
    "gridlink_time_to_resolve_seconds",
    "From an assignment's dispatch to its department's outcome (办结), by department and "
    "coordinating level", ["department", "level"], buckets=DURATION_BUCKETS_RESOLVE)
INGEST_TO_DEPARTMENT = Histogram(
    "gridlink_ingest_to_department_seconds",
    "From an event's arrival on its ingest topic to its case's assignment being sent to the "
    "department queue", buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
CONSUMER_LAG = Gauge(
    "gridlink_consumer_lag_messages",
    "Messages on an agent's topic partition not yet committed by this worker "
    "(end offset - committed offset)", ["topic", "partition"])

#: the header carrying an event's ingest time (Unix milliseconds) on its case command
INGEST_TIME_HEADER = "gridlink-ingested-at"
#: the engine's own wording of a system-made escalation or supervision → reason label
_REASONS = (("四级七天", "ladder"), ("take-over", "takeover"), ("ruling (裁定)", "ruling"),
            ("red card", "red_card"), ("dissatisfied", "dissatisfied"))
#: 合并: the absorbed case ends with ``case_merged``, the surviving one logs ``case_absorbed``
MERGE_EVENTS = frozenset({"case_merged", "case_absorbed"})


_children: dict[tuple[Any, tuple[str, ...]], Any] = {}


def child(metric: Any, *values: str) -> Any:
    """``metric.labels(*values)``, found once: prometheus_client checks the values and takes
    a lock on every ``labels`` call, which adds up over the labels of every case event.
    Not for a metric whose children are removed (:data:`CONSUMER_LAG`)."""
    key = (metric, values)
    found = _children.get(key)
    if found is None:
        found = _children[key] = metric.labels(*values)
    return found


def _tag(event: Any) -> str:
    return str(event.__struct_config__.tag)


def _level(level: Any) -> str:
    return str(getattr(level, "name", level)).lower()


def reason_kind(reason: str) -> str:
    """A bounded label for an escalation's free-text reason."""
    return next((kind for prefix, kind in _REASONS if reason.startswith(prefix)), "operator")


def observe_case_event(before: Any, event: Any, after: Any) -> None:
    """Count one case event applied by the case agent: ``before`` and ``after`` are the
    case's state around it (``before`` is None for the opening event). Matches on the
    event's type name, so event types added later count as case events at least."""
    tag = _tag(event)
    child(CASE_EVENTS, tag).inc()
    old = before.status if before is not None else "none"
    if after is not None and after.status != old:
        child(TRANSITIONS, str(old), str(after.status)).inc()
    if tag == "case_opened":
        child(CASES_OPENED, event.priority.label, _level(event.level),
              str(event.event.source)).inc()
    elif tag in MERGE_EVENTS:
        child(CASES_MERGED, tag).inc()
    elif tag == "assignment_dispatched":
        child(ASSIGNMENTS, event.assignment.department, str(event.assignment.role)).inc()
    elif tag in ("assignment_claimed", "assignment_handled") and after is not None:
        assignment = after.assignment(event.assignment_id)
        if assignment is not None:
            histogram = TIME_TO_ACCEPT if tag == "assignment_claimed" else TIME_TO_RESOLVE
            histogram.labels(event.department, _level(after.level)).observe(
                max((event.at - assignment.dispatched_at).total_seconds(), 0.0))
    elif tag in ("yellow_card", "red_card") and after is not None:
        SLA_CARDS.labels(tag.removesuffix("_card"), str(event.step), event.department or "none",
                         _level(after.level)).inc()
    elif tag == "escalated":
        ESCALATIONS.labels(reason_kind(event.reason), _level(event.to_level)).inc()
    elif tag == "supervised":
        SUPERVISIONS.labels(reason_kind(event.reason), _level(event.level)).inc()


def with_ingest_time(headers: list[tuple[str, bytes]] | None, ingested_at: datetime
                     ) -> list[tuple[str, bytes]]:
    """``headers`` plus the event's ingest time, for the case command triage sends."""
    stamp = str(round(ingested_at.timestamp() * 1000)).encode()
    return [*(headers or []), (INGEST_TIME_HEADER, stamp)]


def ingest_time(headers: Iterable[tuple[str, Any]] | Mapping[str, Any] | None) -> float | None:
    """The ingest time (Unix seconds) a case command carries, if any."""
    pairs = headers.items() if isinstance(headers, Mapping) else (headers or ())
    for key, value in pairs:
        if key == INGEST_TIME_HEADER and value is not None:
            try:
                return int(value) / 1000
            except ValueError:
                return None
    return None


def observe_department_messages(ingested: float | None,
                                messages: Sequence[tuple[str, Mapping[str, Any]]],
                                sent_at: datetime) -> None:
    """The ingest-to-department latency of each new assignment a command sent (only
    commands that carry an ingest time: those triage sent for a new event)."""
    if ingested is None:
        return
    for _, payload in messages:
        if payload.get("kind") == "assignment":
            INGEST_TO_DEPARTMENT.observe(max(sent_at.timestamp() - ingested, 0.0))


_lag_seen: set[tuple[str, str]] = set()


def set_consumer_lag(lags: Mapping[tuple[str, int], int]) -> None:
    """This worker's lag per (topic, partition); partitions it no longer holds go away."""
    current = {(topic, str(partition)): lag for (topic, partition), lag in lags.items()}
    for labels in _lag_seen - set(current):
        CONSUMER_LAG.remove(*labels)
    for labels, lag in current.items():
        CONSUMER_LAG.labels(*labels).set(lag)
    _lag_seen.clear()
    _lag_seen.update(current)


# -- the SQL projection (API: publish_store_snapshot) --------------------------------------

#: the statistics' rates exported as gauges: name → (field of the statistics, help)
STATS_RATES = {
    "handling": "办结率: cases due in the window and closed / cases due",
    "on_time": "按期办结率: closed within SLA / closed",
    "overdue": "超期率: due cases that ran overdue / due",
    "satisfaction": "满意率: (satisfied + basically satisfied) / callbacks reached",
    "mediation_success": "调处成功率: disputes mediated successfully / disputes finished",
    "self_resolved": "自办率: closed at grid level / closed",
    "return": "退单率: dispatched cases returned at least once / dispatched",
    "second_return": "二次退单率: dispatched cases sent for a ruling / dispatched",
    "rework": "返工率: checked cases sent back for rework / checked",
    "supervision": "督办率: dispatched cases supervised / dispatched",
}
OPEN_CASE_LABELS = ("status", "priority", "department", "level")


@dataclass(frozen=True)
class StoreSnapshot:
    """What the API read from the SQL projection at ``at`` (Unix seconds)."""

    at: float
    #: (status, priority "P1", lead department or "none", level "county") → cases
    open_cases: Mapping[tuple[str, str, str, str], int] = field(default_factory=dict)
    #: rate name (a key of STATS_RATES) → department ("all": every case) → ratio
    rates: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    window_seconds: float = 0.0


class _StoreGauges(Collector):
    """Gauges of the last :class:`StoreSnapshot`; a scrape only reads it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._snapshot: StoreSnapshot | None = None

    def publish(self, snapshot: StoreSnapshot | None) -> None:
        with self._lock:
            self._snapshot = snapshot

    def _families(self, snapshot: StoreSnapshot | None) -> Iterator[Metric]:
        open_cases = GaugeMetricFamily(
            "gridlink_open_cases", "Open cases, as the live board counts them (not closed, "
            "evaluated, rejected or merged), by status, priority, lead department ('none' "
            "before dispatch) and coordinating level (SQL projection)",
            labels=OPEN_CASE_LABELS)
        updated = GaugeMetricFamily(
            "gridlink_stats_updated_timestamp_seconds",
            "When the API last read open cases and rates from the SQL projection")
        window = GaugeMetricFamily(
            "gridlink_stats_window_seconds", "The rates' window: cases of the last N seconds")
        rates = {name: GaugeMetricFamily(
            f"gridlink_stats_{name}_ratio", f"{text} (0-1), by lead department, 'all' for "
            "every case; none while the denominator is 0", labels=["department"])
            for name, text in STATS_RATES.items()}
        if snapshot is not None:
            for labels, count in sorted(snapshot.open_cases.items()):
                open_cases.add_metric(list(labels), count)
            updated.add_metric([], snapshot.at)
            window.add_metric([], snapshot.window_seconds)
            for name, by_department in snapshot.rates.items():
                for department, value in sorted(by_department.items()):
                    rates[name].add_metric([department], value)
        yield open_cases
        yield updated
        yield window
        yield from rates.values()

    def describe(self) -> Iterator[Metric]:
        return self._families(None)

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            snapshot = self._snapshot
        return self._families(snapshot)


STORE_GAUGES = _StoreGauges()
REGISTRY.register(STORE_GAUGES)


def publish_store_snapshot(snapshot: StoreSnapshot | None) -> None:
    """Replace the open-case and rate gauges at once (None: show none)."""
    STORE_GAUGES.publish(snapshot)

