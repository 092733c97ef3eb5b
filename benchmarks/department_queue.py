"""Department-queue listing latency with many cases in the store.

Fills an empty database with realistic cases — a few thousand case logs made
by driving the pure engine and projected by the real projector, then copied
in SQL under new case ids until the store holds ``--cases`` cases — and times
the query behind ``GET /departments/{code}/queue`` (first page of 50, the
busiest department; unfiltered, overdue only, and one status) p50/p99.

    .venv/bin/python benchmarks/department_queue.py                       # SQLite, 100,000 cases
    .venv/bin/python benchmarks/department_queue.py --postgres auto       # + a throwaway PostgreSQL
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NotRequired, TypedDict

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere

from sqlalchemy import Connection, func, select, text

from benchmarks.projection import postgres_url
from simulation.case_logs import case_logs, merged_log
from store.db import create_engine, session_factory
from store.filters import Scope
from store.migrate import upgrade
from store.models import AssignmentRow, Case
from store.projector import project
from store.queries import department_queue

COPIED = {  # table → its case_id column is rewritten, everything else copied
    "cases": "case_id",
    "assignments": "case_id",
}


def fill(url: str, *, cases: int, distinct: int) -> tuple[float, int]:
    """Project ``distinct`` engine-made cases, then copy them up to ``cases``."""
    upgrade(url)
    engine = create_engine(url)
    sessions = session_factory(engine)
    started = time.perf_counter()
    with sessions.begin() as session:
        project(session, merged_log(case_logs(distinct)))
    copies = max(0, -(-cases // distinct) - 1)
    with engine.begin() as connection:
        for table in COPIED:
            columns = [c[1] if url.startswith("sqlite") else c[0] for c in _columns(connection,
                                                                                    table, url)]
            listed = ", ".join(columns)
            chosen = ", ".join(
                "case_id || '~copy{n}'" if c == "case_id" else c for c in columns)
            for n in range(1, copies + 1):
                connection.execute(text(
                    f"INSERT INTO {table} ({listed}) SELECT {chosen.format(n=n)} FROM {table} "
                    f"WHERE case_id NOT LIKE '%~copy%'"))
        if not url.startswith("sqlite"):
            connection.execute(text("ANALYZE"))
    with sessions() as session:
        total = session.scalar(select(func.count()).select_from(Case)) or 0
    engine.dispose()
    return time.perf_counter() - started, total


def _columns(connection: Connection, table: str, url: str) -> list[Any]:
    if url.startswith("sqlite"):
        return list(connection.execute(text(f"PRAGMA table_info({table})")))
    return list(connection.execute(text(
        "SELECT column_name FROM information_schema.columns WHERE table_name = :t "
        "ORDER BY ordinal_position"), {"t": table}))


class QueueFilters(TypedDict):
    """One variant's keyword arguments to ``department_queue``."""

    scope: Scope
    statuses: NotRequired[Sequence[str]]
    overdue: NotRequired[bool]


def measure(url: str, *, runs: int) -> dict[str, tuple[float, float]]:
    engine = create_engine(url)
    sessions = session_factory(engine)
    now = datetime.now(UTC)
    with sessions() as session:
        busiest = session.execute(
            select(AssignmentRow.department, func.count()).group_by(AssignmentRow.department)
            .order_by(func.count().desc()).limit(1)).one()[0]
        county = session.scalar(
            select(func.substr(Case.region_code, 1, 6)).join(
                AssignmentRow, AssignmentRow.case_id == Case.case_id)
            .where(AssignmentRow.department == busiest).limit(1))
    variants: dict[str, QueueFilters] = {
        "queue, first page": {"scope": Scope()},
        "queue, overdue only": {"scope": Scope(), "overdue": True},
        "queue, status accepted": {"scope": Scope(), "statuses": ["accepted"]},
        f"queue, as an operator of {county}": {"scope": Scope(region=county)},
    }
    out: dict[str, tuple[float, float]] = {}
    for name, filters in variants.items():  # the busiest department's first page of 50
        times = []
        for _ in range(runs):
            with sessions() as session:
                t = time.perf_counter()
                department_queue(session, department=busiest, now=now, limit=50, offset=0,
                                 **filters)
                times.append((time.perf_counter() - t) * 1000)
        times.sort()
        out[f"{name} ({busiest})"] = (statistics.median(times),
                                      times[min(len(times) - 1, int(len(times) * 0.99))])
    engine.dispose()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--distinct", type=int, default=2_000,
                        help="cases made by the engine; the rest are copies")
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--postgres", default=None, help="a URL of an empty database, or auto")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, postgres_url(args.postgres) as pg:
        urls = {"sqlite": f"sqlite:///{Path(tmp) / 'queue.db'}"}
        if pg:
            urls["postgresql"] = pg
        for engine_name, url in urls.items():
            seconds, total = fill(url, cases=args.cases, distinct=args.distinct)
            print(f"{engine_name}: {total:,} cases in the store ({args.distinct:,} made by the "
                  f"engine, the rest copied), filled in {seconds:.0f} s")
            for name, (p50, p99) in measure(url, runs=args.runs).items():
                print(f"  {name:48} p50 {p50:7.2f} ms   p99 {p99:7.2f} ms")


if __name__ == "__main__":
    main()
