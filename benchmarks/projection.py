"""Projection write rate: events/s the projector writes on SQLite and PostgreSQL, and
the CPU time of this process per event.

The events are realistic case logs made by driving the pure engine (the same
generator the store tests use): cases opened, dispatched, claimed, returned,
handled, closed, evaluated, with the SLA timers' yellow and red cards. Three
figures per engine, each on an empty database:

- ``live``   — the merged log in small batches, one transaction each (the agent);
- ``replay`` — the same log in large batches (``gridlink replay``);
- ``redelivered`` — the whole log again onto the full tables (all skipped).

Each figure comes as events/s (wall time) and µs of this process's CPU per event
(``time.process_time()``): on a shared machine the CPU time is the one that
compares between runs. The database server's own CPU (PostgreSQL) is not in it.

Usage, from the repository root::

    .venv/bin/python benchmarks/projection.py                      # SQLite only
    .venv/bin/python benchmarks/projection.py --postgres auto      # + a throwaway cluster
    .venv/bin/python benchmarks/projection.py --postgres postgresql://user@host/empty_db

``--postgres`` defaults to ``$GRIDLINK_BENCH_POSTGRES_URL``. A given database
must be empty (the benchmark writes the projection tables into it).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere

from sqlalchemy import Engine, delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from simulation.case_logs import batches, case_logs, merged_log
from store.db import create_engine, session_factory
from store.migrate import upgrade
from store.models import Case
from store.projector import project
from streams.cases import CaseEvent


class Rate(NamedTuple):
    events_per_second: float
    cpu_us_per_event: float  # this process only


def measure(
    url: str, log: Sequence[CaseEvent], *, live_batch: int, replay_batch: int
) -> dict[str, Rate]:
    """The rate of each mode, on the (empty) database at ``url``."""
    upgrade(url)
    engine = create_engine(url)
    sessions = session_factory(engine)
    try:
        with sessions() as session:
            if session.scalar(select(func.count()).select_from(Case)):
                raise SystemExit(f"{engine.url.render_as_string()}: the cases table is not empty")
        rates = {"live": _rate(sessions, log, live_batch)}
        rates["redelivered"] = _rate(sessions, log, replay_batch, expect=0)
        _empty(engine)
        rates["replay"] = _rate(sessions, log, replay_batch)
        _empty(engine)
        return rates
    finally:
        engine.dispose()


def _rate(sessions: sessionmaker[Session], log: Sequence[CaseEvent], size: int, *,
          expect: int | None = None) -> Rate:
    applied = 0
    started, cpu_started = time.perf_counter(), time.process_time()
    for part in batches(log, size):
        with sessions.begin() as session:
            applied += project(session, part)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    wanted = len(log) if expect is None else expect
    if applied != wanted:
        raise SystemExit(f"projected {applied} events, expected {wanted}")
    return Rate(len(log) / elapsed, cpu / len(log) * 1e6)


def _empty(engine: Engine) -> None:
    from store.models import AssignmentRow, CaseEventRow, DeadlineRow, EvaluationRow

    with engine.begin() as connection:
        for model in (EvaluationRow, CaseEventRow, DeadlineRow, AssignmentRow, Case):
            connection.execute(delete(model))


@contextmanager
def postgres_url(choice: str | None) -> Iterator[str | None]:
    """The PostgreSQL URL to measure: given, a throwaway cluster (``auto``), or none."""
    if not choice:
        yield None
        return
    if choice != "auto":
        yield choice
        return
    from tests.store.postgres import PostgresCluster

    cluster = PostgresCluster()
    cluster.start()
    try:
        yield cluster.create_database("gridlink_bench")
    finally:
        cluster.stop()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=2000, help="cases in the log (default 2000)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--live-batch", type=int, default=100, help="events per live batch (default 100)"
    )
    parser.add_argument(
        "--replay-batch", type=int, default=5000, help="events per replay batch (default 5000)"
    )
    parser.add_argument(
        "--postgres",
        default=os.environ.get("GRIDLINK_BENCH_POSTGRES_URL"),
        help="PostgreSQL URL of an empty database, or 'auto' for a throwaway cluster "
        "(default $GRIDLINK_BENCH_POSTGRES_URL; none: SQLite only)",
    )
    parser.add_argument("--sqlite", help="SQLite file (default: a temporary one)")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    log = merged_log(case_logs(args.cases, seed=args.seed))
    print(
        f"log: {len(log)} events of {args.cases} cases, made by the engine in "
        f"{time.perf_counter() - started:.1f} s"
    )
    live, replay = f"live ({args.live_batch})", f"replay ({args.replay_batch})"
    print(f"{'engine':<12}{live:>22}{replay:>22}{'redelivered':>22}")
    print(f"{'':<12}" + f"{'events/s, µs CPU':>22}" * 3)
    with tempfile.TemporaryDirectory() as scratch, postgres_url(args.postgres) as pg:
        targets = [("sqlite", f"sqlite:///{args.sqlite or Path(scratch) / 'bench.db'}")]
        if pg:
            targets.append(("postgresql", pg))
        for name, url in targets:
            rates = measure(url, log, live_batch=args.live_batch, replay_batch=args.replay_batch)
            cells = (f"{r.events_per_second:,.0f}, {r.cpu_us_per_event:,.0f}"
                     for r in (rates["live"], rates["replay"], rates["redelivered"]))
            print(f"{name:<12}" + "".join(f"{cell:>22}" for cell in cells))


if __name__ == "__main__":
    main()
