"""The SQL projection on the real broker: live equals replay."""

from __future__ import annotations

import subprocess
import sys
import time

from tests.integration.samples import produce_valid_samples
from tests.store.rows import projection_rows
from topics import registry


def test_replay_rebuilds_exactly_the_live_projection(worker, kafka, gridlink_env, tmp_path):
    produce_valid_samples(kafka)
    live_url = gridlink_env["GRIDLINK_DATABASE_URL"]

    # wait until the live projection holds the whole log
    deadline = time.monotonic() + 60
    log_size = 0
    while time.monotonic() < deadline:
        log_size = len(kafka.read(registry.CASE_EVENTS))
        projected = len(projection_rows(live_url)["case_events"]) if log_size else 0
        if log_size >= 40 and projected == log_size:
            time.sleep(2)  # and nothing more is coming
            if len(kafka.read(registry.CASE_EVENTS)) == log_size:
                break
        time.sleep(0.5)
    live = projection_rows(live_url)
    assert len(live["case_events"]) == log_size > 0, worker.log()[-3000:]
    assert len(live["cases"]) == 10  # twelve samples, two of which join other cases

    replay_url = f"sqlite:///{tmp_path / 'replayed.db'}"
    result = subprocess.run(
        [sys.executable, "-m", "cli.main", "replay"],
        env={**gridlink_env, "GRIDLINK_DATABASE_URL": replay_url, "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{log_size} events projected" in result.stdout

    assert projection_rows(replay_url) == live

    again = subprocess.run(
        [sys.executable, "-m", "cli.main", "replay"],
        env={**gridlink_env, "GRIDLINK_DATABASE_URL": replay_url, "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=120,
    )
    assert again.returncode != 0 and "already holds" in again.stderr
