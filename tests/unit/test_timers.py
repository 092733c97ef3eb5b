from datetime import datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from streams.timers import ArmedFires, DeadlineIndex

T0 = datetime(2026, 11, 26, 10, 0, tzinfo=timezone(timedelta(hours=8)))


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_pops_only_what_is_due_in_order_of_due_time():
    index = DeadlineIndex()
    index.index_case(0, "C1", [("accept", at(10)), ("resolve", at(100))])
    index.index_case(1, "C2", [("accept", at(5))])
    assert index.pop_due(at(4)) == []
    due = index.pop_due(at(10))
    assert sorted((d.case_id, d.deadline_id) for d in due) == [("C1", "accept"), ("C2", "accept")]
    assert index.pop_due(at(99)) == []
    assert [(d.case_id, d.deadline_id, d.partition) for d in index.pop_due(at(100))] == [
        ("C1", "resolve", 0)
    ]


def test_reindexing_a_case_supersedes_its_old_deadlines():
    index = DeadlineIndex()
    index.index_case(0, "C1", [("accept", at(10))])
    index.index_case(0, "C1", [("resolve", at(50))])  # claimed: accept no longer pending
    assert index.pop_due(at(20)) == []
    assert [d.deadline_id for d in index.pop_due(at(50))] == ["resolve"]


def test_a_case_with_no_pending_deadlines_fires_nothing():
    index = DeadlineIndex()
    index.index_case(0, "C1", [("accept", at(10))])
    index.index_case(0, "C1", [])
    assert index.pop_due(at(1000)) == []


def test_dropping_a_partition_forgets_its_deadlines():
    index = DeadlineIndex()
    index.index_case(0, "C1", [("accept", at(1))])
    index.index_case(1, "C2", [("accept", at(1))])
    index.drop_partition(0)
    assert [d.case_id for d in index.pop_due(at(2))] == ["C2"]


def test_the_auditor_counts_current_overdue_entries_only():
    index = DeadlineIndex()
    index.index_case(0, "C1", [("a", at(1)), ("b", at(2)), ("c", at(100))])
    index.index_case(0, "C2", [("a", at(1))])
    index.index_case(0, "C2", [("b", at(200))])  # supersedes C2's "a"
    assert index.overdue(at(10), grace_seconds=5) == 2
    index.pop_due(at(10))
    assert index.overdue(at(10), grace_seconds=5) == 0


@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 50), st.integers(0, 1000)),
                max_size=200), st.integers(0, 1000))
def test_pop_due_returns_exactly_the_due_current_entries(entries, now_s):
    index = DeadlineIndex()
    expected = {}
    for i, (partition, case, due) in enumerate(entries):
        case_id = f"C{case}"
        index.index_case(partition, case_id, [(f"d{i}", at(due))])
        expected[case_id] = (f"d{i}", due)  # only the latest indexing of a case counts
    want = sorted((c, d) for c, (d, due) in expected.items() if due <= now_s)
    assert index.overdue(at(now_s), grace_seconds=0) == len(want)
    got = sorted((d.case_id, d.deadline_id) for d in index.pop_due(at(now_s)))
    assert got == want


# -- armed fires --------------------------------------------------------------------------


def test_armed_fires_go_out_at_their_instant_earliest_first_and_within_the_limit():
    armed = ArmedFires()
    for n, seconds in enumerate([30, 10, 20, 10]):
        assert armed.arm(f"fire:{n}", T0 + timedelta(seconds=seconds), f"C{n}".encode(),
                         f"record {n}".encode())
    assert armed.pop_due(T0 + timedelta(seconds=9), limit=10) == []
    first = armed.pop_due(T0 + timedelta(seconds=25), limit=2)
    assert [key for _, key, _ in first] == [b"C1", b"C3"]  # both at 10 s, in arming order
    assert [record for _, _, record in armed.pop_due(T0 + timedelta(seconds=25), limit=2)
            ] == [b"record 2"]
    assert armed.next_due() == (T0 + timedelta(seconds=30)).timestamp() and len(armed) == 1


def test_a_fire_is_armed_once_until_it_has_gone_out():
    armed = ArmedFires()
    due = T0 + timedelta(seconds=5)
    assert armed.arm("fire:D1:yellow", due, b"C1", b"r")
    assert not armed.arm("fire:D1:yellow", due, b"C1", b"r")  # the case indexed again
    assert armed.arm("fire:D1:red", due, b"C1", b"r")  # another kind at the same instant
    assert len(armed.pop_due(due, limit=10)) == 2
    assert armed.arm("fire:D1:yellow", due, b"C1", b"r")  # gone out: may be armed again


def test_armed_fires_past_the_grace_count_as_overdue_and_clear_forgets_them():
    armed = ArmedFires()
    armed.arm("fire:a", T0, b"C1", b"r")
    armed.arm("fire:b", T0 + timedelta(seconds=8), b"C2", b"r")
    assert armed.overdue(T0 + timedelta(seconds=10), grace_seconds=5) == 1
    armed.clear()
    assert len(armed) == 0 and armed.next_due() is None
    assert armed.arm("fire:a", T0, b"C1", b"r")


def test_the_same_deadline_of_two_cases_is_armed_for_each():
    armed = ArmedFires()  # command ids are unique within a case only
    assert armed.arm("fire:D1:yellow", T0, b"C1", b"r1")
    assert armed.arm("fire:D1:yellow", T0, b"C2", b"r2")
    assert {key for _, key, _ in armed.pop_due(T0, limit=10)} == {b"C1", b"C2"}
