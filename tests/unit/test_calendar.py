"""The working-day calendar (工作日): holidays, make-up days (调休), fallback, arithmetic."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.calendar import CalendarGap, WorkCalendar, load_calendar, load_override
from streams.errors import RulesError
from streams.zone import TZ

RULES = Path(__file__).resolve().parents[2] / "rules"


def at(y: int, m: int, d: int, hh: int = 0, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=TZ)


@pytest.fixture(scope="module")
def cal() -> WorkCalendar:
    return load_calendar(RULES)


# -- days ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "working"),
    [
        (date(2026, 9, 20), True),  # Sunday, make-up day for National Day
        (date(2026, 10, 10), True),  # Saturday, make-up day
        (date(2026, 10, 1), False),
        (date(2026, 10, 7), False),
        (date(2026, 10, 8), True),
        (date(2026, 9, 19), False),  # an ordinary Saturday
        (date(2026, 2, 14), True),  # Saturday, make-up day for Spring Festival
        (date(2026, 2, 15), False),
        (date(2026, 2, 23), False),  # Spring Festival holiday, a Monday
        (date(2026, 2, 24), True),
        (date(2026, 2, 28), True),  # Saturday, make-up day
        (date(2026, 3, 1), False),  # Sunday
    ],
)
def test_official_days(cal: WorkCalendar, day: date, working: bool) -> None:
    assert cal.is_working_day(day) is working


# -- docs/domain.md §4 examples -------------------------------------------------------------


def test_p3_dispatched_before_national_day(cal: WorkCalendar) -> None:
    assert cal.add_working_days(at(2026, 9, 30, 16), 1) == at(2026, 10, 8, 16)


def test_start_on_a_saturday_moves_to_midnight_of_the_next_working_day(cal: WorkCalendar) -> None:
    # Sunday 20 September is worked: 00:00 Sunday + 1 working day = Monday 00:00
    assert cal.add_working_days(at(2026, 9, 19, 10), 1) == at(2026, 9, 21)


def test_spring_festival(cal: WorkCalendar) -> None:
    assert cal.add_working_days(at(2026, 2, 13, 10), 1) == at(
        2026, 2, 14, 10
    )  # onto the make-up Saturday
    assert cal.add_working_days(at(2026, 2, 14, 10), 1) == at(2026, 2, 24, 10)
    assert cal.add_working_days(at(2026, 2, 14, 10), 5) == at(
        2026, 2, 28, 10
    )  # 24,25,26,27,28(Sat)
    assert cal.add_working_days(at(2026, 2, 16, 9), 1) == at(2026, 2, 25, 0)


def test_budget_ending_at_midnight_lands_on_the_next_working_day(cal: WorkCalendar) -> None:
    # Wed 30 Sep 00:00 + 1 working day = end of Wed = 00:00 of the next working day (8 Oct)
    assert cal.add_working_days(at(2026, 9, 30), 1) == at(2026, 10, 8)


def test_zero_on_a_holiday_moves_to_the_next_working_day(cal: WorkCalendar) -> None:
    assert cal.add_working(at(2026, 10, 3, 12), timedelta(0)) == at(2026, 10, 8)
    assert cal.add_working(at(2026, 10, 8, 12), timedelta(0)) == at(2026, 10, 8, 12)


def test_results_are_local_and_aware(cal: WorkCalendar) -> None:
    start = datetime(2026, 9, 30, 8, tzinfo=UTC)  # 16:00 in Shanghai
    assert cal.add_working_days(start, 1) == at(2026, 10, 8, 16)
    assert cal.add_working_days(start, 1).utcoffset() == timedelta(hours=8)
    with pytest.raises(ValueError, match="naive"):
        cal.add_working_days(datetime(2026, 9, 30, 16), 1)


# -- working time elapsed and its inverse ----------------------------------------------


def test_working_between(cal: WorkCalendar) -> None:
    assert cal.working_between(at(2026, 9, 30, 16), at(2026, 10, 8, 16)) == timedelta(days=1)
    assert cal.working_between(at(2026, 10, 1, 9), at(2026, 10, 7, 18)) == timedelta(0)
    assert cal.working_between(at(2026, 9, 30, 16), at(2026, 9, 30, 18)) == timedelta(hours=2)
    assert cal.working_between(at(2026, 10, 8, 16), at(2026, 9, 30, 16)) == timedelta(0)
    # 80 % of one working day from Wed 16:00: 8 h on Wed + 11.2 h on Thu 8 Oct
    assert cal.add_working(at(2026, 9, 30, 16), timedelta(hours=19.2)) == at(2026, 10, 8, 11, 12)


instants = st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2026, 12, 1)).map(
    lambda d: d.replace(second=0, microsecond=0, tzinfo=TZ)
)


@settings(max_examples=300, deadline=None)
@given(start=instants, minutes=st.integers(0, 60 * 24 * 40))
def test_add_working_inverts_working_between(
    cal: WorkCalendar, start: datetime, minutes: int
) -> None:
    amount = timedelta(minutes=minutes)
    end = cal.add_working(start, amount)
    assert end >= start
    assert cal.is_working_day(end.date())
    assert cal.working_between(start, end) == amount


@settings(max_examples=300, deadline=None)
@given(start=instants, days=st.integers(0, 30))
def test_add_working_days_is_the_day_rule(cal: WorkCalendar, start: datetime, days: int) -> None:
    """Same time of day on the N-th next working day; a non-working start first
    moves to 00:00 of the next working day."""
    local = start.astimezone(TZ)
    day, clock = local.date(), local.timetz()
    if not cal.is_working_day(day):
        day, clock = cal.next_working_day(day), datetime.min.time().replace(tzinfo=TZ)
    for _ in range(days):
        day = cal.next_working_day(day)
    assert cal.add_working_days(start, days) == datetime.combine(day, clock)


# -- a year without data: fallback and override ----------------------------------------
#
# chinesecalendar 1.11 covers 2004–2026; 2027 raises NotImplementedError inside the
# package. The calendar then uses Monday–Friday plus calendar_override.toml and
# reports a CalendarGap once per year, unless the override declares the year complete.

DEC = at(2026, 12, 14, 9)  # Monday; 15 working days run into 2027


def test_deadline_into_an_uncovered_year_falls_back_to_weekdays_and_reports_it() -> None:
    gaps: list[CalendarGap] = []
    cal = WorkCalendar(on_gap=gaps.append)
    # Dec 15–31: 13 working days; Fri 1 Jan 2027 counts (no data) = 14; Mon 4 Jan = 15
    assert cal.add_working_days(DEC, 15) == at(2027, 1, 4, 9)
    assert [g.year for g in gaps] == [2027]
    assert "2027" in gaps[0].reason and "Monday–Friday" in gaps[0].reason
    cal.add_working_days(at(2027, 3, 1), 10)
    assert len(gaps) == 1  # once per year
    assert set(cal.gaps) == {2027}


def test_override_file_fills_the_year(tmp_path: Path) -> None:
    (tmp_path / "calendar_override.toml").write_text(
        'complete_years = [2027]\n[holidays]\n2027-01-01 = "元旦"\n'
        '[workdays]\n2027-01-09 = "调休 (test)"\n',
        encoding="utf-8",
    )
    gaps: list[CalendarGap] = []
    cal = load_calendar(tmp_path, on_gap=gaps.append)
    assert not cal.is_working_day(date(2027, 1, 1))
    assert cal.is_working_day(date(2027, 1, 9))  # a Saturday made a working day
    assert cal.add_working_days(DEC, 15) == at(2027, 1, 5, 9)  # one day later than the fallback
    assert cal.add_working_days(at(2027, 1, 8, 9), 1) == at(2027, 1, 9, 9)
    assert gaps == []


def test_override_without_complete_year_still_reports(tmp_path: Path) -> None:
    (tmp_path / "calendar_override.toml").write_text(
        '[holidays]\n2027-01-01 = "元旦"\n', encoding="utf-8"
    )
    gaps: list[CalendarGap] = []
    cal = load_calendar(tmp_path, on_gap=gaps.append)
    assert cal.add_working_days(DEC, 15) == at(2027, 1, 5, 9)
    assert [g.year for g in gaps] == [2027]


def test_override_wins_over_official_data(tmp_path: Path) -> None:
    (tmp_path / "calendar_override.toml").write_text(
        '[holidays]\n2026-12-31 = "local"\n', encoding="utf-8"
    )
    cal = load_calendar(tmp_path)
    assert not cal.is_working_day(date(2026, 12, 31))
    assert cal.is_working_day(date(2026, 12, 30))


def test_fallback_without_the_package_data() -> None:
    cal = WorkCalendar(use_official=False)
    assert cal.is_working_day(date(2026, 10, 1))  # a Thursday, no data
    assert not cal.is_working_day(date(2026, 9, 20))  # a Sunday
    assert 2026 in cal.gaps


def test_missing_override_file_is_empty(tmp_path: Path) -> None:
    assert load_override(tmp_path / "calendar_override.toml").holidays == {}


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('[holidays]\n"2027-13-01" = "x"\n', "holidays.2027-13-01"),
        ('[holidays]\n2027-01-01 = "x"\n[workdays]\n2027-01-01 = "y"\n', "workdays.2027-01-01"),
        ("[holidays]\n2027-01-01 = 3\n", "holidays.2027-01-01"),
        ("extra = 1\n", "calendar_override.toml"),
        ('complete_years = "2027"\n', "complete_years"),
        ("[holidays\n", "calendar_override.toml"),
    ],
)
def test_override_errors_name_the_key(tmp_path: Path, text: str, key: str) -> None:
    (tmp_path / "calendar_override.toml").write_text(text, encoding="utf-8")
    with pytest.raises(RulesError) as info:
        load_calendar(tmp_path)
    assert "calendar_override.toml" in info.value.reason
    assert info.value.field == key


def test_shipped_override_loads() -> None:
    assert load_override(RULES / "calendar_override.toml").holidays == {}
