"""Statistics (统计考核): the metrics a command center is judged by (docs/domain.md §7), per
lead department, per jurisdiction or overall, within the caller's scope.

An operator (or a display) counts only cases within its jurisdiction, a
department user only the cases its department leads (and its own assignments'
durations), within its jurisdiction if it has one; an administrator everything.
The definitions are in the response schema.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from api.auth import CurrentUser, Role, User, require_department, require_region
from api.deps import Db
from api.errors import InvalidRequest, problem_responses
from api.schemas import Statistics
from store.statistics import GroupBy, StatsFilter, statistics
from streams.jurisdiction import level_of
from streams.zone import TZ

router = APIRouter(tags=["statistics"])

STATISTICS_EXAMPLE = {
    "group_by": "department", "region": "371502", "department": None,
    "from": "2026-11-01T00:00:00+08:00", "to": "2026-12-01T00:00:00+08:00",
    "groups": [{
        "group": "chengguan", "name": "城管/综合执法", "due": 40, "due_closed": 37,
        "due_overdue": 2, "closed": 38, "closed_on_time": 36, "closed_self_resolved": 5,
        "disputes_finished": 0, "disputes_mediated": 0, "callbacks_reached": 30,
        "callbacks_satisfied": 29, "dispatched": 42, "returned": 2, "second_returned": 0,
        "supervised": 1, "checked": 38, "reworked": 1, "handling_rate": 0.925,
        "on_time_rate": 0.947, "overdue_rate": 0.05, "satisfaction_rate": 0.967,
        "mediation_success_rate": None, "self_resolved_rate": 0.132, "return_rate": 0.048,
        "second_return_rate": 0.0, "rework_rate": 0.026, "supervision_rate": 0.024,
        "time_to_accept": {"count": 42, "p50_seconds": 1320.0, "p90_seconds": 6900.0},
        "time_to_resolve": {"count": 38, "p50_seconds": 86400.0, "p90_seconds": 259200.0},
    }],
}


def _aware(moment: datetime | None) -> datetime | None:
    """A time without an offset is Beijing time (北京时间)."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=TZ)


def _region(user: User, region: str | None) -> str | None:
    if region is not None:
        try:
            level_of(region)
        except ValueError as error:
            raise InvalidRequest(str(error), field="region") from None
        require_region(user, region, "the statistics' region")
        return region
    return user.region  # the caller's jurisdiction, if it has one


def _department(user: User, department: str | None) -> str | None:
    if user.role is Role.DEPARTMENT:
        if department is not None:
            require_department(user, department, "these statistics")
        return user.department
    return department


@router.get("/statistics", response_model=Statistics, response_model_by_alias=True,
            responses={200: {"content": {"application/json": {"example": STATISTICS_EXAMPLE}}},
                       **problem_responses(401, 403, 422)})
def get_statistics(
    user: CurrentUser, db: Db,
    group_by: Annotated[GroupBy, Query(description="one row per lead department, per "
                                       "jurisdiction one level below `region`, or one row")
                        ] = GroupBy.NONE,
    region: Annotated[str | None, Query(max_length=15, examples=["371502"],
                                        description="a jurisdiction code, city down to grid "
                                        "(default: the operator's own)")] = None,
    department: Annotated[str | None, Query(max_length=32, examples=["chengguan"],
                                            description="only cases this department leads")
                          ] = None,
    period_from: Annotated[datetime | None, Query(alias="from", description="start of the "
                                                  "period (inclusive); no offset = +08:00")
                           ] = None,
    period_to: Annotated[datetime | None, Query(alias="to", description="end of the period "
                                                "(exclusive); no offset = +08:00")] = None,
) -> Statistics:
    """办结率, 按期办结率, 超期率, 满意率, 调处成功率, 自办率, 退单率, 返工率, 督办率 and the
    times to accept and to resolve (p50/p90), computed from the case store."""
    f = scoped_filter(user, region=region, department=department, start=period_from,
                      end=period_to)
    return Statistics.model_validate(statistics(db, group_by=group_by, f=f),
                                     from_attributes=True)


def scoped_filter(user: User, *, region: str | None, department: str | None,
                  start: datetime | None, end: datetime | None) -> StatsFilter:
    """Which cases ``user`` may count: the region and department asked for, within its
    scope (403 outside it), over [``start``, ``end``)."""
    start, end = _aware(start), _aware(end)
    if start is not None and end is not None and end <= start:
        raise InvalidRequest("`to` must be after `from`", field="to")
    return StatsFilter(region=_region(user, region), department=_department(user, department),
                       start=start, end=end)
