"""A failed benchmark run keeps its workers' logs: its work directory is deleted."""

from __future__ import annotations

from pathlib import Path

from benchmarks.run import keep_logs


def test_the_workers_logs_are_copied_out_by_stage(tmp_path: Path) -> None:
    work = tmp_path / "work"
    for stage, worker in [("pipeline", "worker1"), ("pipeline2", "worker1"),
                          ("pipeline2", "worker2")]:
        (work / stage).mkdir(parents=True, exist_ok=True)
        (work / stage / f"{worker}.log").write_text(f"{stage} {worker}\n")
    (work / "pipeline2" / "gridlink.db").write_bytes(b"not a log")

    kept = keep_logs(work, tmp_path / "bench-results.logs")

    assert kept == tmp_path / "bench-results.logs"
    assert sorted(str(p.relative_to(kept)) for p in kept.rglob("*.*")) == [
        "pipeline/worker1.log", "pipeline2/worker1.log", "pipeline2/worker2.log"]
    assert (kept / "pipeline2" / "worker2.log").read_text() == "pipeline2 worker2\n"


def test_nothing_is_made_when_no_worker_had_started(tmp_path: Path) -> None:
    (tmp_path / "work" / "lpipe").mkdir(parents=True)

    assert keep_logs(tmp_path / "work", tmp_path / "bench-results.logs") is None
    assert not (tmp_path / "bench-results.logs").exists()
