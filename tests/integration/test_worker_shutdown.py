"""SIGTERM stops a worker within ``GRIDLINK_SHUTDOWN_SECONDS``, on the real broker: a
worker that drains in time leaves its groups and exits 0; one that does not is ended
at the bound, with status 1 and a line saying why."""

from __future__ import annotations

import time

from tests.integration.conftest import GridlinkProcess
from tests.integration.kafka_client import KafkaTestClient

GAVE_UP = "the worker did not stop within"


def _stopped(worker: GridlinkProcess) -> tuple[int, float]:
    """(exit status, seconds) of a SIGTERM to ``worker``."""
    started = time.monotonic()
    status = worker.stop(timeout=60)
    return status, time.monotonic() - started


def test_a_worker_drains_and_exits_0_within_its_bound(start_gridlink,
                                                     kafka: KafkaTestClient) -> None:
    kafka.create_topics()
    worker = start_gridlink("worker", env={"GRIDLINK_SHUTDOWN_SECONDS": "20"})
    worker.wait_for_log("Worker]: Ready", timeout=90)
    status, seconds = _stopped(worker)
    log = worker.log()
    assert status == 0, log[-3000:]
    assert seconds < 20, f"stopped after {seconds:.1f} s"
    assert "SIGTERM: draining, for at most 20.0 s" in log
    assert log.count("LeaveGroup request succeeded") >= 3  # the writers, intake, projection
    assert GAVE_UP not in log


def test_a_worker_that_does_not_stop_in_time_exits_at_the_bound(
        start_gridlink, kafka: KafkaTestClient) -> None:
    """Faust's own wind-down takes over a second (it waits 1 s for the event loop's last
    tasks), so a bound of 0.3 s is always reached."""
    kafka.create_topics()
    worker = start_gridlink("worker", env={"GRIDLINK_SHUTDOWN_SECONDS": "0.3"})
    worker.wait_for_log("Worker]: Ready", timeout=90)
    status, seconds = _stopped(worker)
    log = worker.log()
    assert status == 1, log[-3000:]
    assert seconds < 0.3 + 2.0, f"stopped after {seconds:.1f} s"
    assert f"{GAVE_UP} 0.3 s (GRIDLINK_SHUTDOWN_SECONDS)" in log
