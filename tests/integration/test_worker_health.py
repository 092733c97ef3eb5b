"""A worker's probes on its metrics port, on the real broker: ``/healthz`` answers from
the start, ``/readyz`` is 503 while the worker starts and turns 200 once it is Ready
(its partitions recovered, its timers running, its lag measured), and ``/metrics``
still serves the exposition, whole or only the metrics asked for."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.integration.conftest import GridlinkProcess
from tests.integration.kafka_client import KafkaTestClient
from topics.local_kafka import free_port

CHECKS = {"producer", "writer", "timers", "intake", "projection", "lag", "event_loop"}


def _get(port: int, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def _readyz(port: int) -> tuple[int, dict[str, Any]]:
    status, body = _get(port, "/readyz")
    return status, json.loads(body)


def _first_answer(port: int, process: GridlinkProcess, timeout: float = 60.0
                  ) -> tuple[int, dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return _readyz(port)
        except (urllib.error.URLError, ConnectionError):
            assert process.proc.poll() is None, process.log()[-3000:]
            time.sleep(0.05)
    raise AssertionError(f"the worker's port {port} never answered:\n{process.log()[-3000:]}")


def test_readyz_turns_ready_once_the_worker_is_and_metrics_still_serve(
        start_gridlink, kafka: KafkaTestClient) -> None:
    kafka.create_topics()
    port = free_port()
    worker = start_gridlink("worker", env={"GRIDLINK_WORKER_METRICS_PORT": str(port)})

    status, first = _first_answer(port, worker)
    assert status == 503, first  # starting: nothing assigned, recovered or measured yet
    assert first["status"] == "not ready"
    assert not all(check["ok"] for check in first["checks"].values()), first
    assert _get(port, "/healthz") == (200, b'{"status": "ok"}')

    worker.wait_for_log("Worker]: Ready", timeout=90)
    deadline = time.monotonic() + 30
    while (answer := _readyz(port))[0] != 200:
        assert time.monotonic() < deadline, f"not ready 30 s after Ready: {answer}"
        time.sleep(0.5)
    checks = answer[1]["checks"]
    assert set(checks) == CHECKS, checks
    assert all(check["ok"] for check in checks.values()), checks
    assert "assigned and recovered" in checks["writer"]["detail"], checks

    status, body = _get(port, "/metrics")
    assert status == 200
    names = {family.name for family in text_string_to_metric_families(body.decode())}
    assert {"gridlink_deadlines_fired", "gridlink_consumer_lag_messages"} <= names, names
    query = urllib.parse.urlencode({"name[]": "gridlink_deadline_index_cases"})
    status, body = _get(port, f"/metrics?{query}")
    assert status == 200
    only = [family.name for family in text_string_to_metric_families(body.decode())]
    assert only == ["gridlink_deadline_index_cases"], only

    assert _get(port, "/nothing")[0] == 404
