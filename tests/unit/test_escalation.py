"""Escalation over the five levels (docs/domain.md §5): rules as data, pure functions,
and the ladder (四级七天) and late-goes-up paths through the case machine."""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from streams.calendar import load_calendar
from streams.cases import alert_messages, apply, decide, load_case_policy, pending_deadlines
from streams.cases import commands as C
from streams.cases import events as E
from streams.errors import RulesError
from streams.escalation import (
    escalation_terms,
    fan_out,
    is_recurrent,
    ladder_for,
    level_up,
    load_escalation_policy,
    raise_priority,
    ruling_region,
    takeover_after,
)
from streams.records import (
    Classification,
    Event,
    Level,
    Location,
    Priority,
    PriorityDecision,
    Routing,
    Source,
)
from streams.sla import Budget, Step
from streams.zone import TZ

RULES = Path(__file__).resolve().parents[2] / "rules"
GRID = "371502004003007"
T0 = datetime(2026, 11, 2, 9, tzinfo=TZ)  # a Monday


@pytest.fixture(scope="module")
def policy():
    return load_escalation_policy(RULES)


# -- fan-out (一键通报) --------------------------------------------------------------------


def test_p1_fans_out_to_township_county_city(policy) -> None:
    out = fan_out(policy, Priority.P1, "07.01", GRID)
    assert out is not None
    assert out.centers == (
        (Level.TOWNSHIP, "371502004"),
        (Level.COUNTY, "371502"),
        (Level.CITY, "371500"),
    )
    assert out.departments == ("xiaofang", "yingji", "gongan")  # the longest prefix, 07.01


@pytest.mark.parametrize(
    ("category", "departments"),
    [
        ("07.02", ("yingji", "xiaofang")),
        ("06.02", ("yingji", "xiaofang", "gongan")),
        ("03.05", ("gongan",)),
        ("05.03", ()),
    ],
)
def test_fan_out_departments_by_category(policy, category, departments) -> None:
    assert fan_out(policy, Priority.P1, category, GRID).departments == departments


def test_only_p1_fans_out(policy) -> None:
    assert fan_out(policy, Priority.P2, "07.01", GRID) is None


def test_fan_out_from_a_county_code_skips_the_township(policy) -> None:
    out = fan_out(policy, Priority.P1, "03.05", "371502")
    assert out.centers == ((Level.COUNTY, "371502"), (Level.CITY, "371500"))


# -- levels ----------------------------------------------------------------------------


def test_level_up_stops_at_the_city() -> None:
    assert level_up(Level.GRID) == Level.COMMUNITY
    assert level_up(Level.COUNTY, 3) == Level.CITY


@pytest.mark.parametrize(
    ("level", "category", "priority", "persons", "rungs"),
    [
        (Level.GRID, "01.02", Priority.P3, 2, [Level.GRID, Level.COMMUNITY, Level.TOWNSHIP]),
        (Level.GRID, "01.02", Priority.P4, None, [Level.GRID, Level.COMMUNITY, Level.TOWNSHIP]),
        (Level.COMMUNITY, "01.01", Priority.P3, 4, [Level.COMMUNITY, Level.TOWNSHIP]),
        (Level.GRID, "01.02", Priority.P3, 5, []),  # not small
        (Level.GRID, "01.02", Priority.P2, 2, []),  # likely to escalate / violence: not ordinary
        (Level.GRID, "05.03", Priority.P3, 1, []),  # not a dispute
        (Level.COUNTY, "01.02", Priority.P3, 2, []),
    ],
)
def test_ladder(policy, level, category, priority, persons, rungs) -> None:
    got = ladder_for(policy, level=level, category=category, priority=priority, persons=persons)
    assert [r.level for r in got] == rungs


def test_ladder_is_four_levels_in_seven_days(policy) -> None:
    assert sum(r.stay.seconds for r in policy.ladder) == 7 * 86_400


# -- late goes up ----------------------------------------------------------------------


def test_takeover_after(policy) -> None:
    p3 = escalation_terms(policy, Priority.P3)
    assert takeover_after(p3, Step.RESOLVE, Budget(5 * 86_400, True)) == Budget(86_400, True)
    p1 = escalation_terms(policy, Priority.P1)
    assert takeover_after(p1, Step.ACCEPT, Budget(300)) == Budget(150)  # + 50 % of the budget
    assert takeover_after(p1, Step.PROGRESS, Budget(7200)) is None


@pytest.mark.parametrize(
    ("case", "departments", "expected"),
    [
        (GRID, ["371502004", "371502004"], "371502004"),  # both township units → the township rules
        ("371502004", ["371502004", "371502011"], "371502"),  # across townships → the county
        (GRID, ["371502004", "371503001"], "371500"),  # across counties → the city
        (GRID, [], GRID),
    ],
)
def test_ruling_region(case, departments, expected) -> None:
    assert ruling_region(case, departments) == expected


def test_recurrence(policy) -> None:
    assert raise_priority(Priority.P3) == Priority.P2
    assert raise_priority(Priority.P1) == Priority.P1
    now = T0
    assert is_recurrent(policy, [now - timedelta(days=3), now - timedelta(days=29)], now)
    assert not is_recurrent(policy, [now - timedelta(days=3), now - timedelta(days=31)], now)


# -- loading ---------------------------------------------------------------------------


def _edited(tmp_path: Path, old: str, new: str) -> Path:
    text = (RULES / "escalation.toml").read_text(encoding="utf-8")
    assert old in text
    (tmp_path / "escalation.toml").write_text(text.replace(old, new, 1), encoding="utf-8")
    return tmp_path


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ('levels = ["township", "county", "city"]', 'levels = ["town"]', "fan_out.levels"),
        (
            '{ level = "community", stay = "2d" }',
            '{ level = "community", stay = "two days" }',
            "ladder.rungs[1].stay",
        ),
        (
            '{ level = "community", stay = "2d" }',
            '{ level = "county", stay = "2d" }',
            "ladder.rungs",
        ),
        ("P1 = { after_ratio = 0.5 }", 'P1 = { after_ratio = 0.5, after = "1h" }', "takeover.P1"),
        (
            'steps = ["accept", "on_site", "resolve"]',
            'steps = ["accept", "lunch"]',
            "takeover.steps",
        ),
        ('window = "30d"', 'window = "30wd"', "recurrence.window"),
        ('"07.01" = ["xiaofang"', '"7.1" = ["xiaofang"', "fan_out.departments.7.1"),
        ("[red]", "[reds]", "reds"),
    ],
)
def test_load_errors(tmp_path, old, new, key) -> None:
    with pytest.raises(RulesError) as info:
        load_escalation_policy(_edited(tmp_path, old, new))
    assert info.value.reason.startswith("escalation.toml: ")
    assert info.value.field == key


def test_missing_file(tmp_path) -> None:
    shutil.copy(RULES / "sla.toml", tmp_path)
    with pytest.raises(RulesError, match="escalation.toml"):
        load_escalation_policy(tmp_path)


# -- through the case machine ----------------------------------------------------------

POLICY = load_case_policy(RULES)
CAL = load_calendar(RULES)


class Case:
    """A tiny driver: issue commands, keep the state, collect events."""

    def __init__(self) -> None:
        self.state = None
        self.events: list[E.CaseEvent] = []
        self.n = 0

    def do(self, kind: type[C.Command], now: datetime, **fields) -> list[E.CaseEvent]:
        self.n += 1
        command = kind(case_id="K1", command_id=f"k{self.n}", actor="test", at=now, **fields)
        out = decide(self.state, command, POLICY, CAL, now)
        for e in out:
            self.state = apply(self.state, e)
        self.events += out
        return out


def open_case(
    category: str,
    priority: Priority,
    *,
    persons: int | None = None,
    flags=(),
    entry=Level.GRID,
    region: str = GRID,
) -> Case:
    case = Case()
    event = Event(
        event_id="grid:r1",
        source=Source.GRID,
        source_id="r1",
        occurred_at=T0,
        reported_at=T0,
        title="邻里纠纷",
        grid_code=GRID,
        persons=persons,
        risk_flags=tuple(flags),
    )
    case.do(
        C.OpenCase,
        T0,
        event=event,
        location=Location(
            method="grid_code", region_code=region, level=Level(len(region) // 3), grid_code=GRID
        ),
        classification=Classification(category=category, name="x", confidence=0.9, rule="t"),
        priority=PriorityDecision(priority=priority),
        routing=Routing(lead="sifa", supports=("township",), entry_level=entry),
    )
    return case


def fire_all(case: Case, until: datetime) -> list[E.CaseEvent]:
    out: list[E.CaseEvent] = []
    while True:
        due = [d for d in pending_deadlines(case.state) if d.due <= until]
        if not due:
            return out
        d = due[0]
        got = decide(case.state, d.command(), POLICY, CAL, d.due)
        assert got, f"pending deadline {d} fired nothing"
        for e in got:
            case.state = apply(case.state, e)
        out += got


def test_small_dispute_climbs_four_levels_in_seven_days() -> None:
    case = open_case("01.02", Priority.P3, persons=2)
    assert case.state.level == Level.GRID
    # the departments claim and go on site, but nobody resolves it
    case.do(C.Claim, T0 + timedelta(hours=1), assignment_id="A1", department="sifa")
    case.do(C.Claim, T0 + timedelta(hours=1), assignment_id="A2", department="township")
    case.do(C.ReportOnSite, T0 + timedelta(hours=2), assignment_id="A1", department="sifa")
    ladder = [
        e
        for e in fire_all(case, T0 + timedelta(days=8))
        if isinstance(e, E.Escalated | E.Supervised) and "四级七天" in e.reason
    ]
    assert [(type(e).__name__, e.at - T0) for e in ladder] == [
        ("Escalated", timedelta(days=2)),
        ("Escalated", timedelta(days=4)),
        ("Supervised", timedelta(days=7)),
    ]
    assert [e.to_level for e in ladder[:2]] == [Level.COMMUNITY, Level.TOWNSHIP]
    assert ladder[2].level == Level.COUNTY and ladder[2].region == "371502"


def test_ladder_stops_when_the_case_is_handled() -> None:
    case = open_case("01.02", Priority.P3, persons=2)
    case.do(C.Claim, T0, assignment_id="A1", department="sifa")
    case.do(C.Claim, T0, assignment_id="A2", department="township")
    case.do(C.SupportDone, T0 + timedelta(hours=2), assignment_id="A2", department="township")
    case.do(
        C.Handle, T0 + timedelta(hours=3), assignment_id="A1", department="sifa", outcome="调解成功"
    )
    assert case.state.clock("case.ladder") is None
    assert not [e for e in fire_all(case, T0 + timedelta(days=8)) if isinstance(e, E.Escalated)]


def test_red_card_supervision_then_takeover() -> None:
    case = open_case("05.03", Priority.P3)
    # nobody claims: accept is due Tue 09:00; yellow at 80 %, red, then +1 working day → take-over
    fired = fire_all(case, T0 + timedelta(days=2, hours=1))
    kinds = [(type(e).__name__, getattr(e, "assignment_id", ""), e.at) for e in fired]
    assert ("YellowCard", "A1", T0 + timedelta(hours=19, minutes=12)) in kinds
    assert ("RedCard", "A1", T0 + timedelta(days=1)) in kinds
    sup = [e for e in fired if isinstance(e, E.Supervised)]
    assert sup and sup[0].level == Level.COMMUNITY  # the case is coordinated at the grid
    takeovers = [e for e in fired if isinstance(e, E.Escalated)]
    assert takeovers[0].at == T0 + timedelta(days=2) and takeovers[0].to_level == Level.COMMUNITY
    assert "吹哨" in takeovers[0].reason
    alerts = alert_messages(case.state, fired)
    assert {"red_card", "supervision", "escalation"} <= {a["kind"] for a in alerts}


def test_p1_open_alert_fans_out() -> None:
    case = open_case("07.01", Priority.P1)
    alerts = alert_messages(case.state, case.events)
    assert alerts[0]["kind"] == "serious_case"
    assert [c["level"] for c in alerts[0]["centers"]] == ["township", "county", "city"]


def test_the_case_starts_at_triage_entry_level_but_never_deeper_than_known() -> None:
    case = open_case("03.07", Priority.P1, entry=Level.COUNTY)  # triage put weapons one level up
    assert case.state.level == Level.COUNTY and case.state.region_code == "371502"
    coarse = open_case("05.03", Priority.P3, entry=Level.GRID, region="371502004")
    assert coarse.state.level == Level.TOWNSHIP


def test_recurrence_flags_a_hot_spot_and_keeps_triage_priority() -> None:
    case = Case()
    event = Event(
        event_id="grid:r9", source=Source.GRID, source_id="r9", occurred_at=T0, reported_at=T0
    )
    case.do(
        C.OpenCase,
        T0,
        event=event,
        location=Location(method="grid_code", region_code=GRID, level=Level.GRID, grid_code=GRID),
        classification=Classification(category="05.03", name="x", confidence=0.9, rule="t"),
        priority=PriorityDecision(priority=Priority.P2, reasons=("hot_spot:3x/30d+1=P2",)),
        routing=Routing(lead="chengguan", entry_level=Level.GRID),
        recurrences=2,
    )
    assert case.state.priority == Priority.P2 and case.state.hot_spot  # not raised twice
    assert case.state.terms.accept == Budget(1800)


def test_deescalation_only_by_the_current_level_with_a_reason() -> None:
    from streams.errors import TransitionRejected

    case = open_case("05.03", Priority.P3)
    case.do(C.Escalate, T0, reason="spans two communities")
    assert case.state.level == Level.COMMUNITY
    with pytest.raises(TransitionRejected, match="only the dispatcher of 371502004003"):
        case.do(C.Deescalate, T0, by_region="371502004", level=Level.GRID, reason="small")
    with pytest.raises(TransitionRejected, match="needs a reason"):
        case.do(C.Deescalate, T0, by_region="371502004003", level=Level.GRID, reason=" ")
    case.do(
        C.Deescalate, T0, by_region="371502004003", level=Level.GRID, reason="one household only"
    )
    assert case.state.level == Level.GRID
    assert isinstance(case.events[-1], E.Deescalated)
