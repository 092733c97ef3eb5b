"""The projection of merge (合并) and split (拆分): the merged case's status, target and
stopped work, the timelines of both cases, the new case, and the reads the API does on
them (a split's event records, a report's case)."""

from __future__ import annotations

from datetime import timedelta
from itertools import zip_longest

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from store.models import CANCELLED, AssignmentRow, Case, CaseEventRow, DeadlineRow
from store.projector import decode_state, project
from store.queries import case_detail, case_of_report, event_records
from streams.cases import CaseEvent
from streams.cases import commands as C
from tests.unit.test_case_merge_split import Engine, ids
from tests.unit.test_cases import event


@pytest.fixture(scope="module")
def cases() -> Engine:
    """A (r1) absorbs B (r2, r3), then r3 is split off A into A-S1."""
    engine = Engine().open("A", 1).open("B", 2, 3)
    engine.now += timedelta(minutes=20)
    assert engine.merge("B", "A") == [None, None]
    engine.now += timedelta(minutes=20)
    assert engine.do(C.SplitCase, "A", events=(event(3),), reason="另一处") == [None, None]
    return engine


def interleaved(engine: Engine) -> list[CaseEvent]:
    """The logs as partitions deliver them: each case in order, cases interleaved."""
    rounds = zip_longest(*engine.logs.values())
    return [e for batch in rounds for e in batch if e is not None]


def test_merge_and_split_in_the_tables(sessions: sessionmaker[Session], cases: Engine) -> None:
    log = interleaved(cases)
    with sessions.begin() as session:
        assert project(session, log) == len(log)
    with sessions.begin() as session:
        assert project(session, log) == 0  # idempotent, as always

    with sessions() as session:
        b = session.get(Case, "B")
        assert b is not None and b.status == "merged" and b.merged_into == "A"
        assert b.merged_at == cases.logs["B"][-1].at and b.next_due_at is None
        assert decode_state(b.state) == cases.s("B")
        assignments = session.scalars(select(AssignmentRow).where(AssignmentRow.case_id == "B"))
        assert {(a.status, a.cancelled_at is not None) for a in assignments} == {
            (CANCELLED, True)
        }
        deadlines = session.scalars(select(DeadlineRow).where(DeadlineRow.case_id == "B")).all()
        assert deadlines and not any(d.active for d in deadlines)

        a = session.get(Case, "A")
        assert a is not None and a.status == "dispatched" and a.merged_into is None
        assert a.event_count == 2  # r1, and r2 absorbed (r3 was split off)
        timeline = session.scalars(
            select(CaseEventRow).where(CaseEventRow.case_id == "A").order_by(CaseEventRow.seq)
        ).all()
        absorbed = next(r for r in timeline if r.type == "case_absorbed")
        assert absorbed.payload["source"] == "B"
        assert absorbed.payload["event_ids"] == list(ids(2, 3))
        assert timeline[-1].type == "events_split"
        assert timeline[-1].payload["new_case_id"] == "A-S1"

        new = session.get(Case, "A-S1")
        assert new is not None and new.split_from == "A" and new.status == "dispatched"
        assert new.lead_department == "chengguan" and new.event_count == 1
        assert new.category_name == "垃圾满溢"

        detail = case_detail(session, a)
        assert detail.event_ids == tuple(ids(1, 2)) and detail.absorbed == ("B",)
        assert case_detail(session, b).merged_into == "A"
        assert case_detail(session, new).split_from == "A"


def test_the_reads_of_merged_and_split_cases(
    sessions: sessionmaker[Session], cases: Engine
) -> None:
    with sessions.begin() as session:
        project(session, interleaved(cases))
    with sessions() as session:
        # a split needs the records of events the case absorbed: read in B's log
        records = event_records(session, "A", ids(1, 2))
        assert records == {"grid:r1": event(1), "grid:r2": event(2)}
        assert event_records(session, "A-S1", ids(3)) == {"grid:r3": event(3)}
        assert event_records(session, "A", ("grid:r9",)) == {}
        # a report's case is the one holding it now
        assert case_of_report(session, "r2").case_id == "A"  # B was merged into A
        assert case_of_report(session, "r3").case_id == "A-S1"  # split off A
        assert case_of_report(session, "r1").case_id == "A"
