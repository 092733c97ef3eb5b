"""The metrics: names by Prometheus conventions, and what the agents' one-line helpers
count, driven by the real case engine (no Kafka)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from observability import metrics
from streams.cases import apply, decide, department_messages, pending_deadlines
from streams.cases import commands as C
from streams.cases import events as E
from tests.conftest import PROJECT_DIR
from tests.unit.test_cases import CAL, POLICY, Case

NAME = re.compile(r"^gridlink_[a-z][a-z0-9]*(_[a-z0-9]+)*$")
LABEL = re.compile(r"^[a-z][a-z0-9_]*$")
BASE_UNITS = ("_seconds", "_bytes", "_ratio", "_messages", "_cases")
NOT_BASE_UNITS = ("_milliseconds", "_ms", "_minutes", "_hours", "_days", "_percent",
                  "_kilobytes", "_megabytes")
TIME_WORDS = ("latency", "lateness", "duration", "time", "age", "delay", "elapsed")


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


class Observed(Case):
    """A case whose every event goes through the case agent's metric helper."""

    def do(self, kind, **fields):  # type: ignore[no-untyped-def]
        before = self.state
        out = super().do(kind, **fields)
        self.observe(before, out)
        return out

    def fire(self, deadline_id: str, kind: str) -> list[E.CaseEvent]:
        due = next(d for d in pending_deadlines(self.s)
                   if d.deadline_id == deadline_id and d.kind == kind)
        self.now = due.due
        before = self.state
        out = decide(self.state, due.command(), POLICY, CAL, due.due)
        for e in out:
            self.state = apply(self.state, e)
        self.log += out
        self.observe(before, out)
        return out

    @staticmethod
    def observe(state, events) -> None:  # type: ignore[no-untyped-def]
        for e in events:
            before, state = state, apply(state, e)
            metrics.observe_case_event(before, e, state)


def _exercise_every_metric() -> None:
    """Give every labelled metric at least one child, so its samples are exposed."""
    case = Observed("M1").open()
    case.do(C.Claim, at=case.now + timedelta(minutes=10), assignment_id="A1",
            department="chengguan")
    case.do(C.Handle, at=case.now + timedelta(hours=2), assignment_id="A1",
            department="chengguan", outcome="已清运")
    late = Observed("M2").open()
    late.fire("A1.accept", "yellow")
    late.fire("A1.accept", "red")
    late.fire("A1.accept", "over")
    sent = late.now + timedelta(seconds=1)
    ingested = metrics.ingest_time(metrics.with_ingest_time(None, late.now))
    metrics.observe_department_messages(ingested, department_messages(case.s, case.log[:4]),
                                        sent)
    metrics.set_consumer_lag({("ingest.grid-reports", 0): 3})
    metrics.EVENTS_IN.labels("grid").inc(0)
    metrics.DEAD_LETTERS.labels("grid", "not_json").inc(0)
    metrics.TRIAGE_DECISIONS.labels("open").inc(0)
    metrics.CLASSIFICATIONS.labels("05.03", "keyword").inc(0)
    metrics.CASE_COMMANDS.labels("claim", "applied").inc(0)
    metrics.CASES_MERGED.labels("case_merged").inc(0)
    metrics.CALENDAR_GAPS.labels("2031").inc(0)
    metrics.SEND_FAILURES.labels("cases.replies").inc(0)
    metrics.publish_store_snapshot(metrics.StoreSnapshot(
        at=1.0, open_cases={("dispatched", "P3", "chengguan", "grid"): 2},
        rates={name: {"all": 0.5} for name in metrics.STATS_RATES}, window_seconds=60))


def check_exposition(text: str, *, all_sampled: bool = False) -> dict[str, str]:
    """Check every GridLink family of a ``/metrics`` text against the Prometheus naming
    conventions; returns name → type."""
    families = [f for f in text_string_to_metric_families(text) if f.name.startswith("gridlink")]
    for family in families:
        name, kind = family.name, family.type
        assert NAME.match(name), name
        assert family.documentation.strip(), f"{name} has no help"
        assert not all_sampled or family.samples, f"{name} exposes no sample"
        assert not name.endswith("_created"), f"{name}: no _created series"
        if kind == "counter":
            assert {s.name for s in family.samples} <= {f"{name}_total"}, name
        else:
            assert not name.endswith("_total"), f"{name}: only counters end in _total"
        if kind in ("histogram", "summary"):
            assert name.endswith(BASE_UNITS), f"{name}: a {kind} names its unit"
        assert not name.endswith(NOT_BASE_UNITS), f"{name}: use base units"
        if set(name.split("_")) & set(TIME_WORDS) and not name.endswith("_ratio"):
            assert name.endswith("_seconds"), f"{name}: times are in seconds"
        if name.endswith("_ratio"):
            assert all(0 <= s.value <= 1 for s in family.samples), name
        for sample in family.samples:
            for label in sample.labels:
                assert LABEL.match(label) and not label.startswith("__"), (name, label)
    return {f.name: f.type for f in families}


def test_every_metric_name_follows_the_prometheus_conventions() -> None:
    _exercise_every_metric()
    try:
        kinds = check_exposition(generate_latest().decode(), all_sampled=True)
    finally:
        metrics.publish_store_snapshot(None)
    assert len(kinds) >= 30
    assert kinds["gridlink_time_to_accept_seconds"] == "histogram"
    assert kinds["gridlink_open_cases"] == "gauge"
    assert kinds["gridlink_cases_opened"] == "counter"  # exposed as …_total


def test_the_case_helpers_count_what_the_case_log_says() -> None:
    opened = value("gridlink_cases_opened_total", priority="P3", level="grid", source="grid")
    lead = value("gridlink_assignments_total", department="chengguan", role="lead")
    support = value("gridlink_assignments_total", department="township", role="support")
    dispatch = value("gridlink_case_transitions_total", **{"from": "none", "to": "dispatched"})
    accepts = value("gridlink_time_to_accept_seconds_count", department="chengguan", level="grid")
    accept_sum = value("gridlink_time_to_accept_seconds_sum", department="chengguan", level="grid")
    yellow = value("gridlink_sla_cards_total", card="yellow", step="accept",
                   department="chengguan", level="grid")
    red = value("gridlink_sla_cards_total", card="red", step="accept", department="chengguan",
                level="grid")
    supervised = value("gridlink_supervisions_total", reason="red_card", level="community")
    takeover = value("gridlink_escalations_total", reason="takeover", level="community")
    operator = value("gridlink_escalations_total", reason="operator", level="township")

    case = Observed("H1").open()
    case.do(C.Claim, at=case.now + timedelta(minutes=10), assignment_id="A1",
            department="chengguan")
    assert value("gridlink_cases_opened_total", priority="P3", level="grid",
                 source="grid") == opened + 1
    assert value("gridlink_assignments_total", department="chengguan", role="lead") == lead + 1
    assert value("gridlink_assignments_total", department="township",
                 role="support") == support + 1
    # opening, registering and dispatching happen in one decision: none → reported …
    assert value("gridlink_case_transitions_total",
                 **{"from": "registered", "to": "dispatched"}) >= 1
    assert value("gridlink_case_transitions_total",
                 **{"from": "none", "to": "dispatched"}) == dispatch
    assert value("gridlink_time_to_accept_seconds_count", department="chengguan",
                 level="grid") == accepts + 1
    assert value("gridlink_time_to_accept_seconds_sum", department="chengguan",
                 level="grid") == pytest.approx(accept_sum + 600)

    late = Observed("H2").open()
    assert [type(e).__name__ for e in late.fire("A1.accept", "yellow")] == ["YellowCard"]
    late.fire("A1.accept", "red")
    assert [type(e).__name__ for e in late.fire("A1.accept", "over")] == ["Escalated"]
    assert value("gridlink_sla_cards_total", card="yellow", step="accept",
                 department="chengguan", level="grid") == yellow + 1
    assert value("gridlink_sla_cards_total", card="red", step="accept",
                 department="chengguan", level="grid") == red + 1
    assert value("gridlink_supervisions_total", reason="red_card",
                 level="community") == supervised + 1
    assert value("gridlink_escalations_total", reason="takeover",
                 level="community") == takeover + 1
    late.do(C.Escalate, reason="群众反映强烈")
    assert value("gridlink_escalations_total", reason="operator", level="township") == operator + 1


def test_escalation_reasons_are_a_bounded_set() -> None:
    assert metrics.reason_kind("四级七天: unresolved after 2 days at grid") == "ladder"
    assert metrics.reason_kind("take-over (吹哨): resolve of A1 (zhujian) overdue") == "takeover"
    assert metrics.reason_kind("ruling (裁定) on a lead returned 2 times") == "ruling"
    assert metrics.reason_kind("red card (超期): accept of A1 was due …") == "red_card"
    assert metrics.reason_kind("dissatisfied again after 1 redo(s) (重办)") == "dissatisfied"
    assert metrics.reason_kind("督办") == metrics.reason_kind("超期 red card") == "operator"


def test_merges_count_by_event_type_name() -> None:
    """Only the type name matters, so the count does not hang on the merge's event classes."""

    def event(tag: str) -> E.CaseEvent:
        kind = type(f"Event_{tag}", (E.CaseEvent,), {}, tag=tag, frozen=True, kw_only=True)
        return kind(case_id="G1", seq=case.s.seq + 1, at=case.now, actor="test")

    case = Observed("G1").open()
    counts = {t: value("gridlink_cases_merged_total", type=t)
              for t in ("case_merged", "case_absorbed", "absorb_released")}
    events = value("gridlink_case_events_total", type="absorb_released")
    for tag in ("case_merged", "case_absorbed", "absorb_released"):
        metrics.observe_case_event(case.s, event(tag), case.s)
    assert value("gridlink_cases_merged_total", type="case_merged") == counts["case_merged"] + 1
    assert value("gridlink_cases_merged_total",
                 type="case_absorbed") == counts["case_absorbed"] + 1
    # a refused merge is no merge, but still a case event
    assert value("gridlink_cases_merged_total", type="absorb_released") == 0
    assert value("gridlink_case_events_total", type="absorb_released") == events + 1


def test_ingest_time_travels_in_a_header_to_the_department_latency() -> None:
    case = Case("L1").open()
    headers = metrics.with_ingest_time([("traceparent", b"00-x")], case.now)
    assert headers[0] == ("traceparent", b"00-x")
    ingested = metrics.ingest_time(headers)
    assert ingested == case.now.timestamp()
    assert metrics.ingest_time(dict(headers)) == ingested
    assert metrics.ingest_time(None) is None and metrics.ingest_time([("x", b"1")]) is None
    count = value("gridlink_ingest_to_department_seconds_count")
    total = value("gridlink_ingest_to_department_seconds_sum")
    messages = department_messages(case.s, case.log)
    assert [m["kind"] for _, m in messages] == ["assignment", "assignment"]
    metrics.observe_department_messages(ingested, messages, case.now + timedelta(seconds=0.25))
    assert value("gridlink_ingest_to_department_seconds_count") == count + 2
    assert value("gridlink_ingest_to_department_seconds_sum") == pytest.approx(total + 0.5)
    metrics.observe_department_messages(None, messages, case.now)  # an operator's command
    assert value("gridlink_ingest_to_department_seconds_count") == count + 2


def test_consumer_lag_forgets_partitions_the_worker_gave_away() -> None:
    metrics.set_consumer_lag({("t.cases.commands", 0): 5, ("t.cases.commands", 1): 0})
    assert value("gridlink_consumer_lag_messages", topic="t.cases.commands", partition="0") == 5
    metrics.set_consumer_lag({("t.cases.commands", 1): 2})
    assert REGISTRY.get_sample_value("gridlink_consumer_lag_messages",
                                     {"topic": "t.cases.commands", "partition": "0"}) is None
    assert value("gridlink_consumer_lag_messages", topic="t.cases.commands", partition="1") == 2
    metrics.set_consumer_lag({})


def test_the_store_snapshot_is_exposed_whole_and_can_be_withdrawn() -> None:
    metrics.publish_store_snapshot(metrics.StoreSnapshot(
        at=1_800_000_000.0, window_seconds=86_400.0,
        open_cases={("dispatched", "P1", "xiaofang", "township"): 3,
                    ("verifying", "P3", "none", "grid"): 1},
        rates={"handling": {"all": 0.75, "xiaofang": 1.0}, "satisfaction": {}}))
    try:
        assert value("gridlink_open_cases", status="dispatched", priority="P1",
                     department="xiaofang", level="township") == 3
        assert value("gridlink_stats_handling_ratio", department="all") == 0.75
        assert value("gridlink_stats_updated_timestamp_seconds") == 1_800_000_000.0
        assert REGISTRY.get_sample_value("gridlink_stats_satisfaction_ratio",
                                         {"department": "all"}) is None
    finally:
        metrics.publish_store_snapshot(None)
    assert REGISTRY.get_sample_value("gridlink_stats_handling_ratio", {"department": "all"}) is None


def test_the_operations_page_names_every_metric() -> None:
    page = (PROJECT_DIR / "docs" / "operations.md").read_text(encoding="utf-8")
    for family in REGISTRY.collect():
        name = family.name + ("_total" if family.type == "counter" else "")
        if not name.startswith("gridlink_"):
            continue
        rate = re.fullmatch(r"gridlink_stats_(\w+)_ratio", name)
        if rate:
            assert "`gridlink_stats_<rate>_ratio`" in page and f"`{rate[1]}`" in page, name
        else:
            assert f"`{name}`" in page, f"{name} is not in docs/operations.md's metrics table"
