"""The gauges read from the SQL projection: what ``/metrics`` shows of the whole city.

Open cases by status, priority, lead department and level, and the statistics'
rates (docs/domain.md §7: 办结率, 按期办结率, 超期率, 满意率 …) over a rolling window, per
lead department and for every case. They are read here, once for the whole
city, rather than in the workers, each of which holds only its own partitions;
the rates with the statistics' own queries (:mod:`store.statistics`).
:func:`read_snapshot` answers one :class:`observability.metrics.StoreSnapshot`,
which the API publishes in the background.
"""

from __future__ import annotations

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


__all__ = ["ALL", "NO_DEPARTMENT", "WINDOW", "open_cases", "rates", "read_snapshot"]
