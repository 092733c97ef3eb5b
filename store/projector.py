"""The projector: ``cases.events`` → the SQL tables, in batches, idempotently.

:func:`project` takes a batch of events (from the topic, a replay, or a
redelivery), loads the stored state of every case it touches in one query,
skips each event whose ``seq`` the case has already applied, evolves the
state with the engine's own :func:`streams.cases.apply`, and writes what
changed in bulk: upserts of ``cases``, ``assignments`` and ``deadlines``,
inserts of ``case_events`` and ``evaluations``. The rows hold no rule of
their own: each column is read off the state after an event, or off the
event's envelope (when it happened, its type), or — for the few facts the
state does not keep (category name, first report, the case it was split off,
callback verdict) — off the event that carries them.

Idempotent on (case_id, seq): projecting the same events again, overlapping
batches, or a whole log twice leaves the tables as they were. The caller owns
the transaction (commit after :func:`project`, then the consumer offsets).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, cast

import msgspec
from sqlalchemy import Table, select
from sqlalchemy.orm import Session

from store.bulk import insert_new, upsert
from store.models import (
    CANCELLED,
    AssignmentRow,
    Case,
    CaseEventRow,
    DeadlineRow,
    Department,
    EvaluationRow,
    Region,
)
from streams.cases import Assignment, CaseEvent, CaseState, apply, next_wakeup
from streams.cases.events import CaseEvaluated, CaseOpened
from streams.errors import GridLinkError
from streams.reference import City
from streams.sla import Clock, Stage, Step

_CASES = cast(Table, Case.__table__)
_ASSIGNMENTS = cast(Table, AssignmentRow.__table__)
_DEADLINES = cast(Table, DeadlineRow.__table__)
_TIMELINE = cast(Table, CaseEventRow.__table__)
_EVALUATIONS = cast(Table, EvaluationRow.__table__)

LOAD_CHUNK = 500  # case ids per query when loading states
_YELLOW, _RED, _OVER = int(Stage.YELLOW), int(Stage.RED), int(Stage.OVER)

_state_decoder = msgspec.json.Decoder(CaseState)
_encoder = msgspec.json.Encoder()

#: the column that records when a case last entered a status
_CASE_STATUS_AT = {
    "registered": "registered_at",
    "dispatched": "dispatched_at",
    "accepted": "accepted_at",
    "handled": "handled_at",
    "closed": "closed_at",
    "evaluated": "evaluated_at",
    "rejected": "rejected_at",
    "merged": "merged_at",
}
_ASSIGNMENT_STATUS_AT = {
    "accepted": "claimed_at",
    "returned": "returned_at",
    "handled": "handled_at",
    CANCELLED: "cancelled_at",
}
#: columns set by some events only: a later event leaves them as they are
_CASE_STICKY = frozenset(
    {
        "category_name", "classification_rule", "classification_confidence", "grid_code",
        "summary", "source", "satisfaction", "split_from", *_CASE_STATUS_AT.values(),
    }
)  # fmt: skip
_ASSIGNMENT_STICKY = frozenset(_ASSIGNMENT_STATUS_AT.values())


class ProjectionError(GridLinkError):
    """An event the projection cannot apply: a gap in a case's log, or a log
    that does not start with ``case_opened``. Nothing of the batch is written."""

    code = "projection_gap"


Row = dict[str, Any]
_Dues = dict[str, tuple[datetime | None, datetime | None]]  # assignment → (accept, resolve) due


# -- the entry points ----------------------------------------------------------------------


def project(session: Session, events: Sequence[CaseEvent], *,
            on_gap: Callable[[ProjectionError], None] | None = None) -> int:
    """Apply a batch of events to the tables; returns how many were new.

    Events of one case must come in log order across batches (as a Kafka
    partition delivers them); within a batch they may repeat. When a case's log
    has a gap, :class:`ProjectionError` is raised and nothing is written — or,
    given ``on_gap``, that case keeps what comes before the gap, ``on_gap`` is
    told, and every other case of the batch is written all the same.
    """
    by_case = _group(events)
    if not by_case:
        return 0
    stored = _load_states(session, by_case)
    batch = _Batch()
    for case_id, case_events in by_case.items():
        last_seq, state = stored.get(case_id, (0, None))
        for event in case_events:
            if event.seq <= last_seq:
                continue
            try:
                after = _apply(state, event)
            except ProjectionError as gap:
                if on_gap is None:
                    raise
                on_gap(gap)
                break
            batch.record(state, after, event)
            state, last_seq = after, event.seq
    batch.write(session)
    return batch.applied


def load_reference(session: Session, city: City) -> int:
    """Upsert the city's departments and regions (grids included); returns the rows written."""
    departments = [
        {"code": d.code, "name_zh": d.name_zh, "name_en": d.name_en}
        for d in city.departments.values()
    ]
    regions = [_region_row(region.code, city) for region in city.regions.values()]
    regions += [_region_row(code, city) for code in city.grids if code not in city.regions]
    upsert(session, cast(Table, Department.__table__), departments)
    upsert(session, cast(Table, Region.__table__), regions)
    return len(departments) + len(regions)


def decode_state(encoded: str | bytes) -> CaseState:
    """The engine state kept in ``cases.state``."""
    return _state_decoder.decode(encoded)


# -- reading what is stored --------------------------------------------------------------


def _group(events: Iterable[CaseEvent]) -> dict[str, list[CaseEvent]]:
    """Events by case, in sequence order, each (case_id, seq) once (the first copy)."""
    by_case: dict[str, dict[int, CaseEvent]] = {}
    for event in events:
        by_case.setdefault(event.case_id, {}).setdefault(event.seq, event)
    return {case_id: [seqs[s] for s in sorted(seqs)] for case_id, seqs in by_case.items()}


def _load_states(session: Session, case_ids: Iterable[str]) -> dict[str, tuple[int, CaseState]]:
    ids = list(case_ids)
    out: dict[str, tuple[int, CaseState]] = {}
    for start in range(0, len(ids), LOAD_CHUNK):
        chunk = ids[start : start + LOAD_CHUNK]
        query = select(Case.case_id, Case.last_seq, Case.state).where(Case.case_id.in_(chunk))
        for case_id, last_seq, state in session.execute(query):
            out[case_id] = (last_seq, decode_state(state))
    return out


def _apply(state: CaseState | None, event: CaseEvent) -> CaseState:
    try:
        return apply(state, event)
    except ValueError as error:
        have = state.seq if state is not None else 0
        raise ProjectionError(
            f"case {event.case_id}: cannot apply event {event.seq} "
            f"({type(event).__struct_config__.tag}) after event {have}: {error}. "
            "Replay the case from its first event.",
            code="projection_gap",
            field="seq",
        ) from error


# -- what one event changes ---------------------------------------------------------------


class _Batch:
    """The rows a batch writes, merged per key so each row is written once."""

    def __init__(self) -> None:
        self.applied = 0
        self.states: dict[str, tuple[CaseState, CaseEvent]] = {}
        self.case_facts: dict[str, Row] = {}  # the sticky columns, per case
        self.assignments: dict[tuple[str, str], Row] = {}
        self.deadlines: dict[tuple[str, str], Row] = {}
        self.timeline: list[Row] = []
        self.evaluations: list[Row] = []
        self._dues: dict[str, _Dues] = {}  # of each case's latest state

    def record(self, before: CaseState | None, after: CaseState, event: CaseEvent) -> None:
        self.applied += 1
        case_id = after.case_id
        self.states[case_id] = (after, event)
        _merge(self.case_facts, case_id, _case_facts(before, after, event), _CASE_STICKY)
        if (
            before is None
            or before.clocks != after.clocks
            or before.assignments != after.assignments
            or before.priority != after.priority
        ):
            dues_before = self._dues.get(case_id) or _dues(before)
            dues_after = self._dues[case_id] = _dues(after)
            for row in _assignment_rows(before, after, event, dues_before, dues_after):
                _merge(self.assignments, (case_id, row["assignment_id"]), row, _ASSIGNMENT_STICKY)
            for row in _deadline_rows(before, after, event):
                self.deadlines[(case_id, row["deadline_id"])] = row
        self.timeline.append(_timeline_row(event))
        if isinstance(event, CaseEvaluated):
            self.evaluations.append(_evaluation_row(after, event))

    def write(self, session: Session) -> None:
        if not self.states:
            return
        cases = [
            {**_case_row(state, event), **self.case_facts[case_id]}
            for case_id, (state, event) in self.states.items()
        ]
        upsert(session, _CASES, cases, sticky=_CASE_STICKY, newer_only=True)
        upsert(session, _ASSIGNMENTS, list(self.assignments.values()), sticky=_ASSIGNMENT_STICKY)
        upsert(session, _DEADLINES, list(self.deadlines.values()))
        insert_new(session, _TIMELINE, self.timeline)
        insert_new(session, _EVALUATIONS, self.evaluations)


def _merge(rows: dict[Any, Row], key: Any, row: Row, sticky: frozenset[str]) -> None:
    """A later row of the same key wins, except that its empty sticky columns keep
    the earlier values."""
    earlier = rows.get(key)
    if earlier is not None:
        row = {**row, **{k: earlier[k] for k in sticky if k in row and row[k] is None}}
    rows[key] = row


def _case_row(state: CaseState, event: CaseEvent) -> Row:
    """The columns read off the state after the batch's last event of the case."""
    lead = state.lead
    return {
        "case_id": state.case_id,
        "status": str(state.status),
        "priority": int(state.priority),
        "category": state.category,
        "region_code": state.region,
        "coordinating_region": state.region_code,
        "level": int(state.level),
        "base_level": int(state.base_level),
        "lead_department": lead.department if lead is not None else None,
        "title": state.title,
        "event_count": len(state.event_ids),
        "hot_spot": state.hot_spot,
        "overdue": state.overdue,
        "suspended": state.suspended_at is not None,
        "ruling_region": state.ruling,
        "redo": state.redo,
        "merged_into": state.merged_into,
        "opened_at": state.opened_at,
        "updated_at": event.at,
        "next_due_at": next_wakeup(state),
        "last_seq": state.seq,
        "state": _encoder.encode(state).decode(),
    }


def _case_facts(before: CaseState | None, after: CaseState, event: CaseEvent) -> Row:
    """The sticky columns: what this event says that the state does not keep."""
    facts: Row = dict.fromkeys(_CASE_STICKY)
    if before is None or before.status is not after.status:
        column = _CASE_STATUS_AT.get(str(after.status))
        if column is not None:
            facts[column] = event.at
    classification = getattr(event, "classification", None)
    if classification is not None:
        facts["category_name"] = classification.name
        facts["classification_rule"] = classification.rule
        facts["classification_confidence"] = classification.confidence
    location = getattr(event, "location", None)
    if location is not None:
        facts["grid_code"] = location.grid_code
    report = getattr(event, "event", None)
    if before is None and report is not None:  # the report that opened the case
        facts["summary"] = report.text or report.title
        facts["source"] = str(report.source)
    if isinstance(event, CaseOpened):
        facts["split_from"] = event.split_from
    if isinstance(event, CaseEvaluated):
        facts["satisfaction"] = str(event.result)
    return facts


def _assignment_rows(
    before: CaseState | None,
    after: CaseState,
    event: CaseEvent,
    dues_before: _Dues,
    dues_after: _Dues,
) -> list[Row]:
    rows = []
    previous = {a.id: a for a in before.assignments} if before is not None else {}
    for a in after.assignments:
        old = previous.pop(a.id, None)
        dues = dues_after[a.id]
        unchanged = (
            old == a
            and before is not None  # always so when old is found; says so to the type checker
            and dues_before.get(a.id) == dues
            and before.priority == after.priority
        )
        if unchanged:
            continue
        entered = old is None or old.status is not a.status
        rows.append(_assignment_row(after, a, str(a.status), event.at, dues, entered))
    for gone in previous.values():  # no longer held by the case: cancelled (改派, 裁定)
        rows.append(_assignment_row(after, gone, CANCELLED, event.at, (None, None), True))
    return rows


def _dues(state: CaseState | None) -> _Dues:
    """The deadlines of each assignment's running accept and resolve clocks."""
    if state is None:
        return {}
    accept: dict[str, datetime] = {}
    resolve: dict[str, datetime] = {}
    for clock in state.clocks:
        step = clock.step
        if step is Step.ACCEPT:
            accept[clock.assignment] = clock.due
        elif step is Step.RESOLVE:
            resolve[clock.assignment] = clock.due
    return {a.id: (accept.get(a.id), resolve.get(a.id)) for a in state.assignments}


def _assignment_row(
    state: CaseState,
    a: Assignment,
    status: str,
    at: datetime,
    dues: tuple[datetime | None, datetime | None],
    entered: bool,
) -> Row:
    row: Row = {
        "case_id": state.case_id,
        "assignment_id": a.id,
        "department": a.department,
        "role": str(a.role),
        "status": status,
        "region": a.region,
        "ruled": a.ruled,
        "on_site": a.on_site,
        "extensions": a.extensions,
        "extension_pending": a.requested is not None,
        "dispatched_at": a.dispatched_at,
        "return_by": a.return_by,
        "accept_due_at": dues[0],
        "resolve_due_at": dues[1],
        "priority": int(state.priority),
        "due_at": min((d for d in dues if d is not None), default=None),
        **dict.fromkeys(_ASSIGNMENT_STICKY),
        "updated_at": at,
    }
    column = _ASSIGNMENT_STATUS_AT.get(status)
    if entered and column is not None:
        row[column] = at
    return row


def _deadline_rows(before: CaseState | None, after: CaseState, event: CaseEvent) -> list[Row]:
    rows = []
    previous = {c.id: c for c in before.clocks} if before is not None else {}
    for clock in after.clocks:
        if previous.pop(clock.id, None) != clock:
            rows.append(_deadline_row(after, clock, event.at, cleared_at=None))
    for gone in previous.values():  # stopped by the event
        assert before is not None
        rows.append(_deadline_row(before, gone, event.at, cleared_at=event.at))
    return rows


def _deadline_row(
    state: CaseState, clock: Clock, at: datetime, *, cleared_at: datetime | None
) -> Row:
    assignment = state.assignment(clock.assignment) if clock.assignment else None
    return {
        "case_id": state.case_id,
        "deadline_id": clock.id,
        "step": str(clock.step),
        "assignment_id": clock.assignment or None,
        "department": assignment.department if assignment is not None else None,
        "started_at": clock.start,
        "budget_seconds": clock.budget.seconds,
        "working_days": clock.budget.working,
        "warn_at": clock.warn,
        "due_at": clock.due,
        "over_at": clock.over,
        "yellow_fired": bool(clock.fired & _YELLOW),
        "red_fired": bool(clock.fired & _RED),
        "over_fired": bool(clock.fired & _OVER),
        "paused": clock.paused is not None,
        "extended": clock.extended,
        "active": cleared_at is None,
        "cleared_at": cleared_at,
        "updated_at": at,
    }


def _timeline_row(event: CaseEvent) -> Row:
    return {
        "case_id": event.case_id,
        "seq": event.seq,
        "type": type(event).__struct_config__.tag,
        "at": event.at,
        "actor": event.actor,
        "command_id": event.command_id or None,
        "payload": event,  # stored as the topic carries it (store.bulk encodes it)
        "source_id": report.source_id if (report := getattr(event, "event", None)) else None,
    }


def _evaluation_row(state: CaseState, event: CaseEvaluated) -> Row:
    lead = state.lead
    return {
        "case_id": event.case_id,
        "seq": event.seq,
        "result": str(event.result),
        "note": event.note,
        "actor": event.actor,
        "at": event.at,
        "redo": state.redo,
        "lead_department": lead.department if lead is not None else None,
    }


def _region_row(code: str, city: City) -> Row:
    region = city.regions.get(code)
    grid = city.grids.get(code)
    if region is not None:
        level, name, parent = int(region.level), region.name, region.parent
    else:
        assert grid is not None
        level, name, parent = 5, grid.name, grid.community
    return {
        "code": code,
        "level": level,
        "name": name,
        "parent": parent,
        "lon": grid.lon if grid is not None else None,
        "lat": grid.lat if grid is not None else None,
    }


__all__ = ["ProjectionError", "decode_state", "load_reference", "project"]
