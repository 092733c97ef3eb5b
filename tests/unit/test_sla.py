"""SLA table (时限) as data, deadlines, yellow cards, pause/resume and extension."""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta
from pathlib import Path

import msgspec
import pytest
from msgspec.structs import replace

from streams.calendar import WorkCalendar, load_calendar
from streams.errors import RulesError
from streams.records import Priority
from streams.sla import (
    Budget,
    Stage,
    Step,
    clock_add,
    deadline,
    extend_clock,
    extension_limit,
    is_rural,
    load_sla_policy,
    parse_budget,
    pause_clock,
    resume_clock,
    start_clock,
    terms_for,
    yellow_card,
)
from streams.zone import TZ

RULES = Path(__file__).resolve().parents[2] / "rules"
WED = datetime(2026, 9, 30, 16, tzinfo=TZ)  # the day before National Day
H, D, WD = 3_600, 86_400, 86_400


def at(m: int, d: int, hh: int = 0, mm: int = 0, y: int = 2026) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=TZ)


@pytest.fixture(scope="module")
def cal() -> WorkCalendar:
    return load_calendar(RULES)


@pytest.fixture(scope="module")
def policy():
    return load_sla_policy(RULES)


# -- the table -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("priority", "category", "rural", "step", "budget"),
    [
        (Priority.P1, "07.01", False, Step.ACCEPT, Budget(5 * 60)),
        (Priority.P1, "07.01", False, Step.ON_SITE, Budget(15 * 60)),
        (Priority.P1, "07.01", True, Step.ON_SITE, Budget(30 * 60)),
        (Priority.P1, "07.01", False, Step.FIRST_CONTROL, Budget(2 * H)),
        (Priority.P1, "07.01", False, Step.RESOLVE, Budget(24 * H)),
        (Priority.P1, "07.01", False, Step.PROGRESS, Budget(2 * H)),
        (Priority.P2, "06.01", False, Step.ACCEPT, Budget(30 * 60)),
        (Priority.P2, "06.01", False, Step.ON_SITE, Budget(2 * H)),
        (Priority.P2, "06.01", False, Step.RESOLVE, Budget(24 * H)),  # utilities
        (Priority.P2, "01.02", False, Step.RESOLVE, Budget(3 * D)),  # otherwise
        (Priority.P2, "01.02", False, Step.PROGRESS, Budget(24 * H)),
        (Priority.P3, "05.03", False, Step.ACCEPT, Budget(1 * WD, True)),
        (Priority.P3, "05.03", False, Step.ON_SITE, Budget(2 * WD, True)),
        (Priority.P3, "05.03", True, Step.ON_SITE, Budget(2 * WD, True)),
        (Priority.P3, "05.03", False, Step.RESOLVE, Budget(5 * WD, True)),
        (Priority.P3, "05.03", False, Step.FEEDBACK, Budget(1 * WD, True)),
        (Priority.P3, "05.03", False, Step.FIRST_CONTROL, None),
        (Priority.P4, "09.01", False, Step.ACCEPT, Budget(1 * WD, True)),
        (Priority.P4, "09.01", False, Step.ON_SITE, Budget(5 * WD, True)),
        (Priority.P4, "09.01", False, Step.RESOLVE, Budget(15 * WD, True)),
        (Priority.P4, "01.07", False, Step.RESOLVE, Budget(30 * D)),  # mediation: one month
        (Priority.P4, "02.02", False, Step.RESOLVE, Budget(60 * D)),  # petitions: 60 days
        (Priority.P4, "09.01", False, Step.PROGRESS, Budget(5 * WD, True)),
    ],
)
def test_budgets(policy, priority, category, rural, step, budget) -> None:
    assert terms_for(policy, priority, category, rural=rural).budget(step) == budget


@pytest.mark.parametrize(
    ("priority", "window"),
    [
        (Priority.P1, Budget(30 * 60)),
        (Priority.P2, Budget(30 * 60)),
        (Priority.P3, Budget(2 * WD, True)),
        (Priority.P4, Budget(2 * WD, True)),
    ],
)
def test_return_window(policy, priority, window) -> None:
    assert terms_for(policy, priority, "05.03").return_window == window


def test_terms_are_small_and_carry_the_policy_version(policy) -> None:
    terms = terms_for(policy, Priority.P3, "05.03")
    assert terms.version == policy.version and len(policy.version) == 12
    assert terms.yellow_at == 0.8
    assert len(msgspec.msgpack.encode(terms)) < 80


def test_is_rural() -> None:
    assert not is_rural("371502004003007")  # 004: a street (街道)
    assert is_rural("371502104003007")  # 104: a town (镇)
    assert is_rural("371502201")  # 201: a township (乡)
    assert not is_rural("371502")  # county only: the stricter city budget


# -- deadlines and yellow cards --------------------------------------------------------


@pytest.mark.parametrize(
    ("priority", "category", "step", "start", "due", "warn"),
    [
        (
            Priority.P1,
            "07.01",
            Step.ACCEPT,
            WED,
            WED + timedelta(minutes=5),
            WED + timedelta(minutes=4),
        ),
        (
            Priority.P1,
            "07.01",
            Step.RESOLVE,
            WED,
            at(10, 1, 16),
            at(10, 1, 11, 12),
        ),  # wall clock: holidays count
        (Priority.P2, "01.02", Step.RESOLVE, WED, at(10, 3, 16), at(10, 3, 1, 36)),
        (Priority.P3, "05.03", Step.ACCEPT, WED, at(10, 8, 16), at(10, 8, 11, 12)),
        (Priority.P3, "05.03", Step.ACCEPT, at(9, 19, 10), at(9, 21), at(9, 20, 19, 12)),
        # 5 working days from Wed 30 Sep 16:00: 8,9,10(Sat, worked),12,13 Oct
        (Priority.P3, "05.03", Step.RESOLVE, WED, at(10, 13, 16), at(10, 12, 16)),
        # 15 working days: Oct 8,9,10,12..16,19..23,26,27 → 27 Oct
        (Priority.P4, "09.01", Step.RESOLVE, WED, at(10, 27, 16), at(10, 22, 16)),
    ],
)
def test_deadline_and_yellow(cal, policy, priority, category, step, start, due, warn) -> None:
    terms = terms_for(policy, priority, category)
    budget = terms.budget(step)
    assert deadline(cal, start, budget) == due
    assert yellow_card(cal, start, budget, terms.yellow_at) == warn


def test_yellow_is_measured_on_working_time(cal) -> None:
    budget = Budget(5 * WD, True)
    warn = yellow_card(cal, WED, budget, 0.8)
    assert cal.working_between(WED, warn) == timedelta(days=4)
    assert cal.working_between(WED, deadline(cal, WED, budget)) == timedelta(days=5)


def _clock(cal, budget: Budget, start: datetime = WED, over: Budget | None = None):
    return start_clock(
        cal,
        step=Step.RESOLVE,
        start=start,
        budget=budget,
        yellow_at=0.8,
        over_after=over,
        assignment="A1",
    )


def test_clock_stages(cal) -> None:
    clock = _clock(cal, Budget(5 * WD, True), over=Budget(1 * WD, True))
    assert [(s, t) for s, t in clock.stages()] == [
        (Stage.YELLOW, at(10, 12, 16)),
        (Stage.RED, at(10, 13, 16)),
        (Stage.OVER, at(10, 14, 16)),
    ]
    fired = replace(clock, fired=Stage.YELLOW)
    assert [s for s, _ in fired.stages()] == [Stage.RED, Stage.OVER]


def test_the_next_stage_is_the_first_of_the_stages(cal) -> None:
    clock = _clock(cal, Budget(5 * WD, True), over=Budget(1 * WD, True))
    for fired in range(8):  # every combination of yellow, red and over fired
        for variant in (clock, replace(clock, warn=None), replace(clock, over=None)):
            fired_clock = replace(variant, fired=fired)
            stages = fired_clock.stages()
            assert fired_clock.next_at() == (stages[0][1] if stages else None), fired
    assert pause_clock(clock, WED).next_at() is None


# -- pause and resume (挂起) -------------------------------------------------------------


def test_pause_resume_on_the_wall_clock(cal) -> None:
    clock = _clock(cal, Budget(30 * 60), start=WED)
    paused = pause_clock(clock, WED + timedelta(minutes=10))
    assert paused.stages() == []
    assert (
        pause_clock(paused, WED + timedelta(minutes=20)) is paused
    )  # pausing twice keeps the first
    resumed = resume_clock(cal, paused, WED + timedelta(minutes=25))
    assert resumed.paused is None
    assert resumed.due == clock.due + timedelta(minutes=15)
    assert resumed.warn == clock.warn + timedelta(minutes=15)


def test_pause_resume_on_the_working_clock_counts_only_working_time(cal) -> None:
    clock = _clock(cal, Budget(5 * WD, True), start=at(10, 8, 9))
    assert clock.due == at(10, 14, 9)  # 9, 10 (Saturday, worked), 12, 13, 14 October
    # paused Fri 9 Oct 18:00 → Mon 12 Oct 09:00: 6 h Fri + 24 h Sat 10 Oct (worked) + 9 h Mon
    resumed = resume_clock(cal, pause_clock(clock, at(10, 9, 18)), at(10, 12, 9))
    assert cal.working_between(clock.due, resumed.due) == timedelta(hours=39)
    assert resumed.due == clock_add(cal, clock.due, Budget(39 * H, True))
    assert resumed.due == at(10, 16)  # Wed 14 09:00 + 15 h = Thu 15 00:00, + 24 h = Fri 16 00:00


def test_pause_over_a_holiday_costs_nothing_on_working_days(cal) -> None:
    clock = _clock(cal, Budget(5 * WD, True), start=WED)
    resumed = resume_clock(cal, pause_clock(clock, at(10, 1, 9)), at(10, 7, 20))
    assert resumed.due == clock.due


# -- extension (延期) --------------------------------------------------------------------


def test_extension_moves_red_and_yellow(cal) -> None:
    clock = _clock(cal, Budget(5 * WD, True), over=Budget(1 * WD, True))
    longer = extend_clock(cal, clock, Budget(5 * WD, True), yellow_at=0.8, now=WED)
    assert longer.budget == Budget(10 * WD, True)
    assert longer.extended == 1
    assert cal.working_between(WED, longer.due) == timedelta(days=10)
    assert cal.working_between(WED, longer.warn) == timedelta(days=8)
    assert cal.working_between(longer.due, longer.over) == timedelta(days=1)


def test_extension_after_a_red_card_may_fire_again(cal) -> None:
    clock = _clock(cal, Budget(5 * WD, True))
    red = replace(clock, fired=Stage.YELLOW | Stage.RED)
    longer = extend_clock(
        cal, red, Budget(2 * WD, True), yellow_at=0.8, now=clock.due + timedelta(hours=1)
    )
    assert longer.fired == 0  # both new instants are ahead


@pytest.mark.parametrize(
    ("priority", "category", "limit"),
    [
        (Priority.P3, "05.03", Budget(5 * WD, True)),  # ≤ the original 5 working days
        (Priority.P4, "09.01", Budget(10 * WD, True)),  # ≤ 10 working days
        (Priority.P4, "01.07", Budget(10 * WD)),  # 30 calendar days: 10 days at most
        (Priority.P2, "06.01", Budget(24 * H)),  # ≤ the original 24 h
    ],
)
def test_extension_limit(cal, policy, priority, category, limit) -> None:
    terms = terms_for(policy, priority, category)
    assert terms.extension_times == 1
    assert extension_limit(terms, _clock(cal, terms.resolve)) == limit


# -- durations and loading -------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "budget", "human"),
    [
        ("5m", Budget(300), "5 min"),
        ("2h", Budget(7200), "2 h"),
        ("3d", Budget(3 * D), "3 days"),
        ("1wd", Budget(WD, True), "1 working day"),
        ("15wd", Budget(15 * WD, True), "15 working days"),
        ("0.5wd", Budget(WD // 2, True), "0.5 working days"),
    ],
)
def test_parse_budget(text, budget, human) -> None:
    assert parse_budget(text) == budget
    assert budget.human() == human
    assert parse_budget(str(budget)) == budget


@pytest.mark.parametrize("text", ["5", "five days", "3 weeks", "-1d", ""])
def test_parse_budget_rejects(text) -> None:
    with pytest.raises(ValueError):
        parse_budget(text)


def _rules(tmp_path: Path, old: str, new: str) -> Path:
    shutil.copy(RULES / "sla.toml", tmp_path / "sla.toml")
    text = (tmp_path / "sla.toml").read_text(encoding="utf-8")
    assert old in text
    (tmp_path / "sla.toml").write_text(text.replace(old, new, 1), encoding="utf-8")
    return tmp_path


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ('accept = "5m"', 'accept = "5 minutes"', "priority.P1.accept"),
        ('accept = "5m"', 'accept = "0m"', "priority.P1.accept"),
        ('accept = "5m"', 'acept = "5m"', "priority.P1.acept"),
        ("[priority.P4]  # 复杂", "[priority.P5]", "priority.P4.accept"),
        ("yellow_at = 0.8", "yellow_at = 1.5", "yellow_at"),
        ('on_site = "dispatch"', 'on_site = "later"', "clock_start.on_site"),
        ("max_times = 1", "max_times = -1", "extension.max_times"),
        ('"06" = "24h"', '"6" = "24h"', "priority.P2.resolve_by_category.6"),
        ('return_window = "30m"', 'return_windows = "30m"', "priority.P1.return_windows"),
    ],
)
def test_load_errors_name_file_and_key(tmp_path, old, new, key) -> None:
    with pytest.raises(RulesError) as info:
        load_sla_policy(_rules(tmp_path, old, new))
    assert info.value.reason.startswith("sla.toml: ")
    assert info.value.field == key


def test_missing_file(tmp_path) -> None:
    with pytest.raises(RulesError, match="sla.toml"):
        load_sla_policy(tmp_path)


def test_clock_start_on_accept(tmp_path) -> None:
    policy = load_sla_policy(_rules(tmp_path, 'resolve = "dispatch"', 'resolve = "accept"'))
    assert terms_for(policy, Priority.P3, "05.03").start_on_accept == (Step.RESOLVE,)


def test_edited_rules_change_new_terms_only(tmp_path, policy) -> None:
    frozen = terms_for(policy, Priority.P3, "05.03")
    edited = load_sla_policy(_rules(tmp_path, 'resolve = "5wd"', 'resolve = "7wd"'))
    assert terms_for(edited, Priority.P3, "05.03").resolve == Budget(7 * WD, True)
    assert frozen.resolve == Budget(5 * WD, True)
    assert edited.version != policy.version
