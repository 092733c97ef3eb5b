"""Reports (统计报表): the command center's metrics per department and region with
charts over time, and the daily, weekly and monthly report (日报/周报/月报) as a
printable page and as XLSX and CSV downloads.

Every figure comes from the statistics' own queries (:mod:`store.statistics`, the
definitions of ``GET /statistics``), within the visitor's scope
(:func:`api.statistics.scoped_filter`): a chart is one such count per day or week.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from api.auth import User
from api.console.pages import Visitor, render
from api.console.svg import Series, line_chart
from api.console.xlsx import Cell, workbook
from api.deps import Db, scope_of, triage_reference
from api.errors import InvalidRequest
from api.statistics import scoped_filter
from clock import wall_clock
from store import queries, reads
from store.db import Session
from store.records import CaseSummary, Durations, Statistics, StatisticsGroup
from store.statistics import GroupBy, StatsFilter, opened_breakdown, statistics
from streams.cases import CaseStatus
from streams.zone import TZ

router = APIRouter(include_in_schema=False)
RATES = (("handling_rate", "办结率 handling", "#1f5fa8"),
         ("on_time_rate", "按期办结率 on time", "#2d8a57"),
         ("overdue_rate", "超期率 overdue", "#d62828"),
         ("satisfaction_rate", "满意率 satisfaction", "#f48c06"),
         ("return_rate", "退单率 returns", "#7b2cbf"))
TIMES = (("time_to_accept", "签收用时 p50 time to accept", "#1f5fa8"),
         ("time_to_resolve", "办结用时 p50 time to resolve", "#d62828"))
OPEN = [s for s in CaseStatus if s not in (CaseStatus.CLOSED, CaseStatus.EVALUATED,
                                           CaseStatus.REJECTED, CaseStatus.MERGED)]
Kind = Literal["daily", "weekly", "monthly"]
KIND_NAMES = {"daily": "日报 daily report", "weekly": "周报 weekly report",
              "monthly": "月报 monthly report"}
Text = Annotated[str | None, Query(max_length=32)]


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=TZ)


def _rows_scope(user: User, region: str | None, department: str | None, start: datetime,
                end: datetime) -> StatsFilter:
    return scoped_filter(user, region=region or None, department=department or None,
                         start=start, end=end)


# -- the statistics page with charts --------------------------------------------------------


def buckets(end_day: date, days: int, bucket: str) -> list[tuple[str, datetime, datetime]]:
    """(label, start, end) of each day or week of the ``days`` up to ``end_day``."""
    step = 7 if bucket == "week" else 1
    day = end_day - timedelta(days=days - 1)
    out = []
    while day <= end_day:
        last = min(day + timedelta(days=step), end_day + timedelta(days=1))
        out.append((f"{day:%m-%d}", _midnight(day), _midnight(last)))
        day = last
    return out


def series_over_time(db: Session, f: StatsFilter, spans: list[tuple[str, datetime, datetime]]
                     ) -> list[StatisticsGroup]:
    """One ungrouped row of the statistics per span."""
    return [statistics(db, group_by=GroupBy.NONE, f=replace(f, start=start, end=end)).groups[0]
            for _, start, end in spans]


def _p50_seconds(group: StatisticsGroup, name: str) -> float | None:
    durations: Durations = getattr(group, name)
    return durations.p50_seconds


def time_unit(values: list[float | None]) -> tuple[float, str]:
    """Seconds per unit and its name: hours, or minutes when every value is under two
    hours (a short period's times would all read 0.0 h)."""
    known = [v for v in values if v is not None]
    return (60.0, "分钟 min") if known and max(known) < 7200 else (3600.0, "小时 h")


@router.get("/console/reports")
def reports_page(request: Request, visit: Visitor, db: Db,
                 group_by: Annotated[Literal["department", "region"], Query()] = "department",
                 region: Text = None, department: Text = None,
                 days: Annotated[int, Query(ge=1, le=92)] = 14,
                 bucket: Annotated[Literal["day", "week"], Query()] = "day") -> Response:
    today = wall_clock().astimezone(TZ).date()
    spans = buckets(today, days, bucket)
    f = _rows_scope(visit.user, region, department, spans[0][1], spans[-1][2])
    table = statistics(db, group_by=GroupBy(group_by), f=f)
    over_time = series_over_time(db, f, spans)
    labels = [label for label, _, _ in spans]
    rates_svg = line_chart(labels, [Series(name, color, [getattr(g, key) for g in over_time])
                                    for key, name, color in RATES], percent=True)
    seconds = {key: [_p50_seconds(g, key) for g in over_time] for key, _, _ in TIMES}
    per, unit = time_unit([v for values in seconds.values() for v in values])
    times_svg = line_chart(labels, [Series(f"{name} ({unit})", color,
                                           [None if v is None else v / per for v in seconds[key]])
                                    for key, name, color in TIMES], percent=False)
    return render(request, "reports.html", visit, table=table, rates_svg=rates_svg,
                  times_svg=times_svg, rates=RATES, times=TIMES, time_unit=unit,
                  filters={"group_by": group_by, "region": region or "",
                           "department": department or "", "days": days, "bucket": bucket},
                  departments=reads.departments(db), today=today.isoformat())


# -- the period report (日报/周报/月报) -----------------------------------------------------------


def period_bounds(kind: str, day: date) -> tuple[datetime, datetime, str]:
    """[start, end) and a title of the day, the week (Monday on) or the month of ``day``."""
    if kind == "daily":
        return _midnight(day), _midnight(day + timedelta(days=1)), f"{day:%Y-%m-%d}"
    if kind == "weekly":
        monday = day - timedelta(days=day.weekday())
        sunday = monday + timedelta(days=6)
        return (_midnight(monday), _midnight(monday + timedelta(days=7)),
                f"{monday:%Y-%m-%d} – {sunday:%Y-%m-%d}")
    first = day.replace(day=1)
    following = (first + timedelta(days=32)).replace(day=1)
    return _midnight(first), _midnight(following), f"{first:%Y-%m}"


@dataclass(frozen=True)
class PeriodReport:
    kind: str
    title: str
    start: datetime
    end: datetime
    region: str | None
    department: str | None
    summary: StatisticsGroup
    by_department: Statistics
    by_region: Statistics
    opened: dict[str, dict[str, int]]
    overdue_open: list[CaseSummary]
    families: dict[str, str]


def period_report(request: Request, db: Session, user: User, *, kind: str, day: date,
                  region: str | None, department: str | None) -> PeriodReport:
    start, end, title = period_bounds(kind, day)
    f = _rows_scope(user, region, department, start, end)
    late = queries.search_cases(db, scope=scope_of(user), region=f.region,
                                department=f.department, statuses=[str(s) for s in OPEN],
                                overdue=True, now=min(end, wall_clock()), limit=50, offset=0)
    rules, _ = triage_reference(request)
    return PeriodReport(
        kind=kind, title=title, start=start, end=end, region=f.region, department=f.department,
        summary=statistics(db, group_by=GroupBy.NONE, f=f).groups[0],
        by_department=statistics(db, group_by=GroupBy.DEPARTMENT, f=f),
        by_region=statistics(db, group_by=GroupBy.REGION, f=f),
        opened=opened_breakdown(db, f),
        overdue_open=list(late.items), families=dict(rules.families))


STAT_COLUMNS = ("分组 group", "名称 name", "应办结 due", "已办结 closed", "办结率 handling",
                "按期办结率 on time", "超期率 overdue", "满意率 satisfaction", "退单率 returns",
                "签收用时中位 (h) accept p50", "办结用时中位 (h) resolve p50")


def _rate(value: float | None) -> Cell:
    return None if value is None else round(value, 4)


def stat_row(g: StatisticsGroup) -> list[Cell]:
    return [g.group or "全部 all", g.name or "", g.due, g.closed, _rate(g.handling_rate),
            _rate(g.on_time_rate), _rate(g.overdue_rate), _rate(g.satisfaction_rate),
            _rate(g.return_rate), _hours(g.time_to_accept.p50_seconds),
            _hours(g.time_to_resolve.p50_seconds)]


def _hours(seconds: float | None) -> Cell:
    return None if seconds is None else round(seconds / 3600, 2)


def report_sheets(r: PeriodReport) -> list[tuple[str, list[list[Cell]]]]:
    """The report as tables: what the XLSX sheets and the CSV sections hold."""
    scope = f"{r.region or '全市 city'} · {r.department or '全部部门 all departments'}"
    summary: list[list[Cell]] = [["项目 item", "值 value"],
                                 ["报表 report", f"{KIND_NAMES[r.kind]} {r.title}"],
                                 ["范围 scope", scope],
                                 ["起 from", r.start.isoformat()], ["止 to", r.end.isoformat()]]
    summary += [[f"新增 opened · {kind} {key}", n] for kind, counts in r.opened.items()
                for key, n in counts.items()]
    summary += [[name, value] for name, value in zip(STAT_COLUMNS[2:], stat_row(r.summary)[2:],
                                                     strict=True)]
    overdue: list[list[Cell]] = [["案件 case", "等级 priority", "分类 category", "状态 status",
                                  "区域 region", "牵头 lead", "受理 opened", "标题 title"]]
    overdue += [[c.case_id, f"P{c.priority}", c.category, c.status, c.region_code,
                 c.lead_department or "", c.opened_at.astimezone(TZ).isoformat(), c.title]
                for c in r.overdue_open]
    return [("概况 summary", summary),
            ("按部门 by department", [list[Cell](STAT_COLUMNS)]
             + [stat_row(g) for g in r.by_department.groups]),
            ("按区域 by region",
             [list[Cell](STAT_COLUMNS)] + [stat_row(g) for g in r.by_region.groups]),
            ("超期在办 overdue open", overdue)]


def _day(value: str | None) -> date:
    if not value:
        return wall_clock().astimezone(TZ).date()
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidRequest(f"date must be YYYY-MM-DD, not {value!r}", field="date") from None


def _report(request: Request, visit: Any, db: Session, kind: str, day: str | None,
            region: str | None, department: str | None) -> PeriodReport:
    return period_report(request, db, visit.user, kind=kind, day=_day(day), region=region,
                         department=department)


@router.get("/console/reports/period")
def period_page(request: Request, visit: Visitor, db: Db, kind: Kind = "daily",
                day: Annotated[str | None, Query(alias="date", max_length=10)] = None,
                region: Text = None, department: Text = None) -> Response:
    report = _report(request, visit, db, kind, day, region, department)
    return render(request, "period.html", visit, report=report, kinds=KIND_NAMES,
                  columns=STAT_COLUMNS, stat_row=stat_row, query=request.url.query)


def _filename(report: PeriodReport, extension: str) -> str:
    stamp = report.start.astimezone(TZ).strftime("%Y%m%d")
    return f"gridlink-{report.kind}-{stamp}.{extension}"


@router.get("/console/reports/period.xlsx")
def period_xlsx(request: Request, visit: Visitor, db: Db, kind: Kind = "daily",
                day: Annotated[str | None, Query(alias="date", max_length=10)] = None,
                region: Text = None, department: Text = None) -> Response:
    report = _report(request, visit, db, kind, day, region, department)
    return Response(workbook(report_sheets(report)), media_type="application/vnd."
                    "openxmlformats-officedocument.spreadsheetml.sheet",
                    headers={"Content-Disposition":
                             f'attachment; filename="{_filename(report, "xlsx")}"'})


@router.get("/console/reports/period.csv")
def period_csv(request: Request, visit: Visitor, db: Db, kind: Kind = "daily",
               day: Annotated[str | None, Query(alias="date", max_length=10)] = None,
               region: Text = None, department: Text = None) -> Response:
    """One CSV (UTF-8 with BOM, so spreadsheet programs read the Chinese): each table of
    the report after a line naming it."""
    report = _report(request, visit, db, kind, day, region, department)
    out = io.StringIO()
    writer = csv.writer(out)
    for name, rows in report_sheets(report):
        writer.writerow([f"# {name}"])
        writer.writerows(["" if v is None else v for v in row] for row in rows)
        writer.writerow([])
    return Response("\ufeff" + out.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition":
                             f'attachment; filename="{_filename(report, "csv")}"'})


__all__ = ["PeriodReport", "buckets", "period_bounds", "period_report", "report_sheets",
           "router"]
