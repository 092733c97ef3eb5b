"""The read side over a projected store: a department's queue and a report's case,
checked against the rows themselves, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from simulation.case_logs import START, case_logs, merged_log
from store.filters import Scope
from store.models import AssignmentRow, Case, Department
from store.projector import project
from store.queries import (
    QUEUE_STATUSES,
    board_department_load,
    case_of_report,
    department_queue,
    list_cases,
    search_cases,
)
from streams.cases.events import CaseOpened, EventLinked

CASES = 80


@pytest.fixture
def projected(sessions: sessionmaker[Session]) -> list:
    logs = case_logs(CASES)
    with sessions.begin() as session:
        project(session, merged_log(logs))
    return logs


def _queue(session: Session, department: str, now: datetime, **filters) -> list:
    page = department_queue(session, department=department, now=now, limit=1000, offset=0,
                            **{"scope": Scope(), **filters})
    assert page.total == len(page.items)
    return page.items


def _busiest(session: Session) -> str:
    rows = session.scalars(select(AssignmentRow.department).where(
        AssignmentRow.status.in_(QUEUE_STATUSES)))
    return Counter(rows).most_common(1)[0][0]


def _order(item) -> tuple:
    due = min((d for d in (item.accept_due_at, item.resolve_due_at) if d is not None),
              default=None)
    return (item.priority, due is None, due or START, item.dispatched_at, item.case_id,
            item.assignment_id)


def test_the_queue_is_the_to_do_list_most_urgent_first(
        projected, sessions: sessionmaker[Session]):
    with sessions() as session:
        department = _busiest(session)
        now = START + timedelta(days=3)
        items = _queue(session, department, now)
        rows = session.scalars(select(AssignmentRow).where(
            AssignmentRow.department == department)).all()
        cases = {c.case_id: c for c in session.scalars(select(Case))}

    to_do = {(r.case_id, r.assignment_id) for r in rows if r.status in QUEUE_STATUSES}
    assert len(items) >= 3, "the scenarios should leave several assignments to do"
    assert {(i.case_id, i.assignment_id) for i in items} == to_do
    assert all(i.priority == cases[i.case_id].priority for i in items)
    assert [_order(i) for i in items] == sorted(_order(i) for i in items)
    assert {r.status for r in rows} - set(QUEUE_STATUSES), "finished ones exist and are left out"


def test_overdue_means_a_running_deadline_has_passed(projected, sessions: sessionmaker[Session]):
    with sessions() as session:
        department = _busiest(session)
        items = _queue(session, department, START)
        dues = sorted(d for i in items for d in (i.accept_due_at, i.resolve_due_at) if d)
        now = dues[len(dues) // 2]  # some overdue, some not
        late = _queue(session, department, now, overdue=True)
        on_time = _queue(session, department, now, overdue=False)

    assert late and on_time
    assert all(i.overdue for i in late) and not any(i.overdue for i in on_time)
    expected_late = {i.assignment_id + i.case_id for i in items
                     if any(d < now for d in (i.accept_due_at, i.resolve_due_at) if d)}
    assert {i.assignment_id + i.case_id for i in late} == expected_late
    assert len(late) + len(on_time) == len(items)


def test_the_board_counts_the_queue_and_its_overdue_by_the_same_rule(
        projected, sessions: sessionmaker[Session]):
    with sessions() as session:
        department = _busiest(session)
        items = _queue(session, department, START)
        dues = sorted(d for i in items for d in (i.accept_due_at, i.resolve_due_at) if d)
        now = dues[len(dues) // 2]
        late = _queue(session, department, now, overdue=True)
        session.add(Department(code=department, name_zh=department, name_en=department))
        load = {d.code: (n_open, n_late)
                for d, n_open, n_late in board_department_load(session, scope=Scope(), now=now)}

    assert 0 < len(late) < len(items)
    assert load[department] == (len(items), len(late))


def test_finished_assignments_are_listed_when_asked_for(projected,
                                                         sessions: sessionmaker[Session]):
    with sessions() as session:
        handled = {r.department for r in session.scalars(
            select(AssignmentRow).where(AssignmentRow.status == "handled"))}
        department = sorted(handled)[0]
        items = _queue(session, department, datetime.now(UTC), statuses=["handled"])
    assert items and {i.status for i in items} == {"handled"}


def test_a_report_finds_the_case_that_opened_or_joined_it(projected,
                                                          sessions: sessionmaker[Session]):
    reports = [(e.event.source_id, e.case_id) for log in projected for e in log
               if isinstance(e, CaseOpened | EventLinked)]
    assert any(isinstance(e, EventLinked) for log in projected for e in log)
    with sessions() as session:
        for source_id, case_id in reports:
            found = case_of_report(session, source_id)
            assert found is not None and found.case_id == case_id, source_id
        assert case_of_report(session, "GR-no-such-report") is None


def _text_in(text: str, case: Case) -> bool:
    return any(text.lower() in (value or "").lower()
               for value in (case.case_id, case.title, case.summary))


def test_the_search_takes_exactly_the_cases_each_filter_names(projected,
                                                              sessions: sessionmaker[Session]):
    """Each rule of store.filters, applied by the SQL, against the same rule on the rows."""
    with sessions() as session:
        cases = list(session.scalars(select(Case)))
        department = _busiest(session)
        served = set(session.scalars(select(AssignmentRow.case_id).where(
            AssignmentRow.department == department)))
    some = sorted(cases, key=lambda c: c.case_id)[len(cases) // 2]
    township, family = some.region_code[:9], some.category[:2]
    word = some.title[1:4]
    opened = sorted(c.opened_at for c in cases)
    since, until = opened[len(opened) // 4], opened[3 * len(opened) // 4]
    now = START + timedelta(days=2)

    def late(case: Case) -> bool:
        return case.overdue or (case.next_due_at is not None and case.next_due_at < now)

    checks = {
        "region": ({"region": township}, lambda c: c.region_code.startswith(township)),
        "category": ({"category": family},
                     lambda c: c.category == family or c.category.startswith(family + ".")),
        "priorities": ({"priorities": [1, 2]}, lambda c: c.priority in (1, 2)),
        "statuses": ({"statuses": ["closed", "evaluated"]},
                     lambda c: c.status in ("closed", "evaluated")),
        "opened": ({"opened_from": since, "opened_to": until},
                   lambda c: since <= c.opened_at < until),
        "department": ({"department": department}, lambda c: c.case_id in served),
        "text": ({"text": word}, lambda c: _text_in(word, c)),
        "overdue": ({"overdue": True, "now": now}, late),
        # "not overdue" keeps the cases with no running deadline too (closed, or waiting)
        "not overdue": ({"overdue": False, "now": now}, lambda c: not late(c)),
    }
    with sessions() as session:
        for name, (filters, keep) in checks.items():
            expected = {c.case_id for c in cases if keep(c)}
            assert 0 < len(expected) < len(cases), f"{name}: the sample should split the cases"
            page = search_cases(session, scope=Scope(), limit=1000, offset=0, **filters)
            assert {c.case_id for c in page.items} == expected, name
            assert page.total == len(expected), name


def test_the_listing_takes_exact_ids_and_categories_within_the_scope(
        projected, sessions: sessionmaker[Session]):
    with sessions() as session:
        cases = list(session.scalars(select(Case)))
        some = sorted(cases, key=lambda c: c.case_id)[: len(cases) // 2]
        township = some[0].region_code[:9]
        scope = Scope(region=township)
        by_id = list_cases(session, scope=scope, case_ids=[c.case_id for c in some], limit=1000)
        category = some[0].category
        by_category = list_cases(session, scope=Scope(), categories=[category], limit=1000)

    assert {c.case_id for c in by_id} == {c.case_id for c in some
                                          if c.region_code.startswith(township)}
    assert {c.case_id for c in by_category} == {c.case_id for c in cases
                                                if c.category == category}
    assert [c.opened_at for c in by_category] == sorted((c.opened_at for c in by_category),
                                                        reverse=True)
