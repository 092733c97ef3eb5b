"""``kill -9`` of the worker at twenty random instants while 5,000 simulated messages
come in, departments act and SLA clocks fire; then every invariant of the case log."""

from __future__ import annotations

import random
import time

import pytest

from clock import wall_clock
from settings import Settings
from tests.faults.harness import (
    Desks,
    Report,
    Traffic,
    check_log,
    check_projection,
    check_stores,
    read_offsets,
    settings_of,
    simulated,
    valid_ids,
    wait_drained,
)
from topics import registry

pytestmark = [pytest.mark.faults, pytest.mark.integration]

MESSAGES = 5_000
RATE = 36.0  # messages a second: the traffic lasts about 140 s
KILLS = 20
SEED = 1607


def alive(process):  # type: ignore[no-untyped-def]
    """A check that raises once ``process`` has exited."""
    def check() -> None:
        if process.proc.poll() is not None:
            raise AssertionError(f"the worker exited ({process.proc.returncode}):\n"
                                 + process.log()[-3000:])
    return check


def until_appending(settings: Settings, since: dict[int, int], *, timeout: float,
                    check) -> float:  # type: ignore[no-untyped-def]
    """Seconds until ``cases.events`` grows past ``since`` (the replacement is at work)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        check()
        now = read_offsets(settings, registry.CASE_EVENTS)
        if sum(now.values()) > sum(since.values()):
            return time.monotonic() - started
        time.sleep(0.2)
    raise AssertionError(f"the replacement appended nothing within {timeout:.0f} s")


@pytest.mark.timeout(900)
def test_kill_the_worker_at_twenty_random_instants(fault_env, start_gridlink, kafka,
                                                   tmp_path, fault_table):
    settings = settings_of(fault_env)
    kafka.create_topics()
    messages = simulated(MESSAGES, seed=SEED, rate=RATE, start=wall_clock())
    desks = Desks(settings, seed=SEED)
    desks.start()
    worker = start_gridlink("worker")
    worker.wait_for_log("Worker]: Ready", timeout=90)
    traffic = Traffic(settings, messages)
    traffic.start()
    report = Report("`kill -9` of the worker, 20 times during 5,000 messages")
    duration = messages[-1].sent_offset_s
    rng = random.Random(SEED)
    instants = sorted(rng.uniform(8, duration - 8) for _ in range(KILLS))
    started = time.monotonic()
    for at in instants:
        time.sleep(max(at - (time.monotonic() - started), 0.0))
        before = read_offsets(settings, registry.CASE_EVENTS)
        worker.stop(9)  # SIGKILL: no shutdown, no commit, no goodbye to the group
        worker = start_gridlink("worker")
        report.recovery_seconds.append(until_appending(settings, before, timeout=90,
                                                       check=alive(worker)))
    traffic.join(timeout=duration + 300)
    assert traffic.error is None and traffic.sent == len(messages)
    wait_drained(settings, timeout=300)
    desks.stop.set()
    desks.join(timeout=60)
    assert desks.error is None and desks.commands > 0
    time.sleep(3)
    assert worker.stop() == 0
    stopped_at = wall_clock()
    projection = start_gridlink("worker", "--agents", "projection")
    wait_drained(settings, timeout=180, stages=("projection",))
    projection.stop()

    states = check_log(report, settings, valid_ids(messages), stopped_at=stopped_at)
    check_stores(report, settings, states)
    check_projection(report, settings, fault_env, tmp_path)
    fault_table.append(report)
    print(report.row())
    assert report.failures == [], "\n".join(report.failures)
    assert (report.lost, report.holes, report.different, report.twice) == (0, 0, 0, 0)
    assert report.events > 4_000 and report.cases > 1_000 and report.cards > 100
    assert len(report.recovery_seconds) == KILLS
