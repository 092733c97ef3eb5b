"""``gridlink bench report``: the figures of ``gridlink bench`` runs against their
targets, as the Markdown table docs/benchmarks.md shows.

The targets are data (``benchmarks/targets.toml``); the figures come from the
``bench-results.json`` the runs wrote, so the page's table is rendered, never typed:
``write`` puts it between two marker comments of the page and leaves the prose
around them as it is. Several results files may be given (a heavy stage such as
``scale`` is often run on a broker of its own): for each stage, the last file in
which it ran gives its figures.
"""

from __future__ import annotations

import json
import shlex
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TARGETS = Path(__file__).with_name("targets.toml")
BEGIN = "<!-- bench:begin -->"
END = "<!-- bench:end -->"
STAGES = ("lpipe", "fbase", "pipeline", "latency", "pipeline2", "sqlapart", "apart", "scale")
THROUGHPUT_STAGES = {"lpipe", "fbase", "pipeline", "latency", "pipeline2", "sqlapart", "apart"}

MET = "达标 met"
STRETCH_MET = "达标，含挑战目标 met, stretch too"
NOT_MET = "未达标 not met"
NOT_RUN = "未运行 not run"


class ReportError(ValueError):
    """A results file or a page the report cannot use; the message says which and why."""


@dataclass(frozen=True)
class Figure:
    """One row of the table: where the figure is in the results, and its target."""

    label: str
    stages: tuple[str, ...]
    path: tuple[str, ...]
    format: str
    unit: str = ""
    at_least: float | None = None
    at_most: float | None = None
    stretch: float | None = None
    scale: float = 1.0

    def target(self) -> str:
        if self.at_least is None and self.at_most is None:
            return "—"
        sign, bound = ("≥", self.at_least) if self.at_least is not None else ("≤", self.at_most)
        if bound == 0 and self.at_most is not None:
            sign = "="  # nothing at all: "≤ 0" of a count says it less plainly
        text = f"{sign} {self._number(bound)}"
        if self.stretch is not None:
            text += f" (挑战 stretch {self._number(self.stretch)})"
        return text

    def verdict(self, value: float | None) -> str:
        """Met, met with the stretch too, not met (a figure the run did not give
        counts as not met), or "—" for a figure without a target."""
        if self.at_least is None and self.at_most is None:
            return "—"
        if value is None:
            return NOT_MET

        def within(bound: float) -> bool:
            return value >= bound if self.at_least is not None else value <= bound

        bound = self.at_least if self.at_least is not None else self.at_most
        assert bound is not None
        if not within(bound):
            return NOT_MET
        return STRETCH_MET if self.stretch is not None and within(self.stretch) else MET

    def value_text(self, value: float | None) -> str:
        return "—" if value is None else self._number(value)

    def _number(self, number: float | None) -> str:
        assert number is not None
        spec = self.format
        if spec.endswith("d"):
            number = round(number)
        text = format(number, spec)
        return f"{text} {self.unit}" if self.unit else text


def load_figures(path: Path = TARGETS) -> list[Figure]:
    """The rows of the table, in the order of ``targets.toml``."""
    with path.open("rb") as file:
        rows = tomllib.load(file)["figure"]
    return [Figure(label=row["label"], stages=tuple(row["stages"]), path=tuple(row["path"]),
                   format=row["format"], unit=row.get("unit", ""),
                   at_least=row.get("at_least"), at_most=row.get("at_most"),
                   stretch=row.get("stretch"), scale=row.get("scale", 1.0))
            for row in rows]


@dataclass(frozen=True)
class Results:
    """One run of ``gridlink bench``, as its results file holds it."""

    name: str  # the file, as it was named to the report
    data: dict[str, Any]

    @property
    def figures(self) -> dict[str, Any]:
        figures: dict[str, Any] = self.data.get("figures", {})
        return figures

    @property
    def stages(self) -> list[str]:
        """The stages that ran, in the bench's order."""
        return [stage for stage in STAGES if stage in self.figures]

    def command(self) -> str:
        """The ``gridlink bench`` command of the run, from the options it recorded."""
        options = self.data.get("options", {})
        stages = options.get("stages") or self.stages
        words = ["gridlink", "bench", "--stages", ",".join(stages)]
        if set(stages) & THROUGHPUT_STAGES and "events" in options:
            words += ["--events", str(options["events"])]
        if "latency" in stages:
            if options.get("latency_rate") is not None:
                words += ["--latency-rate", _word(options["latency_rate"])]
            if "latency_seconds" in options:
                words += ["--latency-seconds", _word(options["latency_seconds"])]
        if "scale" in stages:
            for option in ("open_cases", "window_seconds"):
                if option in options:
                    words += [f"--{option.replace('_', '-')}", _word(options[option])]
        for option in ("seed", "table_store"):
            if options.get(option) is not None:
                words += [f"--{option.replace('_', '-')}", str(options[option])]
        return shlex.join(words)

    def machine(self) -> str:
        machine = self.data.get("machine", {})
        parts = []
        if machine.get("cpus"):
            cpu = f" ({machine['cpu']})" if machine.get("cpu") else ""
            parts.append(f"{machine['cpus']} cores{cpu}")
        if machine.get("memory_bytes"):
            parts.append(f"{machine['memory_bytes'] / 2**30:.0f} GiB")
        return ", ".join(parts) or "machine not recorded"


def _word(number: float) -> str:
    """A number as an option's value: 100000, 60, 2.5 (never 1e+06)."""
    return str(int(number)) if float(number).is_integer() else repr(number)


def read_results(path: Path) -> Results:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ReportError(f"{path}: no such results file (gridlink bench --out writes one)"
                          ) from None
    except json.JSONDecodeError as error:
        raise ReportError(f"{path}: not JSON ({error})") from None
    if not isinstance(data, dict) or not isinstance(data.get("figures"), dict):
        raise ReportError(f"{path}: not a gridlink bench results file (no \"figures\")")
    return Results(name=_shown(path), data=data)


def _shown(path: Path) -> str:
    """``path`` as the page names it: relative to the working directory when below it
    (the page must not name where the repository lies on one machine)."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve())) if path.is_absolute() \
            else str(path)
    except ValueError:
        return path.name


def _lookup(figures: dict[str, Any], path: Sequence[str]) -> float | None:
    value: Any = figures
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def render(runs: Sequence[Results], figures: Sequence[Figure] | None = None, *,
           page: str = "docs/benchmarks.md") -> str:
    """The block ``page`` holds between its markers (markers excluded): the runs, the
    stages none of them ran, and a row for each figure."""
    figures = load_figures() if figures is None else figures
    if not runs:
        raise ReportError("no results to report")
    source: dict[str, int] = {}  # stage → the run (index) whose figures it shows
    for index, run in enumerate(runs):
        for stage in run.stages:
            source[stage] = index
    several = len(runs) > 1
    head = ["指标 figure", "最新 latest", "目标 target", "达标 met"]
    head += ["运行 run"] if several else []
    lines = [*_runs(runs, source, page=page),
             "| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for figure in figures:
        cells = _row(figure, runs, source)
        lines.append("| " + " | ".join(cells if several else cells[:-1]) + " |")
    return "\n".join(lines) + "\n"


def _runs(runs: Sequence[Results], source: dict[str, int], *, page: str) -> list[str]:
    """How the block was made, each run (date, machine, command, the stages it shows),
    and the stages none ran."""
    again = shlex.join(["gridlink", "bench", "report",
                        *(word for run in runs for word in ("--results", run.name))])
    lines = [f"由 `{again} --write {page}` 从以下运行的结果生成，请勿手改。"
             "Written from the results of these runs by that command; do not edit by hand.",
             ""]
    for index, run in enumerate(runs, start=1):
        started = str(run.data.get("started_at", "date not recorded"))[:10]
        shown = [stage for stage in STAGES if source.get(stage) == index - 1]
        lines.append(f"{index}. {started}, {run.machine()}: `{run.command()}` — stages "
                     f"{', '.join(shown) or 'none shown'}")
        if run.data.get("note"):
            lines.append(f"   ({run.data['note']})")
    missing = [stage for stage in STAGES if stage not in source]
    return [*lines, "", f"{NOT_RUN}: {', '.join(missing) or '—'}", ""]


def _row(figure: Figure, runs: Sequence[Results], source: dict[str, int]) -> list[str]:
    """The figure's cells: label, value, target, verdict, and the run it comes from."""
    if any(stage not in source for stage in figure.stages):
        return [figure.label, "—", figure.target(), NOT_RUN, "—"]
    index = source[figure.stages[0]]
    raw = _lookup(runs[index].figures, figure.path)
    value = None if raw is None else raw * figure.scale
    return [figure.label, figure.value_text(value), figure.target(), figure.verdict(value),
            str(index + 1)]


def replace_block(page: str, block: str, *, name: str = "the page") -> str:
    """``page`` with what stands between its markers replaced by ``block``."""
    if page.count(BEGIN) != 1 or page.count(END) != 1 or page.index(BEGIN) > page.index(END):
        raise ReportError(f"{name} must hold one {BEGIN} followed by one {END}")
    before, rest = page.split(BEGIN)
    _, after = rest.split(END)
    return f"{before}{BEGIN}\n{block}{END}{after}"


def block_of(page: str, *, name: str = "the page") -> str:
    """What stands between the page's markers (the markers' own lines excluded)."""
    replace_block(page, "", name=name)  # checks the markers
    return page.split(BEGIN)[1].split(END)[0].removeprefix("\n")


def main(*, results: Sequence[Path], write: Path | None) -> str:
    """Render the table from ``results``; write it into ``write`` if given. Returns it."""
    runs = [read_results(path) for path in results]
    block = render(runs) if write is None else render(runs, page=_shown(write))
    if write is not None:
        try:
            page = write.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ReportError(f"{write}: no such page") from None
        write.write_text(replace_block(page, block, name=str(write)), encoding="utf-8")
    return block
