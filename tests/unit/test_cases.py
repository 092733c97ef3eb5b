"""The case state machine: transitions, the six steps, returns and rulings,
idempotency, timers, and the fold property."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.calendar import load_calendar
from streams.cases import (
    AssignmentStatus,
    CaseClocks,
    CaseState,
    CaseStatus,
    Satisfaction,
    alert_messages,
    apply,
    command_decoder,
    decide,
    department_messages,
    event_decoder,
    fold,
    load_case_policy,
    next_wakeup,
    pending_deadlines,
)
from streams.cases import commands as C
from streams.cases import events as E
from streams.errors import TransitionRejected
from streams.records import (
    Classification,
    Event,
    Level,
    Location,
    Priority,
    PriorityDecision,
    Role,
    Routing,
    Source,
)
from streams.sla import Budget
from streams.zone import TZ

RULES = Path(__file__).resolve().parents[2] / "rules"
POLICY = load_case_policy(RULES)
CAL = load_calendar(RULES)
GRID = "371502004003007"
T0 = datetime(2026, 9, 30, 16, tzinfo=TZ)  # Wednesday before National Day
S = CaseStatus


def event(n: int = 1, at: datetime = T0, **fields) -> Event:
    return Event(
        event_id=f"grid:r{n}",
        source=Source.GRID,
        source_id=f"r{n}",
        occurred_at=at,
        reported_at=at,
        title="垃圾满溢",
        grid_code=GRID,
        **fields,
    )


class Case:
    """Drives one case: issue commands, keep the live state and the log."""

    def __init__(self, case_id: str = "C1") -> None:
        self.case_id = case_id
        self.state: CaseState | None = None
        self.log: list[E.CaseEvent] = []
        self.n = 0
        self.now = T0

    def command(
        self, kind: type[C.Command], *, command_id: str | None = None, **fields
    ) -> C.Command:
        self.n += 1
        return kind(
            case_id=self.case_id,
            command_id=command_id or f"cmd-{self.n}",
            actor="test",
            at=self.now,
            **fields,
        )

    def do(
        self,
        kind: type[C.Command],
        *,
        at: datetime | None = None,
        policy=POLICY,
        command_id=None,
        **fields,
    ) -> list[E.CaseEvent]:
        if at is not None:
            self.now = at
        out = decide(
            self.state, self.command(kind, command_id=command_id, **fields), policy, CAL, self.now
        )
        for e in out:
            self.state = apply(self.state, e)
        self.log += out
        return out

    def open(
        self,
        *,
        priority: Priority = Priority.P3,
        category: str = "05.03",
        lead: str = "chengguan",
        supports: tuple[str, ...] = ("township",),
        **fields,
    ) -> Case:
        self.do(
            C.OpenCase,
            event=event(),
            location=Location(
                method="grid_code", region_code=GRID, level=Level.GRID, grid_code=GRID
            ),
            classification=Classification(category=category, name="x", confidence=0.9, rule="test"),
            priority=PriorityDecision(priority=priority),
            routing=Routing(lead=lead, supports=supports, entry_level=Level.GRID),
            **fields,
        )
        return self

    @property
    def s(self) -> CaseState:
        assert self.state is not None
        return self.state


def types(events) -> list[str]:
    return [type(e).__name__ for e in events]


# -- the six steps ---------------------------------------------------------------------


def test_a_case_walks_all_six_steps() -> None:
    case = Case().open()
    assert types(case.log) == [
        "CaseOpened",
        "CaseRegistered",
        "AssignmentDispatched",
        "AssignmentDispatched",
    ]
    assert case.s.status is S.DISPATCHED
    lead, support = case.s.assignments
    assert (lead.id, lead.department, lead.role) == ("A1", "chengguan", Role.LEAD)
    assert (support.id, support.department, support.role) == ("A2", "township", Role.SUPPORT)
    assert case.s.clock("A1.accept").due == datetime(
        2026, 10, 8, 16, tzinfo=TZ
    )  # docs/domain.md §4 example
    assert lead.return_by == datetime(2026, 10, 9, 16, tzinfo=TZ)

    messages = department_messages(case.s, case.log)
    assert [(d, m["kind"]) for d, m in messages] == [
        ("chengguan", "assignment"),
        ("township", "assignment"),
    ]
    assert messages[0][1]["deadlines"]["accept"] == datetime(2026, 10, 8, 16, tzinfo=TZ)
    assert b'"accept":"2026-10-08T16:00:00+08:00"' in msgspec.json.encode(messages[0][1])

    statuses = []
    for kind, fields in [
        (C.Claim, dict(assignment_id="A1", department="chengguan")),
        (C.Claim, dict(assignment_id="A2", department="township")),
        (C.ReportOnSite, dict(assignment_id="A1", department="chengguan")),
        (C.Progress, dict(assignment_id="A1", department="chengguan", note="清运中")),
        (C.Handle, dict(assignment_id="A1", department="chengguan", outcome="已清运")),
        (C.SupportDone, dict(assignment_id="A2", department="township", note="已配合")),
        (C.Check, {}),
        (C.Close, dict(note="核查属实")),
        (C.Evaluate, dict(result=Satisfaction.SATISFIED)),
    ]:
        case.do(kind, at=case.now + timedelta(hours=1), **fields)
        statuses.append(case.s.status)
    assert statuses == [
        S.ACCEPTED,
        S.ACCEPTED,
        S.IN_PROGRESS,
        S.IN_PROGRESS,
        S.IN_PROGRESS,
        S.HANDLED,
        S.CHECKING,
        S.CLOSED,
        S.EVALUATED,
    ]
    assert [e.seq for e in case.log] == list(range(1, len(case.log) + 1))
    assert case.s.clocks == ()
    assert pending_deadlines(case.s) == [] and next_wakeup(case.s) is None
    closed = next(e for e in case.log if isinstance(e, E.CaseClosed))
    assert not closed.overdue


def test_verification_then_register_dispatches() -> None:
    case = Case().open(needs_verification=True)
    assert case.s.status is S.VERIFYING and types(case.log) == ["CaseOpened"]
    case.do(
        C.Register,
        classification=Classification(category="05.04", name="乱堆放", confidence=1, rule="op"),
    )
    assert case.s.status is S.DISPATCHED and case.s.category == "05.04"


def test_register_with_a_new_priority() -> None:
    case = Case().open(needs_verification=True)
    case.do(C.Register, priority=Priority.P2)
    assert case.s.priority is Priority.P2
    assert case.s.clock("A1.accept").budget == Budget(1800)


def test_reject() -> None:
    case = Case().open(needs_verification=True)
    case.do(C.Reject, reason="重复上报")
    assert case.s.status is S.REJECTED
    with pytest.raises(TransitionRejected, match="final"):
        case.do(C.Register)


def test_closed_at_grid() -> None:
    case = Case().open(closed_at_grid=True)
    assert case.s.status is S.CLOSED and case.s.assignments == ()
    assert types(case.log)[-1] == "CaseClosed" and case.log[-1].self_resolved
    assert department_messages(case.s, case.log) == []


def test_police_only_is_recorded_not_dispatched() -> None:
    case = Case()
    case.do(
        C.OpenCase,
        event=event(),
        location=Location(method="region_code", region_code="371502", level=Level.COUNTY),
        classification=Classification(category="03.01", name="斗殴", confidence=1, rule="bjlx"),
        priority=PriorityDecision(priority=Priority.P2),
        routing=Routing(lead="gongan", dispatch=False, disposition="police_only"),
    )
    assert case.s.status is S.CLOSED and case.s.assignments == ()
    assert "police_only" in case.log[-1].note and not case.log[-1].self_resolved


def test_case_handled_needs_every_support() -> None:
    case = Case().open(supports=("township", "jiaotong"))
    for a, d in (("A1", "chengguan"), ("A2", "township"), ("A3", "jiaotong")):
        case.do(C.Claim, assignment_id=a, department=d)
    case.do(C.Handle, assignment_id="A1", department="chengguan", outcome="done")
    case.do(C.SupportDone, assignment_id="A2", department="township")
    assert case.s.status is S.IN_PROGRESS
    case.do(C.SupportDone, assignment_id="A3", department="jiaotong")
    assert case.s.status is S.HANDLED
    assert case.s.clock("case.feedback").due == datetime(2026, 10, 8, 16, tzinfo=TZ)


# -- allowed and forbidden transitions, table-driven -----------------------------------


def build(status: CaseStatus) -> Case:
    """A P3 case (lead chengguan A1, support township A2) brought to ``status``."""
    case = Case()
    if status in (S.VERIFYING, S.REGISTERED, S.REJECTED):
        case.open(needs_verification=True)
        if status is S.REGISTERED:
            case.do(C.Register, dispatch=False)
        if status is S.REJECTED:
            case.do(C.Reject, reason="invalid")
        return case
    case.open()
    if status is S.DISPATCHED:
        return case
    case.do(C.Claim, assignment_id="A1", department="chengguan")
    case.do(C.Claim, assignment_id="A2", department="township")
    if status is S.ACCEPTED:
        return case
    if status is S.RETURNED:
        case.do(C.Return, assignment_id="A1", department="chengguan", reason_code="not-ours")
        return case
    case.do(C.Progress, assignment_id="A1", department="chengguan", note="working")
    if status is S.IN_PROGRESS:
        return case
    case.do(C.Handle, assignment_id="A1", department="chengguan", outcome="done")
    case.do(C.SupportDone, assignment_id="A2", department="township")
    if status is S.HANDLED:
        return case
    case.do(C.Check)
    if status is S.CHECKING:
        return case
    if status is S.REWORK:
        case.do(C.Rework, reason="still dirty")
        return case
    case.do(C.Close)
    if status is S.CLOSED:
        return case
    case.do(
        C.Evaluate,
        result=Satisfaction.DISSATISFIED if status is S.REOPENED else Satisfaction.SATISFIED,
    )
    return case


COMMANDS: dict[str, tuple[type[C.Command], dict]] = {
    "LinkEvent": (C.LinkEvent, dict(event=event(2))),
    "Register": (C.Register, {}),
    "Reject": (C.Reject, dict(reason="dup")),
    "Dispatch": (C.Dispatch, {}),
    "Reroute": (C.Reroute, dict(routing=Routing(lead="zhujian"), reason="wrong department")),
    "Rule": (C.Rule, dict(by_region="371502004", lead="zhujian", reason="ruled")),
    "Claim": (C.Claim, dict(assignment_id="A1", department="chengguan")),
    "Return": (C.Return, dict(assignment_id="A1", department="chengguan", reason_code="not-ours")),
    "Progress": (C.Progress, dict(assignment_id="A1", department="chengguan", note="n")),
    "ReportOnSite": (C.ReportOnSite, dict(assignment_id="A1", department="chengguan")),
    "RequestExtension": (
        C.RequestExtension,
        dict(assignment_id="A1", department="chengguan", days=1, reason="r"),
    ),
    "ApproveExtension": (C.ApproveExtension, dict(assignment_id="A1")),
    "Suspend": (C.Suspend, dict(reason="waiting for the citizen")),
    "Resume": (C.Resume, {}),
    "Handle": (C.Handle, dict(assignment_id="A1", department="chengguan", outcome="done")),
    "SupportDone": (C.SupportDone, dict(assignment_id="A2", department="township")),
    "Check": (C.Check, {}),
    "Close": (C.Close, {}),
    "Rework": (C.Rework, dict(reason="r")),
    "Evaluate": (C.Evaluate, dict(result=Satisfaction.SATISFIED)),
    "Supervise": (C.Supervise, {}),
    "Escalate": (C.Escalate, dict(reason="r")),
    "Deescalate": (C.Deescalate, dict(by_region=GRID, level=Level.GRID, reason="r")),
    "OpenCase": (
        C.OpenCase,
        dict(
            event=event(),
            location=Location(method="grid_code", region_code=GRID, level=Level.GRID),
            classification=Classification(category="05.03", name="x", confidence=1, rule="t"),
            priority=PriorityDecision(priority=Priority.P3),
            routing=Routing(lead="chengguan"),
        ),
    ),
}

WORK = {"Progress", "ReportOnSite", "RequestExtension", "Handle"}
ALLOWED: dict[CaseStatus, set[str]] = {
    S.VERIFYING: {"LinkEvent", "Register", "Reject", "Supervise", "Escalate"},
    S.REGISTERED: {"LinkEvent", "Dispatch", "Supervise", "Escalate"},
    S.REJECTED: set(),
    S.DISPATCHED: {"LinkEvent", "Reroute", "Claim", "Return", "Suspend", "Supervise", "Escalate"},
    S.ACCEPTED: {
        "LinkEvent",
        "Reroute",
        "Return",
        "Suspend",
        "SupportDone",
        "Supervise",
        "Escalate",
    }
    | WORK,
    S.RETURNED: {"LinkEvent", "Reroute", "Suspend", "SupportDone", "Supervise", "Escalate"},
    S.IN_PROGRESS: {"LinkEvent", "Reroute", "Suspend", "SupportDone", "Supervise", "Escalate"}
    | WORK,
    S.HANDLED: {"LinkEvent", "Check", "Supervise", "Escalate"},
    S.CHECKING: {"LinkEvent", "Close", "Rework", "Supervise", "Escalate"},
    S.REWORK: {"LinkEvent", "Reroute", "Suspend", "Supervise", "Escalate"} | WORK,
    S.CLOSED: {"Evaluate", "Supervise"},
    S.REOPENED: {"LinkEvent", "Reroute", "Suspend", "Supervise", "Escalate"} | WORK,
    S.EVALUATED: set(),
}
CASES = {status: build(status) for status in ALLOWED}


@pytest.mark.parametrize("status", list(ALLOWED), ids=str)
def test_builders_reach_their_status(status: CaseStatus) -> None:
    assert CASES[status].s.status is status


@pytest.mark.parametrize(
    ("status", "name"), [(s, n) for s in ALLOWED for n in COMMANDS], ids=lambda v: str(v)
)
def test_transition_table(status: CaseStatus, name: str) -> None:
    case = CASES[status]
    kind, fields = COMMANDS[name]
    command = kind(case_id="C1", command_id=f"table-{name}", actor="test", at=case.now, **fields)
    before = case.s
    if name in ALLOWED[status]:
        out = decide(case.s, command, POLICY, CAL, case.now + timedelta(minutes=5))
        assert out, f"{name} in {status} produced no events"
        assert fold(out, case.s).seq == before.seq + len(out)
    else:
        with pytest.raises(TransitionRejected) as info:
            decide(case.s, command, POLICY, CAL, case.now + timedelta(minutes=5))
        assert info.value.reason and info.value.code == "transition_rejected"
    assert case.s is before  # decide never mutates


def test_commands_on_a_missing_case() -> None:
    with pytest.raises(TransitionRejected, match="case C9 does not exist"):
        decide(
            None,
            C.Claim(
                case_id="C9",
                command_id="x",
                actor="t",
                at=T0,
                assignment_id="A1",
                department="chengguan",
            ),
            POLICY,
            CAL,
            T0,
        )


# -- the reasons a person reads --------------------------------------------------------


def test_claim_conflicts_name_the_department() -> None:
    case = build(S.ACCEPTED)
    with pytest.raises(TransitionRejected, match="^assignment A1 is already claimed by chengguan$"):
        case.do(C.Claim, assignment_id="A1", department="zhujian")
    with pytest.raises(TransitionRejected, match="assignment A1 belongs to chengguan, not zhujian"):
        case.do(C.Progress, assignment_id="A1", department="zhujian", note="x")
    with pytest.raises(TransitionRejected, match="has no assignment A7"):
        case.do(C.Progress, assignment_id="A7", department="zhujian", note="x")
    with pytest.raises(TransitionRejected, match="supporting one"):
        case.do(C.Handle, assignment_id="A2", department="township", outcome="x")


def test_return_window_of_two_working_days() -> None:
    case = Case().open()  # dispatched Wed 30 Sep 16:00; window ends Fri 9 Oct 16:00
    with pytest.raises(TransitionRejected) as info:
        case.do(
            C.Return,
            at=datetime(2026, 10, 9, 16, 1, tzinfo=TZ),
            assignment_id="A1",
            department="chengguan",
            reason_code="not-ours",
        )
    assert info.value.reason == "return window of 2 working days ended at 2026-10-09 16:00+08:00"
    case.do(
        C.Return,
        at=datetime(2026, 10, 9, 16, 0, tzinfo=TZ),
        assignment_id="A1",
        department="chengguan",
        reason_code="not-ours",
    )
    assert case.s.status is S.RETURNED


def test_return_window_p1_is_30_minutes() -> None:
    case = Case().open(priority=Priority.P1, category="07.01", lead="xiaofang", supports=())
    with pytest.raises(
        TransitionRejected, match="return window of 30 min ended at 2026-09-30 16:30"
    ):
        case.do(
            C.Return,
            at=T0 + timedelta(minutes=31),
            assignment_id="A1",
            department="xiaofang",
            reason_code="x",
        )


# -- returns and the ruling (裁定) -------------------------------------------------------


def test_second_return_goes_to_a_ruling_at_the_lowest_common_ancestor() -> None:
    case = Case().open()
    case.do(
        C.Return,
        assignment_id="A1",
        department="chengguan",
        reason_code="not-ours",
        suggested_department="zhujian",
    )
    assert case.s.status is S.RETURNED and case.s.ruling is None
    case.do(C.Reroute, routing=Routing(lead="zhujian", supports=("township",)), reason="per return")
    assert [a.id for a in case.s.assignments] == ["A3", "A4"]
    assert sum(a.role is Role.LEAD for a in case.s.assignments) == 1
    out = case.do(C.Return, assignment_id="A3", department="zhujian", reason_code="not-ours")
    assert types(out) == ["AssignmentReturned", "RulingRequested", "Escalated"]
    assert out[1].region == "371502004" and out[1].level is Level.TOWNSHIP and out[1].returns == 2
    assert case.s.level is Level.TOWNSHIP  # the township now coordinates
    assert alert_messages(case.s, out)[0]["kind"] == "ruling_required"

    with pytest.raises(
        TransitionRejected, match="ruling .* by 371502004 is pending after 2 returns"
    ):
        case.do(C.Reroute, routing=Routing(lead="sifa"), reason="x")
    with pytest.raises(TransitionRejected, match="belongs to 371502004 \\(township\\), not 371502"):
        case.do(C.Rule, by_region="371502", lead="chengguan", reason="x")
    out = case.do(
        C.Rule, by_region="371502004", lead="chengguan", supports=("zhujian",), reason="属地管理"
    )
    assert types(out) == [
        "RulingMade",
        "AssignmentCancelled",
        "AssignmentCancelled",
        "AssignmentDispatched",
        "AssignmentDispatched",
    ]
    ruled = case.s.lead
    assert ruled.ruled and ruled.department == "chengguan" and case.s.status is S.DISPATCHED
    kinds = {(d, m["kind"]) for d, m in department_messages(case.s, out)}
    assert {
        ("zhujian", "ruling"),
        ("chengguan", "ruling"),
        ("chengguan", "assignment"),
        ("zhujian", "cancelled"),
    } <= kinds
    with pytest.raises(TransitionRejected, match="assigned by a ruling"):
        case.do(C.Return, assignment_id=ruled.id, department="chengguan", reason_code="again")


def test_cross_township_return_is_ruled_by_the_county() -> None:
    case = Case().open()
    case.do(
        C.Return,
        assignment_id="A1",
        department="chengguan",
        reason_code="other-township",
        suggested_region="371502011",
    )
    case.do(C.Reroute, routing=Routing(lead="chengguan"), reason="try again")
    out = case.do(
        C.Return, assignment_id="A3", department="chengguan", reason_code="other-township"
    )
    assert out[1].region == "371502" and out[1].level is Level.COUNTY


def test_support_return_needs_no_ruling() -> None:
    case = Case().open()
    case.do(C.Return, assignment_id="A2", department="township", reason_code="no")
    assert case.s.status is S.DISPATCHED and case.s.lead_returns == 0
    case.do(C.Claim, assignment_id="A1", department="chengguan")
    case.do(C.Handle, assignment_id="A1", department="chengguan", outcome="ok")
    assert case.s.status is S.HANDLED  # a returned support does not block handling


# -- idempotency -----------------------------------------------------------------------


def test_repeated_command_id_produces_no_events() -> None:
    case = Case().open()
    first = case.do(C.Claim, command_id="claim-1", assignment_id="A1", department="chengguan")
    assert first
    again = case.do(C.Claim, command_id="claim-1", assignment_id="A1", department="chengguan")
    assert again == []
    # the OpenCase itself, redelivered
    assert (
        decide(
            case.s,
            case.command(C.OpenCase, command_id="cmd-1", **COMMANDS["OpenCase"][1]),
            POLICY,
            CAL,
            T0,
        )
        == []
    )


def test_linking_the_same_event_twice_is_a_no_op() -> None:
    case = Case().open()
    assert case.do(C.LinkEvent, event=event(2))
    assert case.do(C.LinkEvent, event=event(2)) == []
    assert case.s.event_ids == ("grid:r1", "grid:r2")


# -- timers ----------------------------------------------------------------------------


def test_pending_deadlines_and_next_wakeup() -> None:
    case = Case().open()
    pending = pending_deadlines(case.s)
    assert pending == sorted(pending, key=lambda d: d.due)
    assert next_wakeup(case.s) == pending[0].due == datetime(2026, 10, 8, 11, 12, tzinfo=TZ)
    assert {(d.deadline_id, d.kind) for d in pending} >= {
        ("A1.accept", "yellow"),
        ("A1.accept", "red"),
        ("A1.accept", "over"),
        ("A1.resolve", "red"),
        ("A2.resolve", "red"),
    }
    assert ("A2.accept", "over") not in {
        (d.deadline_id, d.kind) for d in pending
    }  # supports: no take-over
    decoded = msgspec.json.decode(msgspec.json.encode(pending[0].command()), type=C.FireDeadline)
    assert decoded == pending[0].command()


def test_a_stored_states_clocks_alone_give_its_next_wakeup() -> None:
    case = Case().open()
    states = [case.s]
    case.do(C.Claim, assignment_id="A1", department="chengguan")
    states.append(case.s)
    case.do(C.Suspend, at=datetime(2026, 10, 8, 10, tzinfo=TZ), reason="联系不上当事人")
    states.append(case.s)
    for state in states:
        clocks = msgspec.msgpack.decode(msgspec.msgpack.encode(state), type=CaseClocks)
        assert clocks.clocks == state.clocks
        assert next_wakeup(clocks) == next_wakeup(state)
    assert next_wakeup(states[-1]) is None


def test_firing_is_once_and_stale_fires_are_no_ops() -> None:
    case = Case().open()
    yellow = pending_deadlines(case.s)[0]
    out = decide(case.s, yellow.command(), POLICY, CAL, yellow.due)
    assert types(out) == ["YellowCard"]
    for e in out:
        case.state = apply(case.state, e)
    fire_again = msgspec.structs.replace(yellow.command(), command_id="other-id")
    assert decide(case.s, fire_again, POLICY, CAL, yellow.due) == []  # already fired
    red = next(
        d for d in pending_deadlines(case.s) if d.deadline_id == "A1.accept" and d.kind == "red"
    )
    wrong_due = msgspec.structs.replace(red.command(), due=red.due - timedelta(minutes=1))
    assert decide(case.s, wrong_due, POLICY, CAL, red.due) == []  # stale due
    assert (
        decide(case.s, red.command(), POLICY, CAL, red.due - timedelta(seconds=1)) == []
    )  # not yet due
    case.do(C.Claim, assignment_id="A1", department="chengguan")
    assert decide(case.s, red.command(), POLICY, CAL, red.due) == []  # the step is over
    gone = msgspec.structs.replace(red.command(), deadline_id="A9.accept")
    assert decide(case.s, gone, POLICY, CAL, red.due) == []


def test_red_card_flags_an_alert_and_supervision() -> None:
    case = Case().open()
    red = next(
        d for d in pending_deadlines(case.s) if d.deadline_id == "A1.accept" and d.kind == "red"
    )
    out = decide(case.s, red.command(), POLICY, CAL, red.due)
    assert types(out) == ["RedCard", "Supervised"]
    state = fold(out, case.s)
    assert state.overdue
    assert [a["kind"] for a in alert_messages(state, out)] == ["red_card", "supervision"]
    assert ("chengguan", "red_card") in [(d, m["kind"]) for d, m in department_messages(state, out)]


def test_suspend_pauses_every_clock_and_resume_extends_them() -> None:
    case = Case().open()
    case.do(C.Claim, assignment_id="A1", department="chengguan")
    due = case.s.clock("A1.resolve").due  # 5 working days from Wed 30 Sep 16:00 = Tue 13 Oct 16:00
    case.do(C.Suspend, at=datetime(2026, 10, 8, 10, tzinfo=TZ), reason="联系不上当事人")
    assert pending_deadlines(case.s) == [] and next_wakeup(case.s) is None
    with pytest.raises(TransitionRejected, match="suspended .* resume it first"):
        case.do(C.Handle, assignment_id="A1", department="chengguan", outcome="x")
    case.do(C.Resume, at=datetime(2026, 10, 9, 10, tzinfo=TZ))  # one working day later
    assert case.s.clock("A1.resolve").due == CAL.add_working_days(due, 1)
    assert case.log[-1].paused_seconds == 86_400
    with pytest.raises(TransitionRejected, match="not suspended"):
        case.do(C.Resume)


# -- extension (延期) --------------------------------------------------------------------


def test_extension_once_within_limits() -> None:
    case = Case().open(priority=Priority.P4, category="09.01", lead="zrzy", supports=())
    case.do(C.Claim, assignment_id="A1", department="zrzy")
    due = case.s.clock("A1.resolve").due
    with pytest.raises(TransitionRejected, match="exceeds the limit of 10 working days"):
        case.do(C.RequestExtension, assignment_id="A1", department="zrzy", days=11, reason="x")
    case.do(C.RequestExtension, assignment_id="A1", department="zrzy", days=10, reason="需要测绘")
    with pytest.raises(TransitionRejected, match="already pending"):
        case.do(C.RequestExtension, assignment_id="A1", department="zrzy", days=1, reason="x")
    out = case.do(C.ApproveExtension, assignment_id="A1")
    assert case.s.clock("A1.resolve").due == CAL.add_working_days(due, 10) == out[0].due
    assert ("zrzy", "extension_approved") in [
        (d, m["kind"]) for d, m in department_messages(case.s, out)
    ]
    with pytest.raises(TransitionRejected, match="already had 1 extension"):
        case.do(C.RequestExtension, assignment_id="A1", department="zrzy", days=1, reason="again")


def test_extension_at_most_the_original_budget_and_before_the_deadline() -> None:
    case = Case().open()  # P3: resolve 5 working days
    case.do(C.Claim, assignment_id="A1", department="chengguan")
    with pytest.raises(TransitionRejected, match="limit of 5 working days"):
        case.do(C.RequestExtension, assignment_id="A1", department="chengguan", days=6, reason="x")
    late = case.s.clock("A1.resolve").due
    with pytest.raises(TransitionRejected, match="before the deadline, which was 2026-10-13 16:00"):
        case.do(
            C.RequestExtension,
            at=late,
            assignment_id="A1",
            department="chengguan",
            days=2,
            reason="x",
        )


def test_extension_denied() -> None:
    case = Case().open()
    case.do(C.Claim, assignment_id="A1", department="chengguan")
    due = case.s.clock("A1.resolve").due
    case.do(C.RequestExtension, assignment_id="A1", department="chengguan", days=2, reason="x")
    case.do(C.ApproveExtension, assignment_id="A1", approved=False, note="no")
    assert case.s.clock("A1.resolve").due == due and case.s.lead.requested is None
    assert isinstance(case.log[-1], E.ExtensionDenied)


# -- rework, reopen, evaluation --------------------------------------------------------


def test_rework_restarts_the_lead() -> None:
    case = build(S.CHECKING)
    case.do(C.Rework, reason="现场仍有垃圾")
    assert case.s.status is S.REWORK and case.s.lead.status is AssignmentStatus.IN_PROGRESS
    assert case.s.clock("A1.resolve") is not None and case.s.clock("case.feedback") is None
    case.do(C.Handle, assignment_id="A1", department="chengguan", outcome="again")
    assert case.s.status is S.HANDLED


def test_dissatisfied_reopens_once_then_supervision() -> None:
    case = build(S.CLOSED)
    out = case.do(C.Evaluate, result=Satisfaction.DISSATISFIED)
    assert types(out) == ["CaseEvaluated", "PriorityChanged", "CaseReopened"]
    assert case.s.status is S.REOPENED and case.s.priority is Priority.P2 and case.s.hot_spot
    assert ("chengguan", "reopened") in [
        (d, m["kind"]) for d, m in department_messages(case.s, out)
    ]
    case.do(C.Handle, assignment_id="A1", department="chengguan", outcome="redo")
    case.do(C.Check)
    case.do(C.Close)
    out = case.do(C.Evaluate, result=Satisfaction.DISSATISFIED)
    assert types(out) == ["CaseEvaluated", "Supervised"]
    assert out[1].level is Level.COMMUNITY and case.s.status is S.EVALUATED


# -- priority and frozen rules ---------------------------------------------------------


def test_linked_event_raises_priority_and_reclocks() -> None:
    case = Case().open(category="03.05", lead="gongan", supports=())
    out = case.do(
        C.LinkEvent,
        event=event(2, persons=40),
        priority=PriorityDecision(priority=Priority.P1, reasons=("persons>=30",)),
    )
    assert types(out) == ["EventLinked", "PriorityChanged"]
    assert case.s.priority is Priority.P1
    assert case.s.clock("A1.accept").due == T0 + timedelta(minutes=5)
    alerts = alert_messages(case.s, out)
    assert alerts[0]["kind"] == "priority_raised" and list(alerts[0]["departments"]) == ["gongan"]


def test_the_policy_is_frozen_on_the_case(tmp_path) -> None:
    text = (
        (RULES / "sla.toml").read_text(encoding="utf-8").replace('accept = "1wd"', 'accept = "3wd"')
    )
    (tmp_path / "sla.toml").write_text(text, encoding="utf-8")
    (tmp_path / "escalation.toml").write_text(
        (RULES / "escalation.toml").read_text(encoding="utf-8"), encoding="utf-8"
    )
    edited = load_case_policy(tmp_path)
    assert edited.sla.version != POLICY.sla.version
    case = Case().open()
    case.do(C.Reroute, policy=edited, routing=Routing(lead="zhujian"), reason="x")
    assert case.s.clock("A3.accept").budget == Budget(86_400, True)  # the frozen 1 working day
    other = Case("C2")
    other.do(C.OpenCase, policy=edited, **COMMANDS["OpenCase"][1])
    assert other.s.clock("A1.accept").budget == Budget(3 * 86_400, True)


def test_p1_rural_on_site_and_first_control() -> None:
    case = Case()
    case.do(
        C.OpenCase,
        event=event(),
        location=Location(method="grid_code", region_code="371502104003007", level=Level.GRID),
        classification=Classification(category="07.01", name="火灾", confidence=1, rule="t"),
        priority=PriorityDecision(priority=Priority.P1),
        routing=Routing(lead="xiaofang", entry_level=Level.GRID),
    )
    assert case.s.clock("A1.on_site").due == T0 + timedelta(minutes=30)
    assert case.s.clock("A1.first_control").due == T0 + timedelta(hours=2)
    case.do(C.Claim, assignment_id="A1", department="xiaofang")
    assert case.s.clock("A1.progress").due == case.now + timedelta(hours=2)
    case.do(
        C.Progress,
        at=T0 + timedelta(hours=1),
        assignment_id="A1",
        department="xiaofang",
        note="控制",
        controlled=True,
    )
    assert case.s.clock("A1.first_control") is None
    assert case.s.clock("A1.progress").due == T0 + timedelta(hours=3)


# -- encoding --------------------------------------------------------------------------


def test_commands_and_events_encode_with_a_type_field() -> None:
    case = build(S.IN_PROGRESS)
    for e in case.log:
        raw = msgspec.json.encode(e)
        assert msgspec.json.decode(raw)["type"]
        assert event_decoder.decode(raw) == e
    command = case.command(C.Claim, assignment_id="A1", department="chengguan")
    assert msgspec.json.decode(msgspec.json.encode(command))["type"] == "claim"
    assert command_decoder.decode(msgspec.json.encode(command)) == command


def test_state_is_compact() -> None:
    case = build(S.IN_PROGRESS)
    assert len(msgspec.msgpack.encode(case.s)) < 1500
    assert msgspec.msgpack.decode(msgspec.msgpack.encode(case.s), type=CaseState) == case.s


# -- the fold property -----------------------------------------------------------------

DEPARTMENTS = ["chengguan", "township", "zhujian", "sifa"]
REGIONS = [GRID, "371502004003", "371502004", "371502011", "371502", "371503001"]
#: command kinds, the ones that move a case forward listed more often
KINDS = ["Claim", "Progress", "Handle", "SupportDone", "Check", "Close", "Evaluate", "fire"] * 5 + [
    "LinkEvent",
    "Register",
    "Reject",
    "Dispatch",
    "Reroute",
    "Rule",
    "Return",
    "ReportOnSite",
    "RequestExtension",
    "ApproveExtension",
    "Suspend",
    "Resume",
    "Rework",
    "Supervise",
    "Escalate",
    "Deescalate",
] * 2


def scripted(case: Case, kind: str, i: int, j: int, flag: bool) -> C.Command | None:
    """A command of ``kind`` aimed at the case as it is now: mostly at a real
    assignment and its own department, sometimes at a wrong one."""
    s = case.s
    if kind == "fire":
        pending = pending_deadlines(s)
        if not pending:
            return None
        deadline = pending[i % len(pending)] if flag else pending[0]
        case.now = max(case.now, deadline.due)
        return deadline.command()
    a = s.assignments[i % len(s.assignments)] if s.assignments else None
    if j and s.assignments:  # mostly the assignment the command makes sense for
        wanted = {
            "Claim": lambda x: x.status is AssignmentStatus.DISPATCHED,
            "SupportDone": lambda x: (
                x.role is Role.SUPPORT and x.status is not AssignmentStatus.HANDLED
            ),
        }.get(kind, lambda x: x.role is Role.LEAD)
        a = next((x for x in s.assignments if wanted(x)), a)
    aid = a.id if a is not None else f"A{i}"
    dept = a.department if a is not None and j else DEPARTMENTS[i % len(DEPARTMENTS)]
    region = REGIONS[(i + j) % len(REGIONS)]
    level = list(Level)[(i + j) % 5]
    fields: dict = {
        "LinkEvent": dict(
            event=event(i % 3 + 2),
            priority=PriorityDecision(priority=Priority(j + 1)) if flag else None,
        ),
        "Register": dict(dispatch=flag or j > 0),
        "Reject": dict(reason="dup" if j else ""),
        "Dispatch": {},
        "Reroute": dict(
            routing=Routing(lead=DEPARTMENTS[j], supports=tuple(DEPARTMENTS[: i % 3])), reason="r"
        ),
        "Rule": dict(
            by_region=s.ruling if s.ruling and j else region, lead=DEPARTMENTS[j], reason="r"
        ),
        "Claim": dict(assignment_id=aid, department=dept),
        "Return": dict(
            assignment_id=aid,
            department=dept,
            reason_code="x",
            suggested_region=region if flag else None,
        ),
        "Progress": dict(assignment_id=aid, department=dept, note="n", controlled=flag),
        "ReportOnSite": dict(assignment_id=aid, department=dept),
        "RequestExtension": dict(assignment_id=aid, department=dept, days=i + j * 3, reason="r"),
        "ApproveExtension": dict(assignment_id=aid, approved=flag),
        "Suspend": dict(reason="wait" if j else ""),
        "Resume": {},
        "Handle": dict(assignment_id=aid, department=dept, outcome="done"),
        "SupportDone": dict(assignment_id=aid, department=dept),
        "Check": {},
        "Close": {},
        "Rework": dict(reason="again"),
        "Evaluate": dict(result=list(Satisfaction)[0 if j == 3 else (2 if flag else j)]),
        "Supervise": dict(level=level if flag else None),
        "Escalate": dict(level=level if flag else None, reason="r"),
        "Deescalate": dict(by_region=s.region_code if j else region, level=level, reason="r"),
    }[kind]
    return case.command(getattr(C, kind), command_id="cmd-1" if flag and i == 7 else None, **fields)


steps = st.tuples(
    st.sampled_from(KINDS),
    st.integers(0, 7),
    st.integers(0, 3),
    st.integers(0, 2 * 24 * 60),
    st.booleans(),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    start=st.sampled_from([None, *ALLOWED]),
    verify=st.booleans(),
    priority=st.sampled_from(list(Priority)),
    category=st.sampled_from(["05.03", "01.02", "07.01", "02.01", "06.01"]),
    script=st.lists(steps, min_size=10, max_size=60),
)
def test_random_commands_keep_the_invariants(start, verify, priority, category, script) -> None:
    """From a fresh case or any status: no exception but TransitionRejected,
    seq strictly increasing, exactly one lead once dispatched, state = fold(log)."""
    if start is None:
        case = Case().open(priority=priority, category=category, needs_verification=verify)
    else:
        case = build(start)
    dispatched = any(isinstance(e, E.AssignmentDispatched) for e in case.log)
    for kind, i, j, minutes, flag in script:
        case.now += timedelta(minutes=minutes)
        command = scripted(case, kind, i, j, flag)
        if command is None:
            continue
        try:
            out = decide(case.state, command, POLICY, CAL, case.now)
        except TransitionRejected as rejected:
            assert rejected.reason
            continue
        last = case.s.seq
        for e in out:
            assert e.seq == last + 1 and e.case_id == "C1"
            last = e.seq
            case.state = apply(case.state, e)
        case.log += out
        dispatched = dispatched or bool(case.s.assignments)
        leads = [a for a in case.s.assignments if a.role is Role.LEAD]
        if dispatched and case.s.status is not S.REJECTED:
            assert len(leads) == 1, case.s.assignments
        else:
            assert leads == []
        assert len({a.id for a in case.s.assignments}) == len(case.s.assignments)
        assert all(k.assignment == "" or case.s.assignment(k.assignment) for k in case.s.clocks)
    assert [e.seq for e in case.log] == list(range(1, len(case.log) + 1))
    # the state is the fold of the log, also after the log went through JSON
    assert fold(case.log) == case.state
    replayed = fold(event_decoder.decode(msgspec.json.encode(e)) for e in case.log)
    assert replayed == case.state
    assert msgspec.msgpack.decode(msgspec.msgpack.encode(case.state), type=CaseState) == case.state
