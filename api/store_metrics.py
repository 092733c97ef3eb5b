"""The API's share of the metrics: gauges read from the SQL projection.

Open cases by status, priority, lead department and level, and the statistics'
rates (docs/domain.md §7: 办结率, 按期办结率, 超期率, 满意率 …) over a rolling window, per
lead department and for every case. They are computed here, once for the whole
city, rather than in the workers, each of which holds only its own partitions.
A background task reads them every :data:`REFRESH_SECONDS` with the statistics'
own queries (:mod:`store.statistics`) and publishes one snapshot
(:func:`observability.metrics.publish_store_snapshot`); a scrape of ``/metrics``
only reads that snapshot, never the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from clock import wall_clock
from observability import metrics
from store.models import Case
from store.queries import BOARD_CLOSED
from store.service import Store
from store.statistics import GroupBy, StatsFilter, statistics
from streams.records import Level, Priority

log = logging.getLogger(__name__)

REFRESH_SECONDS = 10.0
WINDOW = timedelta(days=30)  # the rates count the cases of the last 30 days
ALL = "all"  # the department label of the city-wide rates
NO_DEPARTMENT = "none"  # cases without a lead department (not dispatched)


def _level(value: int) -> str:
    try:
        return Level(value).name.lower()
    except ValueError:
        return str(value)


def _priority(value: int) -> str:
    try:
        return Priority(value).label
    except ValueError:
        return str(value)


def open_cases(session: Session) -> dict[tuple[str, str, str, str], int]:
    """(status, priority, lead department, level) → cases the live board calls open."""
    query = (select(Case.status, Case.priority, Case.lead_department, Case.level, func.count())
             .where(Case.status.not_in(BOARD_CLOSED))
             .group_by(Case.status, Case.priority, Case.lead_department, Case.level))
    out: dict[tuple[str, str, str, str], int] = {}
    for status, priority, department, level, count in session.execute(query):
        key = (str(status), _priority(priority), department or NO_DEPARTMENT, _level(level))
        out[key] = out.get(key, 0) + int(count)
    return out


def rates(session: Session, since: datetime, until: datetime) -> dict[str, dict[str, float]]:
    """Rate name → lead department (or ``all``) → ratio, over [``since``, ``until``) (a
    deadline after ``until`` is not due yet); rates without a denominator are left out."""
    period = StatsFilter(start=since, end=until)
    out: dict[str, dict[str, float]] = {name: {} for name in metrics.STATS_RATES}
    for group_by in (GroupBy.NONE, GroupBy.DEPARTMENT):
        for group in statistics(session, group_by=group_by, f=period, times=False).groups:
            department = ALL if group_by is GroupBy.NONE else group.group or NO_DEPARTMENT
            for name in metrics.STATS_RATES:
                value = getattr(group, f"{name}_rate")
                if value is not None:
                    out[name][department] = value
    return out


def read_snapshot(store: Store, now: datetime | None = None) -> metrics.StoreSnapshot:
    now = now or wall_clock()
    with store.sessions() as session:
        return metrics.StoreSnapshot(at=now.timestamp(), open_cases=open_cases(session),
                                     rates=rates(session, now - WINDOW, now),
                                     window_seconds=WINDOW.total_seconds())


class StoreGauges:
    """Refreshes the snapshot in the background while the API runs."""

    def __init__(self, store: Store, *, interval: float = REFRESH_SECONDS) -> None:
        self.store = store
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="store metrics")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        metrics.publish_store_snapshot(None)

    async def _run(self) -> None:
        while True:
            try:
                snapshot = await asyncio.to_thread(read_snapshot, self.store)
                metrics.publish_store_snapshot(snapshot)
            except Exception:  # a busy or migrating database: keep the last snapshot
                log.warning("open cases and rates not read from the store", exc_info=True)
            await asyncio.sleep(self.interval)
