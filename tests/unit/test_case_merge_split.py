"""Merge (合并) and split (拆分) of cases: each case decided by its own writer, the
other case reached only through follow-up commands, and no event ever lost."""

from __future__ import annotations

from collections import deque
from datetime import timedelta

import msgspec
import pytest

from streams.cases import (
    CaseState,
    CaseStatus,
    apply,
    command_decoder,
    compensations,
    decide,
    department_messages,
    event_decoder,
    fold,
    follow_up_id,
    follow_ups,
    pending_deadlines,
)
from streams.cases import commands as C
from streams.cases import events as E
from streams.errors import TransitionRejected
from streams.records import (
    Classification,
    Level,
    Location,
    Priority,
    PriorityDecision,
    Role,
    Routing,
)
from tests.unit.test_cases import CAL, GRID, POLICY, T0, build, event, types

S = CaseStatus


class Engine:
    """Several cases and the agent's loop: each command to its own case, then the
    follow-ups (or compensations) it causes, until none is left."""

    def __init__(self) -> None:
        self.states: dict[str, CaseState | None] = {}
        self.logs: dict[str, list[E.CaseEvent]] = {}
        self.now = T0
        self.n = 0
        self.answers: list[tuple[C.Command, str | None]] = []  # (command, refusal)

    def command(self, kind: type[C.Command], case_id: str, **fields) -> C.Command:
        self.n += 1
        fields.setdefault("command_id", f"op-{self.n}")  # not the ids of tests.unit.test_cases
        return kind(case_id=case_id, actor="operator:test", at=self.now, **fields)

    def open(
        self,
        case_id: str,
        *events: int,
        priority: Priority = Priority.P3,
        needs_verification: bool = False,
    ) -> Engine:
        first, *more = events or (1,)
        self.send(
            self.command(
                C.OpenCase,
                case_id,
                event=event(first),
                location=Location(
                    method="grid_code", region_code=GRID, level=Level.GRID, grid_code=GRID
                ),
                classification=Classification(
                    category="05.03", name="垃圾满溢", confidence=0.9, rule="test"
                ),
                priority=PriorityDecision(priority=priority),
                routing=Routing(lead="chengguan", supports=("township",), entry_level=Level.GRID),
                needs_verification=needs_verification,
            )
        )
        for n in more:
            self.send(self.command(C.LinkEvent, case_id, event=event(n)))
        return self

    def send(self, first: C.Command) -> list[str | None]:
        """Run ``first`` and everything it causes; the refusals, in order (None: applied)."""
        queue = deque([first])
        refusals = []
        while queue:
            command = queue.popleft()
            state = self.states.get(command.case_id)
            try:
                out = decide(state, command, POLICY, CAL, self.now)
            except TransitionRejected as rejected:
                refusals.append(rejected.reason)
                self.answers.append((command, rejected.reason))
                queue.extend(compensations(command, rejected.reason))
                continue
            refusals.append(None)
            self.answers.append((command, None))
            for e in out:
                state = apply(state, e)
            self.states[command.case_id] = state
            self.logs.setdefault(command.case_id, []).extend(out)
            queue.extend(follow_ups(state, command, out) if state is not None else [])
        return refusals

    def do(self, kind: type[C.Command], case_id: str, **fields) -> list[str | None]:
        return self.send(self.command(kind, case_id, **fields))

    def merge(self, source: str, into: str, event_ids=None, **fields) -> list[str | None]:
        """As the API does: absorb into the target the source's events as last seen."""
        src = self.states[source]
        assert src is not None
        fields.setdefault("reason", "同一事件")
        return self.do(
            C.AbsorbCase,
            into,
            source=source,
            event_ids=src.event_ids if event_ids is None else event_ids,
            priority=src.priority,
            **fields,
        )

    def s(self, case_id: str) -> CaseState:
        state = self.states[case_id]
        assert state is not None
        return state

    def log(self, case_id: str) -> list[str]:
        return types(self.logs[case_id])


def ids(*ns: int) -> tuple[str, ...]:
    return tuple(f"grid:r{n}" for n in ns)


def check_fold(engine: Engine) -> None:
    """Every case is the fold of its log, also after the log went through JSON."""
    for case_id, log in engine.logs.items():
        assert fold(log) == engine.states[case_id]
        replayed = fold(event_decoder.decode(msgspec.json.encode(e)) for e in log)
        assert replayed == engine.states[case_id]


def holders(engine: Engine, event_id: str) -> list[str]:
    """The live (not merged) cases holding an event."""
    return [
        case_id
        for case_id, state in engine.states.items()
        if state is not None and state.status is not S.MERGED and event_id in state.event_ids
    ]


# -- merge ------------------------------------------------------------------------------------


def test_merge_moves_the_events_and_ends_the_absorbed_case() -> None:
    engine = Engine().open("A", 1).open("B", 2, 3)
    assert engine.merge("B", "A") == [None, None]  # AbsorbCase on A, then MarkMerged on B

    a, b = engine.s("A"), engine.s("B")
    assert a.event_ids == ids(1, 2, 3) and a.absorbed == ("B",)
    assert a.status is S.DISPATCHED and len(a.assignments) == 2  # A goes on as it was
    absorbed = engine.logs["A"][-1]
    assert isinstance(absorbed, E.CaseAbsorbed)
    assert (absorbed.source, absorbed.event_ids) == ("B", ids(2, 3))

    assert b.status is S.MERGED and b.merged_into == "A"
    assert b.assignments == () and b.clocks == () and pending_deadlines(b) == []
    assert engine.log("B")[-3:] == ["AssignmentCancelled", "AssignmentCancelled", "CaseMerged"]
    merged = engine.logs["B"][-1]
    assert isinstance(merged, E.CaseMerged)
    assert (merged.into, merged.event_ids) == ("A", ids(2, 3))
    assert merged.command_id == follow_up_id(absorbed.command_id, "merge")

    # the departments of B hear of it as of any cancellation
    told = department_messages(b, engine.logs["B"][-3:])
    assert [(d, m["kind"]) for d, m in told] == [("chengguan", "cancelled"),
                                                  ("township", "cancelled")]
    assert told[0][1]["reason"] == "merged into case A"
    assert all(holders(engine, e) == ["A"] for e in ids(1, 2, 3))
    check_fold(engine)


def test_merge_takes_the_more_urgent_priority() -> None:
    engine = Engine().open("A", 1).open("B", 2, priority=Priority.P2)
    engine.merge("B", "A")
    assert engine.s("A").priority is Priority.P2
    assert engine.log("A")[-2:] == ["CaseAbsorbed", "PriorityChanged"]
    assert engine.s("A").clock("A1.accept").budget.seconds == 1800  # re-clocked on P2


def test_a_case_still_waiting_for_verification_can_be_merged() -> None:
    engine = Engine().open("A", 1).open("B", 2, needs_verification=True)
    assert engine.merge("B", "A") == [None, None]
    assert engine.s("B").status is S.MERGED and engine.log("B") == ["CaseOpened", "CaseMerged"]


@pytest.mark.parametrize(
    ("target", "why"),
    [
        ("B", "case B cannot be merged into itself"),
        ("C9", "case C9 does not exist"),
    ],
)
def test_merge_refused_by_the_target(target: str, why: str) -> None:
    engine = Engine().open("B", 2)
    assert engine.merge("B", target) == [why]
    assert engine.s("B").status is S.DISPATCHED  # nothing reached B


def test_merge_into_a_closed_or_merged_target_is_refused() -> None:
    engine = Engine().open("B", 2).open("C", 3).open("D", 4)
    engine.states["X"] = msgspec.structs.replace(build(S.CLOSED).s, case_id="X")
    (why,) = engine.merge("B", "X")
    assert why is not None and why.startswith("AbsorbCase is not allowed while case X is closed")
    engine.merge("C", "B")  # C went into B
    (why,) = engine.merge("D", "C")
    assert why == "case C was merged into case B (final): AbsorbCase is not allowed; act on case B"
    assert engine.s("D").status is S.DISPATCHED


def test_a_source_closed_in_between_refuses_and_the_target_gives_the_events_back() -> None:
    engine = Engine().open("A", 1)
    closed = build(S.CLOSED)  # case "C1", holding grid:r1: as B, holding grid:r2
    engine.states["B"] = msgspec.structs.replace(closed.s, case_id="B", event_ids=ids(2))
    refusals = engine.merge("B", "A")
    assert refusals[0] is None and refusals[1] is not None and "closed" in refusals[1]
    assert refusals[2:] == [None]  # the release
    a = engine.s("A")
    assert a.event_ids == ids(1) and a.absorbed == ()
    assert engine.log("A")[-2:] == ["CaseAbsorbed", "AbsorbReleased"]
    released = engine.logs["A"][-1]
    assert isinstance(released, E.AbsorbReleased)
    assert released.source == "B" and released.event_ids == ids(2)
    assert released.reason.startswith("case B refused the merge: ")
    assert engine.s("B").status is S.CLOSED and engine.s("B").event_ids == ids(2)
    # the operator may try again later: A holds nothing of B
    assert engine.do(C.AbsorbCase, "A", source="B", event_ids=ids(2), reason="r")[0] is None


def test_a_source_with_an_event_linked_meanwhile_refuses_then_merges_on_retry() -> None:
    engine = Engine().open("A", 1).open("B", 2)
    stale = engine.s("B").event_ids
    engine.do(C.LinkEvent, "B", event=event(3))  # the operator's view did not have it yet
    refusals = engine.merge("B", "A", event_ids=stale)
    assert refusals[1] == (
        "case B has event(s) the merge did not include (grid:r3): merge it again"
    )
    assert engine.s("A").event_ids == ids(1) and engine.s("B").status is S.DISPATCHED
    assert holders(engine, "grid:r3") == ["B"]
    assert engine.merge("B", "A") == [None, None]
    assert engine.s("A").event_ids == ids(1, 2, 3) and engine.s("B").status is S.MERGED
    check_fold(engine)


def test_a_source_refuses_events_that_are_not_its_own() -> None:
    engine = Engine().open("A", 1).open("B", 2)
    refusals = engine.merge("B", "A", event_ids=ids(2, 7))
    assert refusals[1] == "event(s) grid:r7 are not case B's"
    assert engine.s("A").event_ids == ids(1)


def test_merging_is_idempotent() -> None:
    engine = Engine().open("A", 1).open("B", 2)
    first = engine.command(
        C.AbsorbCase, "A", source="B", event_ids=ids(2), priority=Priority.P3, reason="r"
    )
    engine.send(first)
    seqs = {case_id: engine.s(case_id).seq for case_id in ("A", "B")}
    assert engine.send(first) == [None]  # redelivered: no events, no follow-up
    assert {case_id: engine.s(case_id).seq for case_id in ("A", "B")} == seqs
    # the follow-up redelivered, or sent again under another id: no events, and no release
    mark = C.MarkMerged(
        case_id="B", command_id="again", actor="t", at=T0, into="A", event_ids=ids(2), reason="r"
    )
    assert engine.send(mark) == [None]
    assert {case_id: engine.s(case_id).seq for case_id in ("A", "B")} == seqs
    # the operator merges again
    assert engine.merge("B", "A", event_ids=ids(2)) == ["case B is already merged into case A"]
    # a release of a case never absorbed is a no-op
    assert engine.do(C.ReleaseCase, "A", source="Z", event_ids=ids(1), reason="r") == [None]
    assert engine.s("A").event_ids == ids(1, 2)


def test_a_case_merged_elsewhere_refuses_and_the_second_target_releases() -> None:
    engine = Engine().open("A", 1).open("B", 2).open("D", 4)
    engine.merge("B", "A")
    # a second operator merged B into D at the same moment, from a stale view
    refusals = engine.do(C.AbsorbCase, "D", source="B", event_ids=ids(2), reason="r")
    assert refusals == [None, "case B was already merged into case A", None]
    assert engine.s("D").event_ids == ids(4) and holders(engine, "grid:r2") == ["A"]


def test_events_linked_to_a_merged_case_are_forwarded() -> None:
    engine = Engine().open("A", 1).open("B", 2)
    engine.merge("B", "A")
    # triage still saw B open: a new report joins it
    linked = engine.command(
        C.LinkEvent, "B", event=event(5), priority=PriorityDecision(priority=Priority.P2)
    )
    assert engine.send(linked) == [None, None]
    assert engine.log("B")[-1] == "EventForwarded"
    assert engine.s("B").event_ids == ids(2)
    assert engine.s("A").event_ids == ids(1, 2, 5) and engine.s("A").priority is Priority.P2
    assert engine.logs["A"][-2].command_id == follow_up_id(linked.command_id, "forward")
    # a redelivered link of an event B had: A has it already, nothing happens
    assert engine.do(C.LinkEvent, "B", event=event(2)) == [None]
    # a chain: A merged into Z, then a late link to B travels B → A → Z
    engine.open("Z", 9)
    engine.merge("A", "Z")
    assert engine.do(C.LinkEvent, "B", event=event(6)) == [None, None, None]
    assert holders(engine, "grid:r6") == ["Z"]
    check_fold(engine)


def test_a_merged_case_refuses_everything_else() -> None:
    engine = Engine().open("A", 1).open("B", 2)
    engine.merge("B", "A")
    (why,) = engine.do(C.Claim, "B", assignment_id="A1", department="chengguan")
    assert why == "case B was merged into case A (final): Claim is not allowed; act on case A"
    (why,) = engine.do(C.SplitCase, "B", events=(event(2),), reason="r")
    assert why is not None and "merged into case A" in why
    # its timers are gone: a stale fire is a no-op
    fire = C.FireDeadline(
        case_id="B", command_id="f", actor="system:sla", at=T0 + timedelta(days=30),
        deadline_id="A1.accept", kind="red", step="accept", due=T0 + timedelta(days=8),
    )  # fmt: skip
    assert decide(engine.s("B"), fire, POLICY, CAL, T0 + timedelta(days=30)) == []


def test_merge_keeps_handled_and_returned_assignments_and_cancels_the_rest() -> None:
    engine = Engine().open("A", 1).open("B", 2)
    engine.do(C.Claim, "B", assignment_id="A2", department="township")
    engine.do(C.SupportDone, "B", assignment_id="A2", department="township")
    engine.merge("B", "A")
    b = engine.s("B")
    assert [(a.id, a.role) for a in b.assignments] == [("A2", Role.SUPPORT)]
    cancelled = [e for e in engine.logs["B"] if isinstance(e, E.AssignmentCancelled)]
    assert [e.assignment_id for e in cancelled] == ["A1"]


# -- split ------------------------------------------------------------------------------------


def test_split_opens_a_new_case_with_the_events() -> None:
    engine = Engine().open("A", 1, 2, 3)
    command = engine.command(C.SplitCase, "A", events=(event(2), event(3)), reason="另一处垃圾")
    assert engine.send(command) == [None, None]
    a = engine.s("A")
    assert a.event_ids == ids(1) and a.splits == 1
    split = engine.logs["A"][-1]
    assert isinstance(split, E.EventsSplit)
    assert (split.event_ids, split.new_case_id) == (ids(2, 3), "A-S1")

    new = engine.s("A-S1")
    assert new.event_ids == ids(2, 3)
    assert engine.log("A-S1") == [
        "CaseOpened",
        "EventLinked",
        "CaseRegistered",
        "AssignmentDispatched",
        "AssignmentDispatched",
    ]
    opened = engine.logs["A-S1"][0]
    assert isinstance(opened, E.CaseOpened)
    assert opened.split_from == "A"
    assert opened.command_id == follow_up_id(command.command_id, "open")
    assert (new.category, new.priority, new.region, new.level) == ("05.03", Priority.P3, GRID,
                                                                   Level.GRID)  # fmt: skip
    assert [(x.department, x.role) for x in new.assignments] == [
        ("chengguan", Role.LEAD),
        ("township", Role.SUPPORT),
    ]
    sent = department_messages(new, engine.logs["A-S1"])
    assert list(sent[0][1]["source_event_ids"]) == list(ids(2, 3))
    # the next split gets the next id
    engine.do(C.LinkEvent, "A", event=event(4))
    engine.do(C.SplitCase, "A", events=(event(4),), reason="r")
    assert engine.s("A-S2").event_ids == ids(4) and engine.s("A").event_ids == ids(1)
    held = (("grid:r1", "A"), ("grid:r2", "A-S1"), ("grid:r3", "A-S1"), ("grid:r4", "A-S2"))
    assert all(holders(engine, e) == [c] for e, c in held)
    check_fold(engine)


def test_split_with_the_operators_category_and_routing() -> None:
    engine = Engine().open("A", 1, 2)
    engine.do(
        C.SplitCase,
        "A",
        events=(event(2),),
        reason="是占道经营",
        classification=Classification(category="05.01", name="占道经营", confidence=1, rule="op"),
        routing=Routing(lead="chengguan", entry_level=Level.GRID, rule="05.01"),
    )
    new = engine.s("A-S1")
    assert new.category == "05.01" and new.category_name == "占道经营"
    assert [x.department for x in new.assignments] == ["chengguan"]
    assert engine.s("A").category == "05.03"


def test_a_case_split_off_one_awaiting_verification_awaits_it_too() -> None:
    engine = Engine().open("A", 1, 2, needs_verification=True)
    engine.do(C.SplitCase, "A", events=(event(2),), reason="r")
    new = engine.s("A-S1")
    assert new.status is S.VERIFYING and new.routing is not None
    assert new.routing.lead == "chengguan" and new.routing.supports == ("township",)


@pytest.mark.parametrize(
    ("events", "reason", "why"),
    [
        ((1, 2), "r", ("cannot split every event off case A: at least one must stay "
                       "(reject or re-route the case instead)")),
        ((2, 7), "r", "case A holds no event grid:r7 (its events: grid:r1, grid:r2)"),
        ((), "r", "name the events to split off case A"),
        ((2,), " ", "splitting (拆分) needs a reason"),
    ],
)  # fmt: skip
def test_split_refused(events, reason, why) -> None:
    engine = Engine().open("A", 1, 2)
    before = engine.s("A")
    assert engine.do(C.SplitCase, "A", events=tuple(event(n) for n in events),
                     reason=reason) == [why]  # fmt: skip
    assert engine.s("A") is before and "A-S1" not in engine.states


def test_a_closed_case_cannot_be_split() -> None:
    case = build(S.CLOSED)
    state = msgspec.structs.replace(case.s, event_ids=ids(1, 2))
    command = C.SplitCase(case_id="C1", command_id="s", actor="t", at=T0, events=(event(2),),
                          reason="r")  # fmt: skip
    with pytest.raises(TransitionRejected, match="not allowed while case C1 is closed"):
        decide(state, command, POLICY, CAL, case.now)


def test_a_split_then_merge_back_round_trip() -> None:
    engine = Engine().open("A", 1, 2)
    engine.do(C.SplitCase, "A", events=(event(2),), reason="r")
    assert engine.merge("A-S1", "A") == [None, None]
    assert engine.s("A").event_ids == ids(1, 2) and engine.s("A-S1").status is S.MERGED
    check_fold(engine)


# -- which statuses allow what ------------------------------------------------------------------

OPEN = [s for s in S if s not in (S.CLOSED, S.REJECTED, S.EVALUATED, S.MERGED, S.REPORTED)]


@pytest.mark.parametrize("status", [*OPEN, S.CLOSED, S.REJECTED, S.EVALUATED], ids=str)
def test_the_transition_table_of_merge_and_split(status: CaseStatus) -> None:
    case = build(status)
    s = msgspec.structs.replace(case.s, event_ids=ids(1, 2))
    allowed = status in OPEN
    for command in (
        C.AbsorbCase(case_id="C1", command_id="m1", actor="t", at=case.now, source="B",
                     event_ids=ids(8), reason="r"),
        C.MarkMerged(case_id="C1", command_id="m2", actor="t", at=case.now, into="A",
                     event_ids=ids(1, 2), reason="r"),
        C.SplitCase(case_id="C1", command_id="m3", actor="t", at=case.now, events=(event(2),),
                    reason="r"),
    ):  # fmt: skip
        if allowed:
            assert decide(s, command, POLICY, CAL, case.now), (status, command)
        else:
            with pytest.raises(TransitionRejected):
                decide(s, command, POLICY, CAL, case.now)
    release = C.ReleaseCase(case_id="C1", command_id="m4", actor="t", at=case.now, source="B",
                            event_ids=ids(8), reason="r")  # fmt: skip
    assert decide(s, release, POLICY, CAL, case.now) == []  # nothing absorbed: a no-op anywhere


def test_the_new_commands_and_events_encode_with_a_type_field() -> None:
    engine = Engine().open("A", 1, 2).open("B", 3)
    engine.merge("B", "A")
    engine.do(C.LinkEvent, "B", event=event(4))
    engine.do(C.SplitCase, "A", events=(event(2),), reason="r")
    for command, _ in engine.answers:
        raw = msgspec.json.encode(command)
        assert command_decoder.decode(raw) == command
    tags = {msgspec.json.decode(msgspec.json.encode(e))["type"] for log in engine.logs.values()
            for e in log}  # fmt: skip
    assert {"case_absorbed", "case_merged", "event_forwarded", "events_split"} <= tags
    check_fold(engine)


def test_state_stays_compact_after_merges_and_splits() -> None:
    engine = Engine().open("A", 1, 2).open("B", 3)
    engine.merge("B", "A")
    engine.do(C.SplitCase, "A", events=(event(2),), reason="r")
    assert len(msgspec.msgpack.encode(engine.s("A"))) < 1500
    assert msgspec.msgpack.decode(msgspec.msgpack.encode(engine.s("B")), type=CaseState) \
        == engine.s("B")
