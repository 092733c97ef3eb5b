"""A worker's HTTP port: its metrics, and the probes an orchestrator asks.

prometheus-client's own server answers nothing but metrics, so a worker serves its
port (``GRIDLINK_WORKER_METRICS_PORT``) with this small threading HTTP server:

- ``/metrics``: the Prometheus exposition, as prometheus-client serves it (the text
  or OpenMetrics format by the ``Accept`` header; ``?name[]=<metric>`` for only some
  metrics);
- ``/healthz``: 200 as long as the process answers (liveness);
- ``/readyz``: 200 when every check of the :class:`Readiness` snapshot passes, else
  503; the JSON body gives each check and why it fails.

The checks are computed on the worker's event loop (:mod:`agents.health`) and
published here as one snapshot; a request thread only reads it, under a lock. A
snapshot older than :data:`STALE_SECONDS` fails readiness by itself: the event loop
that should renew it is blocked or gone.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from prometheus_client import REGISTRY
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import CollectorRegistry

STALE_SECONDS = 10.0  # a snapshot not renewed for this long means the event loop is stuck


@dataclass(frozen=True)
class Check:
    """One readiness check: whether it passes, and what it saw."""

    ok: bool
    detail: str


class Readiness:
    """The worker's readiness checks, published whole by the event loop and read by the
    HTTP threads (thread-safe)."""

    def __init__(self, *, clock: Any = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._checks: dict[str, Check] = {}
        self._published: float | None = None

    def publish(self, checks: dict[str, Check]) -> None:
        """Replace every check at once."""
        with self._lock:
            self._checks = dict(checks)
            self._published = self._clock()

    def snapshot(self) -> tuple[bool, dict[str, Check]]:
        """(ready, every check): ready when there are checks and each passes, and they
        were published less than :data:`STALE_SECONDS` ago."""
        with self._lock:
            checks, published = dict(self._checks), self._published
        if published is None:
            checks["event_loop"] = Check(False, "the worker is starting: no check run yet")
        else:
            age = self._clock() - published
            checks["event_loop"] = Check(
                age < STALE_SECONDS,
                f"checks run {age:.1f} s ago" + ("" if age < STALE_SECONDS else
                                                 " (the event loop is blocked or stopped)"))
        return all(check.ok for check in checks.values()), checks


def _handler(readiness: Readiness, registry: CollectorRegistry) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the name http.server calls)
            url = urlsplit(self.path)
            if url.path == "/metrics":
                self._metrics(parse_qs(url.query))
            elif url.path == "/healthz":
                self._json(200, {"status": "ok"})
            elif url.path == "/readyz":
                ready, checks = readiness.snapshot()
                self._json(200 if ready else 503,
                           {"status": "ready" if ready else "not ready",
                            "checks": {name: asdict(check) for name, check in checks.items()}})
            else:
                self._json(404, {"status": "not found",
                                 "detail": "this port serves /metrics, /healthz and /readyz"})

        def _metrics(self, params: dict[str, list[str]]) -> None:
            encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
            names = params.get("name[]")
            chosen = registry.restricted_registry(names) if names else registry
            self._send(200, encoder(chosen), content_type)

        def _json(self, status: int, body: dict[str, Any]) -> None:
            self._send(status, json.dumps(body, ensure_ascii=False).encode(),
                       "application/json")

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            """Scrapes and probes every few seconds: not worth a log line each."""

    return Handler


class ProbeServer(ThreadingHTTPServer):
    daemon_threads = True  # a request in flight never holds the process's exit


def serve(port: int, readiness: Readiness, *, addr: str = "0.0.0.0",
          registry: CollectorRegistry = REGISTRY) -> ProbeServer | None:
    """Serve metrics and probes on ``port`` in a background thread (0: do not serve);
    the server, to stop with ``shutdown()``."""
    if not port:
        return None
    server = ProbeServer((addr, port), _handler(readiness, registry))
    threading.Thread(target=server.serve_forever, name="metrics and probes",
                     daemon=True).start()
    return server


__all__ = ["STALE_SECONDS", "Check", "ProbeServer", "Readiness", "serve"]
