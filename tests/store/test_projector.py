"""The projector: idempotent on (case_id, seq), replay equals live, and every
row agrees with the engine's own fold of the log."""

from __future__ import annotations

from collections import Counter
from collections.abc import Generator, Iterator, Sequence
from datetime import UTC
from pathlib import Path
from typing import Any, cast

import msgspec
import pytest
from sqlalchemy import Engine, Table, delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from simulation.case_logs import batches, case_logs, merged_log, world
from store.db import create_engine, session_factory
from store.migrate import upgrade
from store.models import (
    CANCELLED,
    AssignmentRow,
    Base,
    Case,
    CaseEventRow,
    DeadlineRow,
    Department,
    EvaluationRow,
    Region,
    within_region,
)
from store.projector import ProjectionError, decode_state, load_reference, project
from streams.cases import AnyEvent, CaseEvent, CaseState, CaseStatus, fold
from streams.cases.events import AssignmentCancelled, CaseEvaluated
from tests.store.conftest import new_database

CASES = 60
PROJECTION_TABLES = (Case, AssignmentRow, DeadlineRow, CaseEventRow, EvaluationRow)


@pytest.fixture(scope="module")
def logs() -> list[list[CaseEvent]]:
    return case_logs(CASES, seed=11)


@pytest.fixture(scope="module")
def log(logs: list[list[CaseEvent]]) -> list[CaseEvent]:
    return merged_log(logs)


# -- helpers ----------------------------------------------------------------------------------


def run(
    sessions: sessionmaker[Session],
    parts: Iterator[Sequence[CaseEvent]] | list[Sequence[CaseEvent]],
) -> int:
    """Project each part in its own transaction, as the agent does per batch."""
    applied = 0
    for part in parts:
        with sessions.begin() as session:
            applied += project(session, part)
    return applied


def dump(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every projection row, by table, in primary-key order."""
    out = {}
    with engine.connect() as connection:
        for model in PROJECTION_TABLES:
            table = cast(Table, model.__table__)
            rows = connection.execute(select(table).order_by(*table.primary_key.columns))
            out[table.name] = [tuple(row) for row in rows]
    return out


def empty(engine: Engine) -> None:
    with engine.begin() as connection:
        for model in reversed(PROJECTION_TABLES):
            connection.execute(delete(model))


def redelivered(log: Sequence[CaseEvent]) -> Iterator[list[CaseEvent]]:
    """Overlapping windows, whole batches sent twice, then the entire log again."""
    step, width = 23, 41
    for start in range(0, len(log), step):
        window = list(log[start : start + width])
        yield window
        if start % (3 * step) == 0:
            yield window  # the same batch redelivered
    yield list(log)


# -- idempotency and replay -------------------------------------------------------------------


def test_replay_equals_live_whatever_the_batches(
    engine: Engine, sessions: sessionmaker[Session], log: list[CaseEvent]
):
    assert run(sessions, [log]) == len(log)  # a replay: the whole log in one batch
    replayed = dump(engine)
    empty(engine)
    assert run(sessions, batches(log, 7)) == len(log)  # live: small batches as they come
    assert dump(engine) == replayed
    empty(engine)
    assert run(sessions, redelivered(log)) == len(log)  # at-least-once delivery
    assert dump(engine) == replayed
    assert sum(len(rows) for rows in replayed.values()) > len(log)


def test_projecting_again_changes_nothing(
    engine: Engine, sessions: sessionmaker[Session], log: list[CaseEvent]
):
    run(sessions, batches(log, 50))
    before = dump(engine)
    assert run(sessions, batches(log, 13)) == 0
    assert run(sessions, [log[len(log) // 2 :], log]) == 0
    assert dump(engine) == before


def test_duplicates_within_one_batch_apply_once(
    sessions: sessionmaker[Session], logs: list[list[CaseEvent]]
):
    case = logs[0]
    doubled = [e for event in case for e in (event, event)]
    with sessions.begin() as session:
        assert project(session, doubled) == len(case)
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(CaseEventRow)) == len(case)


# -- what the rows say ------------------------------------------------------------------------


def test_the_timeline_keeps_every_event_in_order(
    engine: Engine,
    sessions: sessionmaker[Session],
    logs: list[list[CaseEvent]],
    log: list[CaseEvent],
):
    run(sessions, batches(log, 31))
    with sessions() as session:
        for case in logs:
            rows = session.scalars(
                select(CaseEventRow)
                .where(CaseEventRow.case_id == case[0].case_id)
                .order_by(CaseEventRow.seq)
            ).all()
            assert [r.seq for r in rows] == list(range(1, len(case) + 1))
            assert [r.type for r in rows] == [type(e).__struct_config__.tag for e in case]
            assert [r.at for r in rows] == [e.at for e in case]
            assert [
                msgspec.convert(r.payload, AnyEvent) for r in rows
            ] == case  # the events themselves


def test_each_case_row_is_the_engines_fold_of_its_log(
    sessions: sessionmaker[Session], logs: list[list[CaseEvent]], log
):
    run(sessions, batches(log, 64))
    with sessions() as session:
        for case in logs:
            state = fold(case)
            assert state is not None
            row = session.get(Case, state.case_id)
            assert row is not None
            assert decode_state(row.state) == state
            assert (row.last_seq, row.status, row.priority, row.category) == (
                state.seq,
                str(state.status),
                int(state.priority),
                state.category,
            )
            assert row.lead_department == (state.lead.department if state.lead else None)
            assert row.overdue is state.overdue and row.level == int(state.level)
            assert row.opened_at == state.opened_at and row.updated_at == case[-1].at
            _check_children(session, state, case)


def _check_children(session: Session, state: CaseState, case: list[CaseEvent]) -> None:
    assignments = session.scalars(
        select(AssignmentRow).where(AssignmentRow.case_id == state.case_id)
    ).all()
    live = {a.assignment_id: a.status for a in assignments if a.status != CANCELLED}
    assert live == {a.id: str(a.status) for a in state.assignments}
    cancelled = sum(isinstance(e, AssignmentCancelled) for e in case)
    assert sum(a.status == CANCELLED for a in assignments) == cancelled
    deadlines = session.scalars(
        select(DeadlineRow).where(DeadlineRow.case_id == state.case_id)
    ).all()
    assert {d.deadline_id: d.due_at for d in deadlines if d.active} == {
        c.id: c.due for c in state.clocks
    }
    assert all(d.cleared_at is not None for d in deadlines if not d.active)
    verdicts = [e for e in case if isinstance(e, CaseEvaluated)]
    evaluations = session.scalars(
        select(EvaluationRow)
        .where(EvaluationRow.case_id == state.case_id)
        .order_by(EvaluationRow.seq)
    ).all()
    assert [(v.seq, v.result) for v in evaluations] == [(e.seq, str(e.result)) for e in verdicts]


def test_the_scenarios_cover_the_closed_loop(log: list[CaseEvent]):
    """The logs the other tests project take most paths through the machine."""
    kinds = Counter(type(e).__struct_config__.tag for e in log)
    for kind in (
        "case_opened",
        "assignment_dispatched",
        "assignment_claimed",
        "assignment_handled",
        "case_closed",
        "case_evaluated",
        "yellow_card",
        "red_card",
        "escalated",
        "assignment_cancelled",
        "case_suspended",
        "case_resumed",
        "rework_ordered",
    ):
        assert kinds[kind] > 0, kind


def test_times_come_back_aware_in_utc(sessions: sessionmaker[Session], logs: list[list[CaseEvent]]):
    with sessions.begin() as session:
        project(session, logs[0])
    with sessions() as session:
        row = session.get(Case, logs[0][0].case_id)
        assert row is not None and row.opened_at.tzinfo is UTC
        assert row.opened_at == logs[0][0].at


def test_region_filters_use_code_prefixes(
    sessions: sessionmaker[Session], logs: list[list[CaseEvent]], log
):
    run(sessions, [log])
    regions = [fold(case).region for case in logs]  # type: ignore[union-attr]
    township, county = regions[0][:9], regions[0][:6]
    city = county[:4] + "00"
    with sessions() as session:
        for code in (township, county, city):
            count = session.scalar(
                select(func.count()).where(within_region(Case.region_code, code))
            )
            expected = sum(r.startswith(code[:4] if code == city else code) for r in regions)
            assert count == expected, code


# -- refusals -----------------------------------------------------------------------------------


def test_a_gap_in_a_case_log_is_refused_and_nothing_is_written(
    sessions: sessionmaker[Session], logs: list[list[CaseEvent]]
):
    case = next(c for c in logs if len(c) >= 4)
    with (
        pytest.raises(ProjectionError, match=r"cannot apply event 3") as caught,
        sessions.begin() as session,
    ):
        project(session, logs[1] + [case[0], case[2]])
    assert caught.value.code == "projection_gap"
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Case)) == 0


def test_live_a_gap_costs_only_its_own_case(
    sessions: sessionmaker[Session], logs: list[list[CaseEvent]]
):
    """The live projection passes ``on_gap``: the gapped case keeps the events before
    the gap, every other case of the batch is written."""
    case = next(c for c in logs if len(c) >= 4)
    others = [c for c in logs if c is not case][:3]
    gaps: list[ProjectionError] = []
    with sessions.begin() as session:
        applied = project(session, [e for c in others for e in c] + [case[0], case[2], case[3]],
                          on_gap=gaps.append)
    assert [g.code for g in gaps] == ["projection_gap"] and "cannot apply event 3" in gaps[0].reason
    assert applied == sum(len(c) for c in others) + 1
    with sessions() as session:
        stored = dict(session.execute(select(Case.case_id, Case.last_seq)).all())
    assert stored == {case[0].case_id: 1, **{c[0].case_id: c[-1].seq for c in others}}


def test_a_log_must_start_with_the_opening(
    sessions: sessionmaker[Session], logs: list[list[CaseEvent]]
):
    with pytest.raises(ProjectionError, match="case_opened"), sessions.begin() as session:
        project(session, logs[0][1:])


def test_an_empty_batch_writes_nothing(sessions: sessionmaker[Session]):
    with sessions.begin() as session:
        assert project(session, []) == 0


# -- reference data -----------------------------------------------------------------------------


def test_reference_data_loads_idempotently(sessions: sessionmaker[Session]):
    city = world().city
    for _ in range(2):
        with sessions.begin() as session:
            load_reference(session, city)
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Department)) == len(city.departments)
        codes = set(city.regions) | set(city.grids)
        assert session.scalar(select(func.count()).select_from(Region)) == len(codes)
        grid = next(iter(city.grids.values()))
        row = session.get(Region, grid.code)
        assert row is not None and (row.level, row.lon, row.lat) == (5, grid.lon, grid.lat)


# -- across engines -----------------------------------------------------------------------------


def test_sqlite_and_postgresql_hold_the_same_projection(
    request: pytest.FixtureRequest, tmp_path: Path, log: list[CaseEvent]
):
    dumps = []
    for kind in ("sqlite", "postgresql"):
        databases = cast(Generator[str], new_database(request, kind, tmp_path))
        url = next(databases)
        upgrade(url)
        engine = create_engine(url)
        try:
            run(session_factory(engine), batches(log, 40))
            dumps.append(dump(engine))
        finally:
            engine.dispose()
            databases.close()
    assert dumps[0] == dumps[1]


def test_the_models_name_every_projection_table():
    assert {cast(Table, m.__table__).name for m in PROJECTION_TABLES} | {
        "departments",
        "regions",
    } == set(Base.metadata.tables)


# -- every status of the machine, with the case engine's own builders ----------------------------


def test_every_status_projects_with_the_time_it_was_entered(sessions: sessionmaker[Session]):
    from tests.unit.test_cases import ALLOWED, build  # the engine's own scripted cases

    logs = {
        status: [msgspec.structs.replace(e, case_id=f"C-{status}") for e in build(status).log]
        for status in ALLOWED
    }
    with sessions.begin() as session:
        project(session, [e for log in logs.values() for e in log])
    with sessions() as session:
        for status, log in logs.items():
            row = session.get(Case, f"C-{status}")
            assert row is not None and row.status == str(status) and row.last_seq == len(log)
            column = f"{status}_at"
            if hasattr(Case, column):
                entered = [e.at for i, e in enumerate(log) if fold(log[: i + 1]).status is status]  # type: ignore[union-attr]
                assert getattr(row, column) == entered[-1], column
            if status is CaseStatus.ACCEPTED:
                lead = session.get(AssignmentRow, (row.case_id, "A1"))
                assert (
                    lead is not None and lead.claimed_at is not None and lead.status == "accepted"
                )
