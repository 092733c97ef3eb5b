"""``gridlink bench``: every figure of the benchmark from one run on one broker.

Stages, in order (``--stages`` picks some):

- ``lpipe``    raw aiokafka consume → decode → classify → encode → produce;
- ``fbase``    a bare Faust agent that decodes and forwards;
- ``pipeline`` GridLink, one worker: ingest → triage → case → department → SQL;
- ``latency``  ingest → department queue at half the pipeline's rate, and also at
               ``--latency-rate`` if given (P1 apart);
- ``pipeline2`` two workers over twice the partitions;
- ``sqlapart`` one worker as ``pipeline``, but the SQL projection in a process of
               its own (``gridlink worker --agents projection``);
- ``apart``    one worker for triage and cases alone, with intake and the SQL projection
               each in a process of its own;
- ``scale``    timers, memory per open case and recovery with many open cases.

Figures are printed as they come and written to ``--out`` as JSON.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks import pipeline, scale
from benchmarks.harness import Run, corpus
from settings import Settings
from topics.local_kafka import LocalKafka, free_ports

STAGES = ("lpipe", "fbase", "pipeline", "latency", "pipeline2", "sqlapart", "apart", "scale")
#: the shapes measured beside ``pipeline``: the stages that run in processes of their own
APART = {"sqlapart": ("projection",), "apart": ("intake", "projection")}


def machine() -> dict[str, Any]:
    memory = next((int(line.split()[1]) * 1024 for line in
                   Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal:")), None)
    model = next((line.split(":", 1)[1].strip() for line in
                  Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    return {"cpus": os.cpu_count(), "cpu": model, "memory_bytes": memory,
            "python": platform.python_version(), "system": platform.platform()}


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def where_time_went(figures: dict[str, Any]) -> str:
    """A pipeline stage's hops, when each was done, and the CPU used meanwhile."""
    done = " · ".join(f"{hop} {at:.1f} s" for hop, at in figures["hops_done_seconds"].items())
    broker = figures["broker_cores"]
    cpu = f"workers {figures['worker_cores']:.2f} cores" + (
        "" if broker is None else f", broker {broker:.2f}")
    per_event = " · ".join(f"{label} {ms:.2f}" for label, ms in
                           figures["cpu_ms_per_event"].items())
    return (f"           done at: {done}; {cpu}\n"
            f"           CPU ms per inbound event: {per_event}")


def keep_logs(workdir: Path, into: Path) -> Path | None:
    """Copy the workers' logs of a run (``<stage>/<worker>.log``) out of its work
    directory, which is deleted; returns where they went, or None if there were none."""
    logs = sorted(workdir.glob("*/*.log"))
    if not logs:
        return None
    for log in logs:
        target = into / log.parent.name / log.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(log, target)
    return into


def ratio(a: dict[str, Any] | None, b: dict[str, Any] | None) -> float | None:
    if not a or not b:
        return None
    return round(a["events_per_second"] / b["events_per_second"], 3)


def against(shape: dict[str, Any], figures: dict[str, Any], *,
            one_worker: bool = True) -> dict[str, Any]:
    """A pipeline stage's figures with its ratios to one worker's (unless it is that
    worker), L_pipe's and F_base's, of the stages that ran before it."""
    mine = {"vs_one_worker": ratio(shape, figures.get("pipeline"))} if one_worker else {}
    return {**shape, **mine, "vs_lpipe": ratio(shape, figures.get("lpipe")),
            "vs_fbase": ratio(shape, figures.get("fbase"))}


def per_core(a: dict[str, Any] | None, b: dict[str, Any] | None) -> float | None:
    """Events/s per core the workers used, of ``a`` over ``b``: how well the work spreads
    (on a machine with fewer free cores than workers, throughput alone cannot tell)."""
    if not a or not b or not a["worker_cores"] or not b["worker_cores"]:
        return None
    return round((a["events_per_second"] / a["worker_cores"])
                 / (b["events_per_second"] / b["worker_cores"]), 3)


async def _stages(run: Run, chosen: list[str], *, events: int, latency_seconds: float,
                  latency_rate: float | None,
                  open_cases: int, window_seconds: float, results: dict[str, Any]) -> None:
    say(f"corpus: {events:,} inbound messages (seed {run.seed}) …")
    # the rest after the first ``events`` feeds the latency stage: one run at half the
    # pipeline's rate, one more at ``latency_rate`` if given, and one at half the rate of
    # each shape of ``APART`` that runs
    latency_runs = 2 if "latency" in chosen and latency_rate else 1
    apart_latency = ("latency" in chosen) * len(set(APART) & set(chosen))  # those shapes' too
    messages = corpus(events * (1 + latency_runs + apart_latency), seed=run.seed)
    load = messages[:events]
    later = messages[events:events * (1 + latency_runs)]
    apart_later = messages[events * (1 + latency_runs):]
    figures = results["figures"]

    if "lpipe" in chosen:
        figures["lpipe"] = await pipeline.lpipe(run, load)
        say(f"L_pipe     {figures['lpipe']['events_per_second']:>9,.0f} events/s, "
            f"{figures['lpipe']['cpu_ms_per_event']['lpipe']:.2f} ms CPU per event")
    if "fbase" in chosen:
        figures["fbase"] = await pipeline.fbase(run, load)
        say(f"F_base     {figures['fbase']['events_per_second']:>9,.0f} events/s, "
            f"{figures['fbase']['cpu_ms_per_event']['fbase']:.2f} ms CPU per event")
    if "pipeline" in chosen or "latency" in chosen:
        one, stage = await pipeline.pipeline(run, load)
        figures["pipeline"] = against(one, figures, one_worker=False)
        say(f"pipeline   {one['events_per_second']:>9,.0f} events/s, one worker "
            f"(× L_pipe {figures['pipeline']['vs_lpipe']}, × F_base "
            f"{figures['pipeline']['vs_fbase']})")
        say(where_time_went(one))
        if "latency" in chosen:
            half = one["events_per_second"] / 2
            measured: dict[str, Any] = {}
            runs = [("half_rate", half)] + ([("fixed", latency_rate)] if latency_rate else [])
            share = len(later) // len(runs)  # each run its own messages
            for key, rate in runs:
                count = min(share, max(50, int(rate * latency_seconds)))
                measured[key] = lat = await pipeline.latency(run, stage, later[:count],
                                                             rate=rate)
                later = later[count:]
                say(latency_line("latency", rate, lat))
            # the fixed rate's figures (half the rate's if none was asked), and the half's
            figures["latency"] = {**measured.get("fixed", measured["half_rate"]),
                                  "half_rate": measured["half_rate"]}
        run.stop_all()
    if "pipeline2" in chosen:
        two, _ = await pipeline.pipeline(run, load, workers=2, partitions=8, name="pipeline2")
        run.stop_all()
        figures["pipeline2"] = {**against(two, figures),
                                "per_core_vs_one_worker": per_core(two, figures.get("pipeline"))}
        say(f"pipeline2  {two['events_per_second']:>9,.0f} events/s, two workers "
            f"(× one worker {figures['pipeline2']['vs_one_worker']}, per worker-core × one "
            f"worker's {figures['pipeline2']['per_core_vs_one_worker']}, × L_pipe "
            f"{figures['pipeline2']['vs_lpipe']}, × F_base {figures['pipeline2']['vs_fbase']})")
        say(where_time_went(two))
    for name, apart in APART.items():
        if name not in chosen:
            continue
        shape, shape_stage = await pipeline.pipeline(run, load, apart=apart, name=name)
        figures[name] = against(shape, figures)
        say(f"{name:<10} {shape['events_per_second']:>9,.0f} events/s, one worker and "
            f"{' and '.join(apart)} apart (× one worker {figures[name]['vs_one_worker']}, "
            f"× F_base {figures[name]['vs_fbase']})")
        say(where_time_went(shape))
        if "latency" in chosen:
            rate = shape["events_per_second"] / 2
            count = min(events, len(apart_later), max(50, int(rate * latency_seconds)))
            lat = figures[name]["half_rate"] = await pipeline.latency(
                run, shape_stage, apart_later[:count], rate=rate)
            apart_later = apart_later[count:]
            say(latency_line("", rate, lat))
        run.stop_all()
    if "scale" in chosen:
        rate = figures.get("pipeline", {}).get("events_per_second", 200.0) / 2
        figures["scale"] = await scale.scale(run, open_cases=open_cases, rate=rate, say=say,
                                             window=window_seconds)


def latency_line(label: str, rate: float, lat: dict[str, Any]) -> str:
    """One latency run's figures, as the bench prints them."""
    ms, p1 = lat["latency_ms"], lat["p1_latency_ms"]
    return (f"{label:<11}at {rate:,.0f}/s: p50 {ms.get('p50', 0):.0f} ms, p99 "
            f"{ms.get('p99', 0):.0f} ms, p99.9 {ms.get('p99.9', 0):.0f} ms; P1 p99 "
            f"{p1.get('p99', 0):.0f} ms ({lat['p1_assignments']} P1)")


def main(*, stages: list[str], events: int, latency_seconds: float, open_cases: int,
         latency_rate: float | None = None,
         window_seconds: float, out: Path, bootstrap: str | None, seed: int,
         table_store: str | None = None) -> dict[str, Any]:
    table_store = table_store or Settings().table_store
    results: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "options": {"stages": stages, "events": events, "latency_seconds": latency_seconds,
                    "latency_rate": latency_rate,
                    "open_cases": open_cases, "window_seconds": window_seconds, "seed": seed,
                    "table_store": table_store},
        "figures": {},
    }
    with tempfile.TemporaryDirectory(prefix="gridlink-bench-") as tmp:
        broker = None
        if bootstrap is None:
            defaults = Settings()
            port, controller_port = free_ports(2)
            broker = LocalKafka(data_dir=Path(tmp) / "kafka", cache_dir=defaults.kafka_cache_dir,
                                port=port, controller_port=controller_port,
                                heap=defaults.local_kafka_heap())
            started = time.monotonic()
            broker.up(timeout_seconds=180, echo=say)
            results["broker_start_seconds"] = round(time.monotonic() - started, 1)
            bootstrap = broker.bootstrap
        run = Run(bootstrap=bootstrap, workdir=Path(tmp) / "work", seed=seed,
                  table_store=table_store, broker_pid=broker.pid() if broker else None,
                  own_broker=broker is not None)
        try:
            asyncio.run(_stages(run, stages, events=events, latency_seconds=latency_seconds,
                                latency_rate=latency_rate,
                                open_cases=open_cases, window_seconds=window_seconds,
                                results=results))
        except BaseException:
            run.stop_all()
            kept = keep_logs(run.workdir, out.with_suffix(".logs"))
            if kept:
                say(f"the run failed; its workers' logs are in {kept}")
            raise
        finally:
            run.stop_all()
            if broker is not None:
                broker.down(echo=lambda *_: None)
    results["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    out.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    say(f"written to {out}")
    return results
