"""Tracing on a real worker: one camera alert is one trace, from intake to the
department's queue and the projection, and the trace id travels in ``traceparent``."""

from __future__ import annotations

import json
import time

import pytest

from observability.tracing import span_json_lines
from tests.integration.samples import valid_messages
from topics import registry

pytestmark = pytest.mark.integration

CROWD = b"CAM-37150200011320000003-20261126T101500-1"  # P1 crowd gathering → gongan
VENDING = b"CAM-37150200081320000004-20261126T102000-7"  # street vending → chengguan
UPSTREAM_TRACE = "0af7651916cd43dd8448eb211c80319c"
UPSTREAM_SPAN = "b7ad6b7169203331"


def _sample(alert_id: bytes) -> tuple[str, bytes, bytes]:
    return next(m for m in valid_messages() if m[1] == alert_id)


def _traceparent(record) -> str:
    headers = dict(record.headers or [])
    assert "traceparent" in headers, f"no traceparent header on {record.topic}: {headers}"
    return headers["traceparent"].decode()


def _hex(value: str | None) -> str | None:
    return value.removeprefix("0x") if value else None


def _spans(log: str, trace_id: str) -> list[dict]:
    return [s for s in span_json_lines(log) if _hex(s["context"]["trace_id"]) == trace_id]


def _hop(spans: list[dict], suffix: str) -> dict | None:
    return next((s for s in spans if s["name"].endswith(suffix)), None)


def _wait_for_hops(worker, trace_id: str, suffixes: tuple[str, ...],
                   timeout: float = 20.0) -> dict[str, dict]:
    deadline = time.monotonic() + timeout
    while True:
        spans = _spans(worker.log(), trace_id)
        hops = {suffix: _hop(spans, suffix) for suffix in suffixes}
        if all(hops.values()):
            return hops  # type: ignore[return-value]
        if time.monotonic() > deadline:
            raise AssertionError(f"trace {trace_id}: hops {hops} among {spans}\n"
                                 + worker.log()[-3000:])
        time.sleep(0.2)


def _is_json(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except json.JSONDecodeError:
        return False


def _department_message(kafka, department: str):
    def assignment(record) -> bool:
        return json.loads(record.value)["kind"] == "assignment"
    return kafka.wait_for(registry.department_topic(department), assignment, timeout=60)


def test_a_camera_alert_is_one_trace_from_intake_to_the_department_queue(
        start_gridlink, kafka):
    kafka.create_topics()
    worker = start_gridlink("worker", env={"GRIDLINK_OTEL_EXPORTER": "console",
                                           "GRIDLINK_LOG_JSON": "true",
                                           "GRIDLINK_LOG_LEVEL": "debug"})
    worker.wait_for_log("Worker]: Ready", timeout=90)

    topic, key, value = _sample(CROWD)
    kafka.produce(topic, value, key=key)
    dept = _department_message(kafka, "gongan")
    version, trace_id, parent_span, flags = _traceparent(dept).split("-")
    assert version == "00" and len(trace_id) == 32 and int(flags, 16) & 1  # sampled

    hops = _wait_for_hops(worker, trace_id, (
        f"{registry.CAMERA_ALERTS} process", "triage", "projection"))
    intake, triage, projection = hops.values()
    assert intake["parent_id"] is None  # the alert came without a trace: intake starts it
    assert _hex(triage["parent_id"]) == _hex(intake["context"]["span_id"])
    # the department message and the projection hang under the writer's triage span
    assert parent_span == _hex(triage["context"]["span_id"])
    assert _hex(projection["parent_id"]) == _hex(triage["context"]["span_id"])
    assert {s["resource"]["attributes"]["service.name"] for s in hops.values()} == {
        "gridlink-worker"}

    # JSON logs: every line of the worker's output is JSON (spans or log records), and
    # the triage decision's record names the case and the trace
    lines = [line for line in worker.log().splitlines() if line.strip()]
    not_json = [line for line in lines if not _is_json(line)]
    assert not not_json, not_json[:5]
    records = [json.loads(line) for line in lines if '"logger"' in line]
    decision = next(r for r in records if r["logger"] == "agents.writer"
                    and r.get("trace_id") == trace_id)
    assert decision["case_id"] == json.loads(dept.value)["case_id"]
    assert decision["level"] == "DEBUG"

    # the case's other messages carry the same trace
    event = kafka.wait_for(registry.CASE_EVENTS,
                           lambda r: json.loads(r.value)["type"] == "case_opened")
    assert _traceparent(event).split("-")[1] == trace_id

    # an upstream system's traceparent is continued, not replaced
    topic, key, value = _sample(VENDING)
    kafka.produce(topic, value, key=key, headers=[
        ("traceparent", f"00-{UPSTREAM_TRACE}-{UPSTREAM_SPAN}-01".encode())])
    dept = _department_message(kafka, "chengguan")
    assert _traceparent(dept).split("-")[1] == UPSTREAM_TRACE
    intake = _wait_for_hops(worker, UPSTREAM_TRACE, (f"{registry.CAMERA_ALERTS} process",))
    assert _hex(intake[f"{registry.CAMERA_ALERTS} process"]["parent_id"]) == UPSTREAM_SPAN
