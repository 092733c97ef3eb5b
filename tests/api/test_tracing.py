"""Traces through the API: an HTTP request is a span, and what the API produces to
Kafka carries that span's ``traceparent`` — so an alert posted over HTTP is one
trace from the request to the case agent, and so is a department's action."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from observability import tracing
from tests.api.conftest import Api, eventually
from tests.integration.test_tracing import CROWD, _hex, _sample, _wait_for_hops
from topics import registry

pytestmark = pytest.mark.integration

UPSTREAM_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
UPSTREAM_SPAN = "00f067aa0ba902b7"
ACTION_TRACE = "5c0a2e1b7d3f4e6a8b9c0d1e2f3a4b5c"
ACTION_SPAN = "1a2b3c4d5e6f7a8b"


@pytest.fixture(scope="module")
def api_env(api_env: dict[str, str]) -> dict[str, str]:
    """The module's worker writes its spans to its log (the console exporter)."""
    return {**api_env, "GRIDLINK_OTEL_EXPORTER": "console"}


@pytest.fixture(scope="module")
def api_spans() -> Iterator[InMemorySpanExporter]:
    """The in-process API records its spans in memory."""
    exporter = InMemorySpanExporter()
    tracing.install(SimpleSpanProcessor(exporter), service="gridlink-api")
    yield exporter
    tracing.disable()


def _server_span(exporter: InMemorySpanExporter, name: str, trace_id: str):
    spans = [s for s in exporter.get_finished_spans()
             if s.name == name and format(s.context.trace_id, "032x") == trace_id]
    assert len(spans) == 1, [(s.name, format(s.context.trace_id, "032x"))
                             for s in exporter.get_finished_spans()]
    return spans[0]


def test_an_alert_posted_over_http_is_one_trace_to_its_writer_and_its_action_too(
        api_spans: InMemorySpanExporter, api: Api, api_worker):
    _, _, alert = _sample(CROWD)  # P1 crowd gathering → gongan
    answer = api.client.post(
        "/intake/camera-alerts", content=alert,
        headers={"Content-Type": "application/json",
                 "traceparent": f"00-{UPSTREAM_TRACE}-{UPSTREAM_SPAN}-01",
                 "X-API-Key": api.keys["admin"]})
    assert answer.status_code == 202, answer.text

    http = _server_span(api_spans, "POST /intake/camera-alerts", UPSTREAM_TRACE)
    assert format(http.parent.span_id, "016x") == UPSTREAM_SPAN
    assert http.attributes["http.response.status_code"] == 202
    hops = _wait_for_hops(api_worker, UPSTREAM_TRACE, (
        f"{registry.CAMERA_ALERTS} process", "triage"))
    intake, triage = hops.values()
    assert _hex(intake["parent_id"]) == format(http.context.span_id, "016x")
    assert _hex(triage["parent_id"]) == _hex(intake["context"]["span_id"])

    # a department's action on the case: its own request, its own trace
    desk = api.as_("gongan-desk")
    item = eventually(lambda: next(iter(desk.get("/departments/gongan/queue").json()["items"]),
                                   None), what="the alert's assignment in gongan's queue")
    claimed = api.client.post(
        f"/cases/{item['case_id']}/assignments/{item['assignment_id']}/claim",
        headers={"traceparent": f"00-{ACTION_TRACE}-{ACTION_SPAN}-01",
                 "X-API-Key": api.keys["gongan-desk"]})
    assert claimed.status_code == 200, claimed.text
    action = _server_span(api_spans, "POST /cases/{case_id}/assignments/{assignment_id}/claim",
                          ACTION_TRACE)
    command = _wait_for_hops(api_worker, ACTION_TRACE, ("case",))
    assert _hex(command["case"]["parent_id"]) == format(action.context.span_id, "016x")
