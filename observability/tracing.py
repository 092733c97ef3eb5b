"""Distributed tracing (链路追踪): one trace per inbound message, across every hop.

A camera alert's way through GridLink is one trace::

    <topic> process (intake)          ← root, or the child of the sender's ``traceparent``
      └ triage (the writer)           ← cases.commands carries intake's ``traceparent``
          ├ dept.<code> message       ← carries the writer's ``traceparent`` header
          └ projection                ← one span per trace of a batch written to the store

A command on a case (from the API, a timer, another case) is a ``case`` span of
the writer, the child of the command's own ``traceparent``.

A message that comes in over HTTP (intake, or a department's action) starts
one hop earlier: FastAPI's own telemetry opens a server span per request
(``POST /intake/camera-alerts``), the child of the caller's ``traceparent`` if
any, and the API produces the message with that span's ``traceparent``.

Each stage opens its span for each record it takes (:func:`span_for`, under the
record's W3C ``traceparent``) and keeps it current while it works, and writes
the headers of what it sends from it (:func:`outgoing_headers`). Faust's own
:mod:`faust.contrib.opentelemetry` sensor adds a ``<topic> process`` span for
each record the writer's consumer hands over. Department
systems that read ``dept.<code>`` find the case's trace in that message's
``traceparent`` header (the payload itself is left as the core builds it).

``GRIDLINK_OTEL_EXPORTER`` picks where spans go: ``none`` (default: no
provider, no sensor, :func:`outgoing_headers` returns ``None`` — the hot path
pays one boolean test), ``console`` (one JSON object per span per line on
stdout) or ``otlp`` (OTLP over HTTP to ``GRIDLINK_OTEL_ENDPOINT``).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.context import Context

from settings import Settings

INSTRUMENTATION_NAME = "gridlink"
OTLP_TRACES_PATH = "/v1/traces"

KafkaHeaders = list[tuple[str, bytes]]

_enabled = False


def enabled() -> bool:
    """Whether this process records spans (an exporter is configured)."""
    return _enabled


def configure(settings: Settings, *, service: str) -> bool:
    """Install a tracer provider for ``settings.otel_exporter``; ``False`` when ``none``.

    Call once per process, before the Faust app or the API is built.
    """
    global _enabled
    if settings.otel_exporter == "none":
        _enabled = False
        return False
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        ConsoleSpanExporter,
        SimpleSpanProcessor,
        SpanProcessor,
    )

    processor: SpanProcessor
    if settings.otel_exporter == "console":
        # one line per span, written as it ends: easy to grep and to parse
        processor = SimpleSpanProcessor(ConsoleSpanExporter(
            out=sys.stdout, formatter=lambda span: span.to_json(indent=None) + "\n"))
    else:
        processor = BatchSpanProcessor(_otlp_exporter(settings.otel_endpoint))
    install(processor, service=service)
    return True


def install(processor: Any, *, service: str) -> None:
    """Record spans through ``processor`` (an SDK ``SpanProcessor``) from now on.
    OpenTelemetry keeps the first tracer provider a process installs; later calls
    add their processor to it."""
    global _enabled
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider(resource=Resource.create({"service.name": service}))
        trace.set_tracer_provider(provider)
    provider.add_span_processor(processor)
    _enabled = True


def disable() -> None:
    """Stop recording spans and sending ``traceparent`` (the provider stays installed)."""
    global _enabled
    _enabled = False


def _otlp_exporter(endpoint: str) -> Any:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    if not endpoint:  # the standard OTEL_EXPORTER_OTLP_* variables, else localhost:4318
        return OTLPSpanExporter()
    if not endpoint.rstrip("/").endswith(OTLP_TRACES_PATH):
        endpoint = endpoint.rstrip("/") + OTLP_TRACES_PATH
    return OTLPSpanExporter(endpoint=endpoint)


def tracer() -> trace.Tracer:
    return trace.get_tracer(INSTRUMENTATION_NAME)


def outgoing_headers() -> KafkaHeaders | None:
    """Kafka headers carrying the current trace context (``traceparent``), or ``None``
    when tracing is off or no span is current. Compute once per incoming message and
    pass the same list to every send it causes."""
    if not _enabled:
        return None
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return [(key, value.encode()) for key, value in carrier.items()] or None


def inject(headers: KafkaHeaders | None = None) -> KafkaHeaders:
    """``headers`` (a new list if ``None``) with the current trace context added."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    out = [(k, v) for k, v in (headers or []) if k not in carrier]
    return out + [(key, value.encode()) for key, value in carrier.items()]


def _as_text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def extract(headers: Iterable[tuple[str, Any]] | Mapping[str, Any] | None) -> Context:
    """The trace context carried by Kafka ``headers`` (an empty context if none)."""
    pairs = headers.items() if isinstance(headers, Mapping) else (headers or ())
    carrier: dict[str, str] = {}
    for key, value in pairs:
        if value is not None:
            carrier.setdefault(key, _as_text(value))  # the first of repeated keys wins
    return propagate.extract(carrier)


def trace_id_of(headers: Iterable[tuple[str, Any]] | Mapping[str, Any] | None) -> str | None:
    """The 32-hex-digit trace id in ``headers``' ``traceparent``, if any."""
    context = trace.get_current_span(extract(headers)).get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None


@contextmanager
def spans_per_trace(name: str, headers_of_events: Iterable[Any], **attributes: Any
                    ) -> Iterator[None]:
    """For a batch: one span named ``name`` under each distinct ``traceparent`` among
    the events' headers, open while the block runs (events without one get none).
    A no-op when tracing is off."""
    if not _enabled:
        yield
        return
    seen: set[int] = set()
    spans = []
    for headers in headers_of_events:
        parent = extract(headers)
        context = trace.get_current_span(parent).get_span_context()
        if context.is_valid and context.span_id not in seen:
            seen.add(context.span_id)
            spans.append(tracer().start_span(name, context=parent,
                                             attributes=attributes or None))
    try:
        yield
    finally:
        for span in spans:
            span.end()


@contextmanager
def span_for(name: str, headers: Iterable[tuple[str, Any]] | Mapping[str, Any] | None,
             *, root: bool = False, **attributes: Any) -> Iterator[None]:
    """One event of a batch: a span named ``name`` under the event's ``traceparent``,
    current while the block runs, so what the block sends joins the event's trace.
    A no-op when tracing is off, or when the event carries no trace — unless ``root``:
    where a trace enters GridLink (intake), an event without one starts it."""
    if not _enabled:
        yield
        return
    parent = extract(headers)
    if not root and not trace.get_current_span(parent).get_span_context().is_valid:
        yield
        return
    span = tracer().start_span(name, context=parent, attributes=attributes or None)
    with trace.use_span(span, end_on_exit=True):
        yield


def current_trace_id() -> str | None:
    """The trace id of the current span (for log lines), or ``None``."""
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None


def span_json_lines(text: str) -> list[dict[str, Any]]:
    """The spans the ``console`` exporter wrote into ``text`` (one JSON object a line)."""
    spans = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{") and '"context"' in line:
            try:
                span = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(span, dict) and "context" in span:
                spans.append(span)
    return spans


__all__ = ["configure", "current_trace_id", "disable", "enabled", "extract",
           "inject", "install", "outgoing_headers", "span_json_lines", "spans_per_trace",
           "trace_id_of", "tracer"]
