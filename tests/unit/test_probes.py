"""The worker's probe server over real HTTP on loopback: readiness from the published
snapshot, stale when the event loop stops renewing it; metrics whole or filtered."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge

from observability.health import STALE_SECONDS, Check, ProbeServer, Readiness, serve
from topics.local_kafka import free_port


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def readiness(clock: Clock) -> Readiness:
    return Readiness(clock=clock)


@pytest.fixture
def port(readiness: Readiness) -> Iterator[int]:
    registry = CollectorRegistry()
    Counter("gridlink_things_total", "Things", registry=registry).inc(3)
    Gauge("gridlink_other", "Other", registry=registry).set(7)
    port = free_port()
    server = serve(port, readiness, addr="127.0.0.1", registry=registry)
    assert isinstance(server, ProbeServer)
    yield port
    server.shutdown()
    server.server_close()


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_not_ready_before_any_check_is_published(port: int) -> None:
    status, body = _get(port, "/readyz")
    assert status == 503
    assert json.loads(body)["checks"] == {
        "event_loop": {"ok": False, "detail": "the worker is starting: no check run yet"}}
    assert _get(port, "/healthz") == (200, '{"status": "ok"}')


def test_ready_when_every_check_passes_and_names_the_one_that_fails(
        port: int, readiness: Readiness) -> None:
    readiness.publish({"writer": Check(True, "partitions [0] assigned and recovered"),
                       "lag": Check(True, "measured 1.0 s ago")})
    status, body = _get(port, "/readyz")
    assert status == 200, body
    assert json.loads(body)["status"] == "ready"
    readiness.publish({"writer": Check(True, "partitions [0] assigned and recovered"),
                       "lag": Check(False, "not measured yet")})
    status, body = _get(port, "/readyz")
    assert status == 503
    failed = {name for name, check in json.loads(body)["checks"].items() if not check["ok"]}
    assert failed == {"lag"}


def test_a_snapshot_not_renewed_is_not_ready(port: int, readiness: Readiness,
                                             clock: Clock) -> None:
    readiness.publish({"writer": Check(True, "ok")})
    clock.now += STALE_SECONDS + 1
    status, body = _get(port, "/readyz")
    assert status == 503
    assert "event loop is blocked" in json.loads(body)["checks"]["event_loop"]["detail"]


def test_metrics_whole_or_only_those_asked_for(port: int) -> None:
    status, whole = _get(port, "/metrics")
    assert status == 200
    assert "gridlink_things_total 3.0" in whole and "gridlink_other 7.0" in whole
    status, only = _get(port, "/metrics?name[]=gridlink_other")
    assert status == 200
    assert "gridlink_other 7.0" in only and "gridlink_things" not in only
    assert _get(port, "/elsewhere")[0] == 404
