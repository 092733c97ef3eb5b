"""``kill -9`` of the worker at twenty random instants while 5,000 simulated messages
come in, departments act and SLA clocks fire; then every invariant of the case log."""

from __future__ import annotations

import random
import time

import pytest

from tests.faults.harness import (
    Report,
    alive,
    finish_and_check,
    read_offsets,
    settings_of,
    under_load,
    until_appending,
)
from topics import registry

pytestmark = [pytest.mark.faults, pytest.mark.integration]

MESSAGES = 5_000
RATE = 36.0  # messages a second: the traffic lasts about 140 s
KILLS = 20
SEED = 1607


@pytest.mark.timeout(900)
def test_kill_the_worker_at_twenty_random_instants(fault_env, start_gridlink, kafka,
                                                   tmp_path, fault_table):
    settings = settings_of(fault_env)
    kafka.create_topics()
    load = under_load(settings, start_gridlink, count=MESSAGES, rate=RATE, seed=SEED,
                      ready_timeout=90)
    report = Report("`kill -9` of the worker, 20 times during 5,000 messages")
    duration = load.messages[-1].sent_offset_s
    rng = random.Random(SEED)
    instants = sorted(rng.uniform(8, duration - 8) for _ in range(KILLS))
    started = time.monotonic()
    for at in instants:
        time.sleep(max(at - (time.monotonic() - started), 0.0))
        before = read_offsets(settings, registry.CASE_EVENTS)
        load.worker.stop(9)  # SIGKILL: no shutdown, no commit, no goodbye to the group
        load.worker = start_gridlink("worker")
        report.recovery_seconds.append(until_appending(settings, before, timeout=90,
                                                       check=alive(load.worker)))
    load.traffic.join(timeout=duration + 300)
    assert load.traffic.error is None and load.traffic.sent == len(load.messages)
    finish_and_check(load, report, settings, fault_env, start_gridlink=start_gridlink,
                     workdir=tmp_path, fault_table=fault_table)
    assert load.desks.commands > 0
    assert report.events > 4_000 and report.cases > 1_000 and report.cards > 100
    assert len(report.recovery_seconds) == KILLS
