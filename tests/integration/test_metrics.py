"""Metrics seen the way operators see them: a real Prometheus server (Debian's
``prometheus`` package; ``.ci/run`` installs it) scrapes a running ``gridlink worker``
(on ``GRIDLINK_WORKER_METRICS_PORT``) and ``gridlink api`` (``/metrics``) while the
contract's samples flow; its HTTP API must then count what was sent."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, TopicPartition

from settings import Settings
from streams.reference import load_city
from tests.integration.samples import invalid_samples, valid_messages
from tests.unit.test_deployment import DASHBOARDS
from tests.unit.test_deployment import _exprs as dashboard_exprs
from tests.unit.test_metrics import check_exposition
from topics import registry
from topics.local_kafka import free_port

SCRAPE_CONFIG = """\
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: gridlink-worker
    static_configs: [{{targets: ["127.0.0.1:{worker}"]}}]
  - job_name: gridlink-api
    static_configs: [{{targets: ["127.0.0.1:{api}"]}}]
"""


def _get(url: str, timeout: float = 5.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read()


def _wait_http(url: str, what: str, timeout: float, log: Callable[[], str]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            _get(url, timeout=2)
            return
        except (urllib.error.URLError, ConnectionError, OSError):
            time.sleep(0.2)
    raise AssertionError(f"{what} did not answer on {url} within {timeout} s:\n{log()[-3000:]}")


class Prometheus:
    """A Prometheus server on loopback with a temporary configuration and database."""

    def __init__(self, directory: Path, *, worker_port: int, api_port: int) -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            pytest.fail("the prometheus server is not installed (Debian package prometheus; "
                        "tools/system-packages installs it): the metrics test needs a real one")
        config = directory / "prometheus.yml"
        config.write_text(SCRAPE_CONFIG.format(worker=worker_port, api=api_port))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = directory / "prometheus.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [binary, f"--config.file={config}", f"--storage.tsdb.path={directory / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--storage.tsdb.retention.time=1h"],
            stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        _wait_http(f"{self.url}/-/ready", "prometheus", 60, self.log)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def query(self, promql: str) -> dict[tuple[tuple[str, str], ...], float]:
        """An instant query: labels (sorted pairs, ``__name__`` left out) → value."""
        try:
            answer = json.loads(_get(f"{self.url}/api/v1/query?"
                                     + urllib.parse.urlencode({"query": promql})))
        except urllib.error.HTTPError as error:  # 400 for a query that does not parse
            raise AssertionError(f"{promql!r}: {error.read().decode()}") from None
        assert answer["status"] == "success", answer
        return {tuple(sorted((k, v) for k, v in r["metric"].items() if k != "__name__")):
                float(r["value"][1]) for r in answer["data"]["result"]}

    def by(self, label: str, promql: str) -> dict[str, float]:
        return {dict(labels).get(label, ""): value
                for labels, value in self.query(promql).items()}

    def scalar(self, promql: str) -> float | None:
        values = list(self.query(promql).values())
        return values[0] if values else None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


def _eventually(check: Callable[[], Any], what: str, timeout: float = 60.0,
                context: Callable[[], str] = lambda: "") -> Any:
    """Retry ``check`` (returns a truthy result or raises AssertionError) until it holds."""
    deadline = time.monotonic() + timeout
    last: AssertionError | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except AssertionError as error:
            last = error
        time.sleep(0.5)
    raise AssertionError(f"{what} not seen within {timeout} s: {last}\n{context()[-3000:]}")


def _read_topics(settings: Settings, names: list[str]) -> dict[str, list]:
    """Every record of the given contract topics, read to their current end."""
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap,
                             enable_auto_commit=False, consumer_timeout_ms=200)
    try:
        physical = {settings.topic(name): name for name in names}
        tps = [TopicPartition(topic, p) for topic in physical
               for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        out: dict[str, list] = {name: [] for name in names}
        deadline = time.monotonic() + 30
        while (time.monotonic() < deadline
               and any(consumer.position(tp) < ends[tp] for tp in tps)):
            for tp, batch in consumer.poll(timeout_ms=200).items():
                out[physical[tp.topic]].extend(batch)
        return out
    finally:
        consumer.close()


@pytest.fixture
def running(start_gridlink, kafka, tmp_path) -> Iterator[tuple[Any, Any, Prometheus]]:
    """A worker serving its metrics, the API, and Prometheus scraping both."""
    worker_port, api_port = free_port(), free_port()
    kafka.create_topics()
    worker = start_gridlink("worker", env={"GRIDLINK_WORKER_METRICS_PORT": str(worker_port)})
    worker.wait_for_log("Worker]: Ready", timeout=90)  # it has migrated the database
    api = start_gridlink("api", env={"GRIDLINK_API_PORT": str(api_port)})
    _wait_http(f"http://127.0.0.1:{api_port}/health", "gridlink api", 60, api.log)
    prometheus = Prometheus(tmp_path, worker_port=worker_port, api_port=api_port)
    try:
        _eventually(lambda: prometheus.by("job", "up == 1").keys()
                    >= {"gridlink-worker", "gridlink-api"},
                    "both targets up", context=prometheus.log)
        yield worker, api, prometheus
    finally:
        prometheus.stop()


def test_prometheus_counts_what_was_sent(running, kafka):
    worker, api, prometheus = running
    settings = kafka.settings
    sent = Counter()
    rejected = Counter()
    for topic, key, value in valid_messages():
        kafka.produce(topic, value, key=key)
        sent[registry.INGEST_SOURCES[topic]] += 1
    for topic, raw, _ in invalid_samples():
        kafka.produce(topic, raw, key=b"bad")
        sent[registry.INGEST_SOURCES[topic]] += 1
        rejected[registry.INGEST_SOURCES[topic]] += 1
    expected_in = {str(source): float(n) for source, n in sent.items()}
    expected_dead = {str(source): float(n) for source, n in rejected.items()}

    def context() -> str:
        return worker.log()[-2000:] + api.log()[-1000:]

    # events in by source, dead letters by source: exactly what was sent
    _eventually(lambda: prometheus.by(
        "source", "sum by (source) (gridlink_events_in_total)") == expected_in,
        f"events in {expected_in}", context=context)
    _eventually(lambda: prometheus.by(
        "source", "sum by (source) (gridlink_dead_letters_total)") == expected_dead,
        f"dead letters {expected_dead}", context=context)

    # assignments by department: what the department queues received
    departments = sorted(load_city(settings.reference_dir).departments)
    topics = [registry.department_topic(code) for code in departments]

    def assignments_match() -> dict[str, float]:
        records = _read_topics(settings, [*topics, registry.CASE_EVENTS])
        queued = {code: float(n) for code, topic in zip(departments, topics, strict=True)
                  if (n := sum(json.loads(r.value)["kind"] == "assignment"
                               for r in records[topic]))}
        counted = prometheus.by("department", "sum by (department) (gridlink_assignments_total)")
        assert queued and counted == queued, f"Prometheus {counted} != queues {queued}"
        assignments_match.log = records[registry.CASE_EVENTS]  # type: ignore[attr-defined]
        return queued

    queued = _eventually(assignments_match, "assignments by department", context=context)
    assert {"chengguan", "xiaofang", "gongan", "sifa", "gongyong"} <= set(queued)
    log = [json.loads(r.value) for r in assignments_match.log]  # type: ignore[attr-defined]
    opened = {e["case_id"] for e in log if e["type"] == "case_opened"}
    finished = {e["case_id"] for e in log if e["type"] in ("case_closed", "case_rejected")}
    assert prometheus.scalar("sum(gridlink_cases_opened_total)") == len(opened) == 10

    # every auto-dispatched assignment's latency from its ingest topic was measured
    assert prometheus.scalar(
        "sum(gridlink_ingest_to_department_seconds_count)") == sum(queued.values())
    assert prometheus.scalar("sum(gridlink_case_transitions_total{from=\"none\"})") == len(opened)

    # the API's gauges of the SQL projection: open cases and the rates
    _eventually(lambda: prometheus.scalar("sum(gridlink_open_cases)")
                == len(opened - finished), f"{len(opened - finished)} open cases",
                context=context)
    assert prometheus.scalar(
        'gridlink_stats_self_resolved_ratio{department="all", job="gridlink-api"}') is not None
    assert prometheus.query('gridlink_stats_handling_ratio{department="all"}')

    # consumer lag of every agent topic partition, down to 0 once all is committed
    partitions = prometheus.query("gridlink_consumer_lag_messages")
    lagged = {dict(labels)["topic"] for labels in partitions}
    assert {settings.topic(t) for t in (*registry.INGEST_TOPICS, registry.CASE_COMMANDS,
                                        registry.CASE_EVENTS)} <= lagged
    assert not any(t.endswith("-changelog") for t in lagged)
    _eventually(lambda: prometheus.scalar("max(gridlink_consumer_lag_messages)") == 0,
                "consumer lag 0", context=context)

    # what Prometheus scraped follows the naming conventions
    targets = json.loads(_get(f"{prometheus.url}/api/v1/targets"))["data"]["activeTargets"]
    assert {t["labels"]["job"] for t in targets} == {"gridlink-worker", "gridlink-api"}
    for target in targets:
        kinds = check_exposition(_get(target["scrapeUrl"]).decode())
        assert "gridlink_events_in" in kinds and "gridlink_open_cases" in kinds

    # every query of the Grafana dashboard is valid PromQL, and the rates have data
    for path in DASHBOARDS:
        for _title, expr in dashboard_exprs(json.loads(path.read_text(encoding="utf-8"))):
            prometheus.query(expr)  # fails on a query Prometheus cannot parse
    assert prometheus.query('max(gridlink_stats_handling_ratio{department="all"})')

