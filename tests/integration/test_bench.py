"""A short run of ``gridlink bench`` on the session's broker, so the benchmark cannot
rot: every stage runs, every figure is there, and what the stages must get right
(nothing lost, no deadline missed or carded twice) holds. The figures themselves
are the benchmark's business, not the test's."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PROJECT_DIR

pytestmark = pytest.mark.integration

STAGES = "lpipe,fbase,pipeline,latency,pipeline2,sqlapart,apart,scale"
SMOKE = ["--stages", STAGES, "--events", "300", "--latency-seconds", "3",
         "--open-cases", "2000", "--window-seconds", "8"]


@pytest.mark.timeout(900)
def test_a_short_bench_runs_every_stage_and_writes_every_figure(kafka_broker, tmp_path: Path):
    out = tmp_path / "bench.json"
    gridlink = Path(sys.executable).with_name("gridlink")
    run = subprocess.run([str(gridlink), "bench", "--bootstrap", kafka_broker.bootstrap,
                          *SMOKE, "--out", str(out)],
                         check=False, cwd=PROJECT_DIR, capture_output=True, text=True,
                         timeout=880)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-5000:]
    figures = json.loads(out.read_text(encoding="utf-8"))["figures"]
    assert set(figures) == set(STAGES.split(","))

    for stage in ("lpipe", "fbase", "pipeline"):
        assert figures[stage]["events_per_second"] > 0, stage
    assert figures["lpipe"]["cpu_ms_per_event"]["lpipe"] > 0
    assert figures["fbase"]["cpu_ms_per_event"]["fbase"] > 0
    one = figures["pipeline"]
    assert one["case_events_stored"] == one["case_events_logged"] > 0  # all reached the store
    assert one["vs_fbase"] and one["vs_lpipe"]
    hops = one["hops_done_seconds"]  # when each hop was done, after the first event
    assert list(hops) == ["intake", "cases", "store"]
    assert all(0 <= at <= one["seconds"] + 0.01 for at in hops.values()), hops  # rounded
    assert one["worker_cores"] > 0 and one["broker_cores"] is None  # the broker is not ours
    per_event = one["cpu_ms_per_event"]  # each GridLink process, and their sum
    assert set(per_event) == {"worker1", "gridlink"} and per_event["gridlink"] > 0
    # Two workers share the partitions: every command is still answered (or the stage
    # would not drain) and every event stored.
    two = figures["pipeline2"]
    assert two["workers"] == 2
    assert two["vs_one_worker"] and two["vs_lpipe"] and two["vs_fbase"]
    assert two["per_core_vs_one_worker"] > 0
    assert two["case_events_stored"] == two["case_events_logged"] > 0
    apart = figures["sqlapart"]  # the projection in its own process stores it all too
    assert apart["apart"] == ["projection"]
    assert apart["case_events_stored"] == apart["case_events_logged"] > 0
    apart_cpu = apart["cpu_ms_per_event"]
    assert set(apart_cpu) == {"worker1", "projection", "gridlink"}
    assert apart_cpu["gridlink"] == pytest.approx(apart_cpu["worker1"] + apart_cpu["projection"],
                                                  abs=0.002)
    alone = figures["apart"]  # triage and cases alone: intake and the projection apart
    assert alone["apart"] == ["intake", "projection"]
    assert alone["case_events_stored"] == alone["case_events_logged"] > 0
    # intake's own process is measured too (though a short corpus is read before the
    # stage's CPU is first sampled, so its figure may be 0 here)
    assert set(alone["cpu_ms_per_event"]) == {"worker1", "intake", "projection", "gridlink"}
    assert alone["half_rate"]["assignments"] > 0

    latency = figures["latency"]
    assert latency["assignments"] > 0 and latency["latency_ms"]["p50"] > 0

    scale = figures["scale"]
    assert scale["open_cases"] == 2000 and scale["resident_bytes_per_case"] > 0
    assert scale["burst_lateness_ms"]["count"] > 0 and scale["spread_lateness_ms"]["count"] > 0
    assert scale["window_deadlines_unfired"] == 0
    assert scale["cards_recorded_twice"] == 0  # a second card for one deadline: never
    # the same card written again after the kill (same case_id and seq, dropped by every
    # consumer) may happen; it is counted apart and reported, not mistaken for a second card
    repeated = scale["card_records_repeated"]
    assert isinstance(repeated, int) and repeated >= 0
    assert f"carded twice 0 (the same card written again: {repeated})" in run.stderr
    assert scale["recovery_seconds_to_processing"] is not None
    assert scale["recovery_seconds_to_index"] > 0
    assert "L_pipe" in run.stderr and "recovery after kill -9" in run.stderr
