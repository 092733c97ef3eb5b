"""The SQL projection of ``cases.events`` (SQLAlchemy 2 typed models).

Every row here is derived from the case log by :mod:`store.projector`; none is
written by hand, so the whole schema can be dropped and rebuilt by a replay.
Times are stored in UTC and read back as timezone-aware datetimes on both
engines (SQLite keeps them as ISO text, PostgreSQL as ``timestamptz``).

==================  ====================================================================
table               one row per
==================  ====================================================================
``cases``           case: the columns the API filters and shows, plus ``state`` — the
                    engine's own :class:`~streams.cases.CaseState`, msgspec JSON, so the
                    projector applies the next event with :func:`streams.cases.apply`;
                    a merged case (合并) names the case it went into, a split one (拆分)
                    the case it came from
``case_events``     event of a case, keyed (case_id, seq): the append-only timeline (办理过程)
``assignments``     assignment (交办单) of a case, keyed (case_id, assignment_id); a cancelled
                    one (改派, 裁定) stays with status ``cancelled``
``deadlines``       clock of a case, keyed (case_id, deadline_id) e.g. ``A1.resolve``; a
                    stopped one stays with ``active`` false and ``cleared_at``
``evaluations``     callback verdict (回访评价), keyed (case_id, seq) of its event
``departments``     department of the reference data
``regions``         jurisdiction of the reference data, city down to grid (五级)
==================  ====================================================================
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Text,
    TypeDecorator,
    and_,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.sql.elements import ColumnElement

from streams.jurisdiction import level_of
from streams.records import Level

CODE = 32  # department codes, statuses, steps
REGION_CODE = 15  # the longest jurisdiction code (grid)
CASE_ID = 64
ASSIGNMENT_ID = 16
DEADLINE_ID = 48
CANCELLED = "cancelled"  # status of an assignment the case no longer holds

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator[datetime]):
    """An aware datetime stored in UTC; naive values are refused (a clock bug)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value.isoformat()} cannot be stored: give it a zone")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


#: JSON everywhere, JSONB on PostgreSQL (indexable, compact)
Json = JSON().with_variant(postgresql.JSONB(), "postgresql")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UtcDateTime()}


class Region(Base):
    """A jurisdiction (行政区划 / 网格) from the reference data."""

    __tablename__ = "regions"

    code: Mapped[str] = mapped_column(String(REGION_CODE), primary_key=True)
    level: Mapped[int] = mapped_column(SmallInteger)  # streams.records.Level: 1 city … 5 grid
    name: Mapped[str] = mapped_column(String(128))
    parent: Mapped[str | None] = mapped_column(String(REGION_CODE), index=True)
    lon: Mapped[float | None] = mapped_column(Float)  # grid centroid
    lat: Mapped[float | None] = mapped_column(Float)


class Department(Base):
    """A department (职能部门) from the reference data."""

    __tablename__ = "departments"

    code: Mapped[str] = mapped_column(String(CODE), primary_key=True)
    name_zh: Mapped[str] = mapped_column(String(64))
    name_en: Mapped[str] = mapped_column(String(128))


class Case(Base):
    """One case, as the API lists and filters it."""

    __tablename__ = "cases"

    case_id: Mapped[str] = mapped_column(String(CASE_ID), primary_key=True)
    status: Mapped[str] = mapped_column(String(CODE))  # streams.cases.CaseStatus
    priority: Mapped[int] = mapped_column(SmallInteger)  # 1 = P1 特急 … 4 = P4
    category: Mapped[str] = mapped_column(String(CODE))  # taxonomy code, "05.03"
    category_name: Mapped[str | None] = mapped_column(String(128))
    classification_rule: Mapped[str | None] = mapped_column(String(128))
    classification_confidence: Mapped[float | None] = mapped_column(Float)
    region_code: Mapped[str] = mapped_column(String(REGION_CODE))  # deepest place known
    grid_code: Mapped[str | None] = mapped_column(String(REGION_CODE))
    coordinating_region: Mapped[str] = mapped_column(String(REGION_CODE))  # at ``level``
    level: Mapped[int] = mapped_column(SmallInteger)  # the level coordinating it now
    base_level: Mapped[int] = mapped_column(SmallInteger)  # the level at opening
    lead_department: Mapped[str | None] = mapped_column(String(CODE))
    title: Mapped[str] = mapped_column(String(256))
    summary: Mapped[str | None] = mapped_column(Text)  # the first report's text
    source: Mapped[str | None] = mapped_column(String(CODE))  # grid | camera | police
    event_count: Mapped[int] = mapped_column(Integer)  # inbound reports linked (关联)
    hot_spot: Mapped[bool] = mapped_column(Boolean)
    overdue: Mapped[bool] = mapped_column(Boolean)  # a red card (超期) has fired
    suspended: Mapped[bool] = mapped_column(Boolean)  # 挂起
    ruling_region: Mapped[str | None] = mapped_column(String(REGION_CODE))  # 裁定 awaited
    redo: Mapped[int] = mapped_column(SmallInteger)  # 重办 count
    satisfaction: Mapped[str | None] = mapped_column(String(CODE))  # the last callback
    opened_at: Mapped[datetime]
    # the last time the case entered each status (None: never)
    registered_at: Mapped[datetime | None]
    dispatched_at: Mapped[datetime | None]
    accepted_at: Mapped[datetime | None]
    handled_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    evaluated_at: Mapped[datetime | None]
    rejected_at: Mapped[datetime | None]
    merged_at: Mapped[datetime | None]
    # 合并 / 拆分: the case this one was merged into, the case it was split off
    merged_into: Mapped[str | None] = mapped_column(String(CASE_ID), index=True)
    split_from: Mapped[str | None] = mapped_column(String(CASE_ID), index=True)
    updated_at: Mapped[datetime]  # ``at`` of the last event
    next_due_at: Mapped[datetime | None]  # the earliest running deadline
    last_seq: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(Text)  # msgspec JSON of streams.cases.CaseState

    __table_args__ = (
        Index(None, "status", "priority"),
        Index(None, "priority"),
        Index(None, "category"),
        Index(None, "opened_at"),
        Index(None, "region_code"),
        Index(None, "grid_code"),
        Index(None, "coordinating_region"),
        Index(None, "lead_department", "status"),
        Index(None, "updated_at"),
    )


class CaseEventRow(Base):
    """One event of a case's log (the timeline); never updated."""

    __tablename__ = "case_events"

    case_id: Mapped[str] = mapped_column(
        String(CASE_ID), ForeignKey("cases.case_id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    type: Mapped[str] = mapped_column(String(CODE))  # the event's tag, "assignment_claimed"
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(128))
    command_id: Mapped[str | None] = mapped_column(String(256))
    payload: Mapped[dict[str, Any]] = mapped_column(Json)  # the whole event, as on the topic
    # the inbound report an event brought in (its source id, e.g. a grid report's
    # report_id), so Open311 finds a report's case by index
    source_id: Mapped[str | None] = mapped_column(String(128))

    __table_args__ = (Index(None, "at"), Index(None, "type"), Index(None, "source_id"))


class AssignmentRow(Base):
    """One department's share of a case (交办单)."""

    __tablename__ = "assignments"

    case_id: Mapped[str] = mapped_column(
        String(CASE_ID), ForeignKey("cases.case_id", ondelete="CASCADE"), primary_key=True
    )
    assignment_id: Mapped[str] = mapped_column(String(ASSIGNMENT_ID), primary_key=True)
    department: Mapped[str] = mapped_column(String(CODE))
    role: Mapped[str] = mapped_column(String(CODE))  # lead | support
    status: Mapped[str] = mapped_column(String(CODE))  # AssignmentStatus or "cancelled"
    region: Mapped[str] = mapped_column(String(REGION_CODE))  # the unit's jurisdiction
    ruled: Mapped[bool] = mapped_column(Boolean)  # assigned by a ruling (裁定)
    on_site: Mapped[bool] = mapped_column(Boolean)  # 到场 reported
    extensions: Mapped[int] = mapped_column(SmallInteger)  # approved 延期
    extension_pending: Mapped[bool] = mapped_column(Boolean)
    dispatched_at: Mapped[datetime]
    return_by: Mapped[datetime]  # end of the return window (退单时限)
    accept_due_at: Mapped[datetime | None]  # running deadlines of the assignment
    resolve_due_at: Mapped[datetime | None]
    # the queue's order, kept on the row so a department's queue is one index scan:
    # the case's priority, then the earliest running deadline (overdue once it passed)
    priority: Mapped[int] = mapped_column(SmallInteger)
    due_at: Mapped[datetime | None]
    # the last time the assignment entered each status (None: never)
    claimed_at: Mapped[datetime | None]
    returned_at: Mapped[datetime | None]
    handled_at: Mapped[datetime | None]
    cancelled_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]

    __table_args__ = (
        # a department's queue: filtered and ordered from the index alone
        Index("ix_assignments_queue", "department", "status", "priority", "due_at",
              "dispatched_at", "case_id", "assignment_id"),
        Index(None, "status"),
    )


class DeadlineRow(Base):
    """One clock of a case (时限): a step of an assignment, or the case's own."""

    __tablename__ = "deadlines"

    case_id: Mapped[str] = mapped_column(
        String(CASE_ID), ForeignKey("cases.case_id", ondelete="CASCADE"), primary_key=True
    )
    deadline_id: Mapped[str] = mapped_column(String(DEADLINE_ID), primary_key=True)
    step: Mapped[str] = mapped_column(String(CODE))  # streams.sla.Step
    assignment_id: Mapped[str | None] = mapped_column(String(ASSIGNMENT_ID))
    department: Mapped[str | None] = mapped_column(String(CODE))
    started_at: Mapped[datetime]
    budget_seconds: Mapped[int] = mapped_column(Integer)
    working_days: Mapped[bool] = mapped_column(Boolean)  # budget on the working-day calendar
    warn_at: Mapped[datetime | None]  # yellow card (预警)
    due_at: Mapped[datetime]  # red card (超期)
    over_at: Mapped[datetime | None]  # take-over (吹哨) or the ladder's climb
    yellow_fired: Mapped[bool] = mapped_column(Boolean)
    red_fired: Mapped[bool] = mapped_column(Boolean)
    over_fired: Mapped[bool] = mapped_column(Boolean)
    paused: Mapped[bool] = mapped_column(Boolean)  # 挂起
    extended: Mapped[int] = mapped_column(SmallInteger)  # approved 延期
    active: Mapped[bool] = mapped_column(Boolean)  # false once the case stopped it
    cleared_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]

    __table_args__ = (
        Index(None, "active", "due_at"),
        Index(None, "department", "active"),
    )


class EvaluationRow(Base):
    """One callback verdict (回访评价) on a closed case."""

    __tablename__ = "evaluations"

    case_id: Mapped[str] = mapped_column(
        String(CASE_ID), ForeignKey("cases.case_id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)  # of the case_evaluated event
    result: Mapped[str] = mapped_column(String(CODE))  # streams.cases.Satisfaction
    note: Mapped[str] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(128))
    at: Mapped[datetime]
    redo: Mapped[int] = mapped_column(SmallInteger)  # reopenings before this verdict
    lead_department: Mapped[str | None] = mapped_column(String(CODE))

    __table_args__ = (Index(None, "at"), Index(None, "lead_department", "result"))


def within_region(column: Any, code: str) -> ColumnElement[bool]:
    """``column`` (a jurisdiction or grid code) lies in jurisdiction ``code``.

    Codes nest by prefix (a city by its first four digits). A range rather than
    ``LIKE 'prefix%'``: both engines answer it from the column's B-tree index
    whatever the collation.
    """
    prefix = code[:4] if level_of(code) is Level.CITY else code
    upper = str(int(prefix) + 1).zfill(len(prefix))
    if len(upper) > len(prefix):  # "99…9": no code sorts above it
        return column >= prefix
    return and_(column >= prefix, column < upper)


__all__ = [
    "CANCELLED",
    "AssignmentRow",
    "Base",
    "Case",
    "CaseEventRow",
    "DeadlineRow",
    "Department",
    "EvaluationRow",
    "Region",
    "UtcDateTime",
    "within_region",
]
