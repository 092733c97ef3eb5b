"""Verification (核实) has its own clock, and no emergency waits for it: a P1 of
unknown category is dispatched at once to the fallback lead while an operator
verifies it. Operators' corrections go on the log (立案 / 改派 with a category)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from streams.cases import apply, decide, pending_deadlines
from streams.cases import commands as C
from streams.cases import events as E
from streams.correlate import TownshipState
from streams.errors import TransitionRejected
from streams.learning import corrections
from streams.records import (
    PROVISIONAL,
    Classification,
    Level,
    Location,
    Priority,
    PriorityDecision,
    Routing,
)
from streams.sla import Step
from streams.triage import triage
from streams.triage_rules import load_triage_rules
from tests.builders import ev
from tests.unit.test_cases import CAL, GRID, POLICY, T0, Case, S, event, types

CORRECT = Classification(category="06.02", name="燃气泄漏", confidence=1.0, rule="operator:op1")


def verify_clock(case: Case):
    return case.s.clock("case.verify")


@pytest.mark.parametrize(
    ("priority", "budget"),
    [
        (Priority.P1, timedelta(minutes=3)),
        (Priority.P2, timedelta(minutes=15)),
        (Priority.P3, timedelta(hours=2)),
    ],
)
def test_verification_has_a_clock_per_priority(priority: Priority, budget: timedelta) -> None:
    case = Case().open(priority=priority, needs_verification=True)
    clock = verify_clock(case)
    assert case.s.status is S.VERIFYING and clock is not None
    assert clock.due - clock.start == budget
    assert clock.warn - clock.start == budget * 0.8  # yellow card at 80 %


def test_p4_verification_runs_on_working_days() -> None:
    # opened Wednesday 30 September 16:00, before National Day: one working day later
    # is Thursday 8 October 16:00
    case = Case().open(priority=Priority.P4, needs_verification=True)
    clock = verify_clock(case)
    assert clock is not None and clock.budget.working
    assert clock.due == T0 + timedelta(days=8)


def test_no_verification_no_clock() -> None:
    case = Case().open()
    assert verify_clock(case) is None and not case.s.verifying


def test_late_verification_gets_yellow_then_red_and_supervision() -> None:
    case = Case().open(priority=Priority.P2, needs_verification=True)
    fired = []
    for deadline in pending_deadlines(case.state):
        if deadline.step is Step.VERIFY:
            out = decide(case.s, deadline.command(), POLICY, CAL, deadline.due)
            for e in out:
                case.state = apply(case.state, e)
            fired += out
    assert types(fired) == ["YellowCard", "RedCard", "Supervised"]
    assert fired[1].step is Step.VERIFY


def test_registering_stops_the_verification_clock() -> None:
    case = Case().open(needs_verification=True)
    out = case.do(C.Register, classification=CORRECT)
    assert "case.verify" in out[0].cleared
    assert verify_clock(case) is None and case.s.category == "06.02"
    assert not case.s.verifying


def provisional_case() -> Case:
    """A P1 of unknown category, as triage opens it: fallback lead at once, 核实 running."""
    case = Case()
    case.do(
        C.OpenCase,
        event=event(),
        location=Location(method="grid_code", region_code=GRID, level=Level.GRID, grid_code=GRID),
        classification=Classification(category="11.00", name="其他", confidence=0.2,
                                      rule="fallback"),
        priority=PriorityDecision(priority=Priority.P1),
        routing=Routing(lead="zhongzhi", supports=("yingji",), entry_level=Level.GRID,
                        disposition=PROVISIONAL),
        needs_verification=True,
    )
    return case


def test_a_p1_of_unknown_category_is_dispatched_at_once_while_it_is_verified() -> None:
    case = provisional_case()
    assert [(a.department, a.role.value) for a in case.s.assignments] == [
        ("zhongzhi", "lead"),
        ("yingji", "support"),
    ]
    assert case.s.verifying and verify_clock(case) is not None
    assert case.s.clock("A1.accept") is not None  # the departments' clocks run too
    # departments work on it while the operator verifies
    case.do(C.Claim, assignment_id="A1", department="zhongzhi")
    assert case.s.status is S.ACCEPTED


def test_registering_a_provisional_case_with_a_corrected_routing_replaces_its_assignments(
) -> None:
    case = provisional_case()
    out = case.do(
        C.Register,
        classification=CORRECT,
        routing=Routing(lead="gongyong", supports=("yingji", "gongan"), entry_level=Level.GRID),
    )
    assert types(out).count("AssignmentCancelled") == 2
    assert [a.department for a in case.s.assignments] == ["gongyong", "yingji", "gongan"]
    assert case.s.status is S.DISPATCHED and case.s.category == "06.02"
    assert not case.s.verifying and verify_clock(case) is None


def test_registering_a_provisional_case_as_it_is_keeps_its_assignments() -> None:
    case = provisional_case()
    case.do(C.Claim, assignment_id="A1", department="zhongzhi")
    out = case.do(C.Register)
    assert types(out) == ["CaseRegistered"]
    assert case.s.status is S.ACCEPTED and len(case.s.assignments) == 2


def test_rejecting_a_provisional_case_cancels_its_assignments() -> None:
    case = provisional_case()
    out = case.do(C.Reject, reason="误报")
    assert types(out) == ["AssignmentCancelled", "AssignmentCancelled", "CaseRejected"]
    assert case.s.status is S.REJECTED and not case.s.clocks
    with pytest.raises(TransitionRejected, match="final"):
        case.do(C.Register)


def test_a_registered_case_is_not_registered_twice() -> None:
    case = Case().open(needs_verification=True)
    case.do(C.Register)
    with pytest.raises(TransitionRejected):
        case.do(C.Register)


def test_rerouting_with_a_category_puts_the_correction_on_the_log() -> None:
    case = Case().open(category="05.09", lead="chengguan")
    out = case.do(
        C.Reroute,
        routing=Routing(lead="gongyong", entry_level=Level.GRID),
        reason="实为燃气泄漏",
        classification=CORRECT,
    )
    assert isinstance(out[0], E.CaseReclassified)
    assert (out[0].previous, out[0].classification.category) == ("05.09", "06.02")
    assert case.s.category == "06.02" and case.s.category_name == "燃气泄漏"
    assert [a.department for a in case.s.assignments] == ["gongyong"]


def test_rerouting_without_a_category_changes_none() -> None:
    case = Case().open(category="05.09")
    out = case.do(C.Reroute, routing=Routing(lead="sthj", entry_level=Level.GRID), reason="改派")
    assert not any(isinstance(e, E.CaseReclassified) for e in out)
    assert case.s.category == "05.09"


def test_corrections_are_read_back_from_the_log() -> None:
    registered = Case("C1").open(category="11.00", needs_verification=True)
    registered.do(C.Register, classification=CORRECT)
    rerouted = Case("C2").open(category="05.09")
    rerouted.do(C.Reroute, routing=Routing(lead="gongyong", entry_level=Level.GRID),
                reason="实为燃气泄漏", classification=CORRECT)
    confirmed = Case("C3").open(category="06.02", needs_verification=True)
    confirmed.do(C.Register, classification=CORRECT)  # the same category: no correction
    found = corrections(registered.log + rerouted.log + confirmed.log)
    assert [(c.case_id, c.original, c.category, c.how) for c in found] == [
        ("C1", "11.00", "06.02", "register"),
        ("C2", "05.09", "06.02", "reroute"),
    ]
    assert found[0].event.event_id == "grid:r1"


# --------------------------------------------------------------------------- triage

TRIAGE_RULES = load_triage_rules(Path(__file__).resolve().parents[2] / "rules")
HERE = Location(method="grid_code", region_code=GRID, level=Level.GRID, grid_code=GRID)


def triaged(**fields):
    decision, _ = triage(ev(grid_code=GRID, **fields), HERE, TownshipState(), TRIAGE_RULES, T0)
    return decision


def test_triage_dispatches_an_unknown_p1_at_once_with_yingji_when_life_is_at_risk() -> None:
    decision = triaged(text="情况紧急，速来", severity_hint="P1",
                       risk_flags=("trapped",))
    assert decision.needs_verification and decision.priority.priority is Priority.P1
    assert decision.routing.disposition == PROVISIONAL
    assert (decision.routing.lead, decision.routing.supports) == ("zhongzhi", ("yingji",))


def test_an_unknown_p1_without_danger_to_life_goes_to_the_fallback_lead_alone() -> None:
    decision = triaged(text="情况紧急，速来", severity_hint="P1")
    assert decision.routing.disposition == PROVISIONAL
    assert (decision.routing.lead, decision.routing.supports) == ("zhongzhi", ())


def test_a_report_that_names_nothing_waits_for_verification() -> None:
    from tests.e2e.test_console_browser import VAGUE

    decision = triaged(text=VAGUE)
    assert decision.needs_verification and decision.action == "open"


def test_an_unknown_p3_waits_for_verification() -> None:
    decision = triaged(text="情况需要了解一下")
    assert decision.needs_verification and decision.priority.priority is Priority.P3
    assert decision.routing.disposition == "dispatch"
