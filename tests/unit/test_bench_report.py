"""``gridlink bench report``: a run's figures against the targets of
``benchmarks/targets.toml``, rendered into docs/benchmarks.md between its markers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from benchmarks.report import (
    BEGIN,
    END,
    MET,
    NOT_MET,
    NOT_RUN,
    STRETCH_MET,
    Figure,
    ReportError,
    block_of,
    load_figures,
    read_results,
    render,
    replace_block,
)
from cli.main import main as gridlink
from tests.conftest import PROJECT_DIR

DOC_RESULTS = ("docs/bench-results.json", "docs/bench-results-scale.json")


def _results(figures: dict[str, Any], **options: Any) -> dict[str, Any]:
    return {"started_at": "2026-12-01T10:00:00+00:00",
            "machine": {"cpus": 2, "cpu": "a CPU", "memory_bytes": 8 * 2**30},
            "options": {"stages": list(figures), "events": 2000, "seed": 7, **options},
            "figures": figures}


def _rows(block: str) -> dict[str, list[str]]:
    """label → the other cells of its row."""
    rows = {}
    for line in block.splitlines():
        if line.startswith("| ") and not line.startswith("| 指标"):
            cells = [cell.strip() for cell in line.strip("|").split("|")]
            rows[cells[0]] = cells[1:]
    return rows


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    """One worker and the latency stage; neither two workers nor scale ran."""
    path = tmp_path / "bench-results.json"
    path.write_text(json.dumps(_results({
        "fbase": {"events_per_second": 1000.0, "cpu_ms_per_event": {"fbase": 0.5}},
        "pipeline": {"events_per_second": 750.0, "vs_fbase": 0.75, "worker_cores": 0.9,
                     "cpu_ms_per_event": {"worker1": 2.4, "gridlink": 2.4, "broker": 0.4}},
        "latency": {"rate": 58.0, "latency_ms": {"p50": 9, "p99": 150, "p99.9": 640},
                    "p1_assignments": 0, "p1_latency_ms": {}},
    }, latency_rate=58.0, latency_seconds=30.0)), encoding="utf-8")
    return path


def test_each_target_is_met_not_met_or_not_run(sample: Path) -> None:
    rows = _rows(render([read_results(sample)]))

    assert rows["pipeline, one worker ÷ F_base"] == ["0.75", "≥ 0.50 (挑战 stretch 0.70)",
                                                    STRETCH_MET]
    assert rows["CPU per inbound event, all GridLink processes (one worker)"] == [
        "2.40 ms", "≤ 2.00 ms (挑战 stretch 1.20 ms)", NOT_MET]
    assert rows["ingest → department queue, p99"] == ["150 ms", "≤ 150 ms", MET]  # the bound
    assert rows["ingest → department queue, p99.9"][1:] == ["≤ 500 ms", NOT_MET]
    # latency ran, but no P1 assignment came: the figure is missing, so not met
    assert rows["P1 assignments, ingest → department queue, p99"] == ["—", "≤ 100 ms", NOT_MET]
    assert rows["two workers: events/s per worker-core ÷ one worker's"] == [
        "—", "≥ 0.90", NOT_RUN]
    assert rows["deadlines carded twice"] == ["—", "= 0", NOT_RUN]
    assert rows["pipeline, one worker"] == ["750 events/s", "—", "—"]  # no target: context
    assert rows["L_pipe, CPU per event"][-1] == NOT_RUN


def test_the_run_is_named_by_its_command_date_and_stages(sample: Path) -> None:
    block = render([read_results(sample)])

    assert ("1. 2026-12-01, 2 cores (a CPU), 8 GiB: `gridlink bench --stages "
            "fbase,pipeline,latency --events 2000 --latency-rate 58 --latency-seconds 30 "
            "--seed 7` — stages fbase, pipeline, latency") in block
    assert f"{NOT_RUN}: lpipe, pipeline2, sqlapart, apart, scale" in block
    assert "运行 run" not in block  # one run: no column saying which


def test_a_later_results_file_gives_the_stages_it_ran(sample: Path, tmp_path: Path) -> None:
    scale = tmp_path / "scale.json"
    scale.write_text(json.dumps(_results({"scale": {
        "open_cases": 1_000_000, "resident_bytes": 1536 * 2**20, "resident_bytes_per_case": 1300,
        "recovery_seconds_to_processing": None, "spread_lateness_ms": {"p99": 12.5},
        "window_deadlines_unfired": 0, "cards_recorded_twice": 1}}, open_cases=1_000_000)))

    rows = _rows(render([read_results(sample), read_results(scale)]))

    assert rows["worker's memory with the open cases, in all"] == [
        "1,536 MiB", "≤ 1,024 MiB", NOT_MET, "2"]
    assert rows["`kill -9` → processing again"] == ["—", "≤ 15.0 s", NOT_MET, "2"]  # never
    spread = "fire lateness of spread deadlines, p99 (those due while the burst is fired apart)"
    assert rows[spread] == ["12 ms", "≤ 50 ms", MET, "2"]
    assert rows["deadlines of the window never fired"][2:] == [MET, "2"]
    assert rows["deadlines carded twice"][2:] == [NOT_MET, "2"]
    assert rows["pipeline, one worker ÷ F_base"][-1] == "1"
    assert "--open-cases 1000000" in render([read_results(scale)])


def test_a_bound_in_either_direction() -> None:
    floor = Figure(label="f", stages=("pipeline",), path=("x",), format=".1f", at_least=0.5,
                   stretch=0.7)
    ceiling = Figure(label="c", stages=("pipeline",), path=("x",), format=".0f", unit="ms",
                     at_most=100)
    assert [floor.verdict(v) for v in (0.49, 0.5, 0.69, 0.7)] == [NOT_MET, MET, MET,
                                                                  STRETCH_MET]
    assert [ceiling.verdict(v) for v in (99, 100, 101)] == [MET, MET, NOT_MET]


def test_every_figure_of_the_targets_is_one_the_bench_writes() -> None:
    figures = load_figures()
    stages = {"lpipe", "fbase", "pipeline", "latency", "pipeline2", "sqlapart", "apart", "scale"}
    assert figures and all(set(f.stages) <= stages and f.path[0] == f.stages[0]
                           for f in figures)
    assert len({f.label for f in figures}) == len(figures)
    assert all(f.at_least is None or f.at_most is None for f in figures)


def test_the_block_between_the_markers_is_replaced_and_the_prose_kept() -> None:
    page = f"# Page\n\nprose before\n\n{BEGIN}\nold table\n{END}\n\nprose after\n"

    written = replace_block(page, "new table\n")

    assert written == f"# Page\n\nprose before\n\n{BEGIN}\nnew table\n{END}\n\nprose after\n"
    assert block_of(written) == "new table\n"
    with pytest.raises(ReportError, match="must hold one"):
        replace_block("# no markers\n", "table\n")
    with pytest.raises(ReportError, match="must hold one"):
        replace_block(f"{END}\n{BEGIN}\n", "table\n")


def test_the_command_writes_the_page_and_says_what_is_wrong(sample: Path,
                                                           tmp_path: Path) -> None:
    page = tmp_path / "benchmarks.md"
    page.write_text(f"prose\n\n{BEGIN}\n{END}\n\nmore prose\n", encoding="utf-8")
    runner = CliRunner()

    written = runner.invoke(gridlink, ["bench", "report", "--results", str(sample),
                                       "--write", str(page)])
    missing = runner.invoke(gridlink, ["bench", "report", "--results",
                                       str(tmp_path / "none.json")])

    assert written.exit_code == 0, written.output
    text = page.read_text(encoding="utf-8")
    assert text.startswith("prose\n\n") and text.endswith(f"{END}\n\nmore prose\n")
    assert "| pipeline, one worker ÷ F_base | 0.75 |" in text
    assert missing.exit_code == 1 and "no such results file" in missing.output


def test_the_bench_itself_still_runs_without_a_subcommand() -> None:
    result = CliRunner().invoke(gridlink, ["bench", "--stages", "nothing"])

    assert result.exit_code == 2 and "nothing: choose among lpipe" in result.output


def test_the_docs_table_is_the_one_the_command_renders(monkeypatch: pytest.MonkeyPatch
                                                       ) -> None:
    """docs/benchmarks.md's figures come from the results files beside it: a hand edit
    of the table, or a new run whose table was not rendered again, fails here."""
    monkeypatch.chdir(PROJECT_DIR)
    page = Path("docs/benchmarks.md").read_text(encoding="utf-8")

    expected = render([read_results(Path(name)) for name in DOC_RESULTS])

    assert block_of(page) == expected, (
        "render it again: gridlink bench report " +
        " ".join(f"--results {name}" for name in DOC_RESULTS) + " --write docs/benchmarks.md")
