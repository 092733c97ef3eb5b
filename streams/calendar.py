"""Mainland China's working-day calendar (工作日), for SLA clocks on working days.

A date is a working day unless it is a public holiday; weekends are off unless
they are make-up working days (调休). The official schedule comes from the
``chinesecalendar`` package; the operator's ``calendar_override.toml`` adds or
corrects dates. A year the package does not cover falls back to Monday–Friday
(plus the override) and is reported once per year as a :class:`CalendarGap`,
through the ``on_gap`` callback and :attr:`WorkCalendar.gaps`, for the caller
to log and count — unless the override file declares the year complete.

Working time: each working day counts 24 h (00:00–24:00 Asia/Shanghai), other
days count nothing. So adding N working days lands on the same time of day N
working days later, and an instant on a non-working day first moves to 00:00 of
the next working day (docs/domain.md §4). A budget that runs out exactly at the end
of a working day ends at 00:00 of the *next working day*, never on a holiday::

    Wed 30 Sep 2026 16:00 + 1 working day = Thu 8 Oct 2026 16:00
    Sat 19 Sep 2026 10:00 + 1 working day = Mon 21 Sep 2026 00:00  (Sun 20 Sep is worked)

All results are aware datetimes in Asia/Shanghai; naive inputs are rejected.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Mapping
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from pathlib import Path

import msgspec

from streams.errors import RulesError
from streams.zone import TZ

DAY = timedelta(days=1)
DAY_SECONDS = 86_400
OVERRIDE_FILE = "calendar_override.toml"

_ONE = timedelta(days=1)


class CalendarGap(msgspec.Struct, frozen=True, kw_only=True):
    """A year the official data does not cover: the calendar used Monday–Friday
    plus the override file for it. Log it and count it; add the year's holidays
    and make-up days to the override file when the State Council publishes them
    (each November for the next year)."""

    year: int
    reason: str


class CalendarOverride(msgspec.Struct, frozen=True, kw_only=True):
    """Operator corrections: extra holidays (放假) and make-up working days (调休)."""

    holidays: Mapping[date, str] = {}
    workdays: Mapping[date, str] = {}
    complete_years: frozenset[int] = frozenset()  # years fully described here: no gap warning


def _official() -> tuple[Callable[[date], bool] | None, range]:
    """The package's ``is_workday`` and the years it covers (empty if absent)."""
    try:
        import chinese_calendar
        from chinese_calendar import constants
    except ImportError:  # pragma: no cover - the package is a declared dependency
        return None, range(0)
    years = [d.year for d in constants.holidays] + [d.year for d in constants.workdays]
    return chinese_calendar.is_workday, range(min(years), max(years) + 1)


class WorkCalendar:
    """Working days and working-time arithmetic, cached per date.

    ``use_official=False`` ignores the package (tests of the fallback path).
    """

    def __init__(
        self,
        override: CalendarOverride | None = None,
        *,
        on_gap: Callable[[CalendarGap], None] | None = None,
        use_official: bool = True,
    ) -> None:
        self.override = override or CalendarOverride()
        self.on_gap = on_gap
        self._is_workday, self.official_years = _official() if use_official else (None, range(0))
        self.gaps: dict[int, CalendarGap] = {}
        self._days: dict[date, bool] = {}
        # per-instance memo of "n-th next working day" (deadlines cluster on few dates)
        self.nth_working_day = lru_cache(maxsize=65_536)(self._nth_working_day)

    # -- days --------------------------------------------------------------------------

    def is_working_day(self, day: date) -> bool:
        """True for a working day (工作日), make-up days (调休) included."""
        known = self._days.get(day)
        if known is None:
            known = self._days[day] = self._lookup(day)
        return known

    def _lookup(self, day: date) -> bool:
        if day in self.override.holidays:
            return False
        if day in self.override.workdays:
            return True
        if self._is_workday is not None and day.year in self.official_years:
            return bool(self._is_workday(day))
        self._gap(day.year)
        return day.weekday() < 5

    def _gap(self, year: int) -> None:
        if year in self.gaps or year in self.override.complete_years:
            return
        covered = (
            f"{self.official_years.start}–{self.official_years.stop - 1}"
            if self.official_years
            else "no years"
        )
        gap = CalendarGap(
            year=year,
            reason=(
                f"no official holiday data for {year} (chinesecalendar covers {covered}); "
                f"using Monday–Friday plus {OVERRIDE_FILE}"
            ),
        )
        self.gaps[year] = gap
        if self.on_gap is not None:
            self.on_gap(gap)

    def next_working_day(self, day: date) -> date:
        """The first working day strictly after ``day``."""
        day += _ONE
        while not self.is_working_day(day):
            day += _ONE
        return day

    def _nth_working_day(self, day: date, n: int) -> date:
        for _ in range(n):
            day = self.next_working_day(day)
        return day

    def working_days_between(self, first: date, last: date) -> int:
        """Working days in ``[first, last)``."""
        count, day = 0, first
        while day < last:
            count += self.is_working_day(day)
            day += _ONE
        return count

    # -- instants ----------------------------------------------------------------------

    def add_working(self, start: datetime, amount: timedelta) -> datetime:
        """``start`` plus ``amount`` of working time (the inverse of :meth:`working_between`).

        The result always lies on a working day; see the module docstring.
        """
        if amount < _ZERO:
            raise ValueError(f"negative working time: {amount}")
        day, into = _split(start)
        if not self.is_working_day(day):
            day, into = self.next_working_day(day), _ZERO
        if into + amount < DAY:
            return _join(day, into + amount)
        amount -= DAY - into
        whole, rest = divmod(amount, DAY)
        return _join(self.nth_working_day(day, whole + 1), rest)

    def add_working_days(self, start: datetime, days: int) -> datetime:
        """Same time of day on the ``days``-th next working day (docs/domain.md §4)."""
        return self.add_working(start, days * DAY)

    def working_between(self, start: datetime, end: datetime) -> timedelta:
        """Working time elapsed from ``start`` to ``end`` (zero if ``end`` is earlier)."""
        if end <= start:
            return _ZERO
        a_day, a_into = _split(start)
        b_day, b_into = _split(end)
        if a_day == b_day:
            return b_into - a_into if self.is_working_day(a_day) else _ZERO
        total = (DAY - a_into) if self.is_working_day(a_day) else _ZERO
        total += DAY * self.working_days_between(a_day + _ONE, b_day)
        if self.is_working_day(b_day):
            total += b_into
        return total


_ZERO = timedelta(0)
_MIDNIGHT = time()


def _split(moment: datetime) -> tuple[date, timedelta]:
    """(local date, time into that day) of an aware instant, in Asia/Shanghai."""
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment.isoformat()}: give a timezone")
    local = moment if moment.tzinfo is TZ else moment.astimezone(TZ)
    into = timedelta(0, local.hour * 3600 + local.minute * 60 + local.second, local.microsecond)
    return local.date(), into


def _join(day: date, into: timedelta) -> datetime:
    # Asia/Shanghai has kept UTC+08:00 without daylight saving since 1991, before
    # any year the official data covers, so wall-clock addition is exact.
    return datetime.combine(day, _MIDNIGHT, TZ) + into


# -- loading ---------------------------------------------------------------------------


def load_override(path: Path) -> CalendarOverride:
    """Read ``calendar_override.toml``; a missing file means no overrides.

    Format::

        complete_years = [2027]          # optional: these years are fully listed below
        [holidays]
        2027-01-01 = "元旦"
        [workdays]
        2027-02-07 = "春节调休"
    """
    if not path.exists():
        return CalendarOverride()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise RulesError(f"{path.name}: not valid TOML: {exc}", field=path.name) from exc
    unknown = set(data) - {"holidays", "workdays", "complete_years"}
    if unknown:
        raise RulesError(f"{path.name}: unknown key(s) {sorted(unknown)}", field=path.name)
    holidays = _dates(path.name, "holidays", data.get("holidays", {}))
    workdays = _dates(path.name, "workdays", data.get("workdays", {}))
    both = sorted(set(holidays) & set(workdays))
    if both:
        raise RulesError(
            f"{path.name}: {both[0].isoformat()} is both a holiday and a workday",
            field=f"workdays.{both[0].isoformat()}",
        )
    years = data.get("complete_years", [])
    if not isinstance(years, list) or not all(isinstance(y, int) for y in years):
        raise RulesError(
            f"{path.name}: complete_years must be a list of years", field="complete_years"
        )
    return CalendarOverride(holidays=holidays, workdays=workdays, complete_years=frozenset(years))


def _dates(file: str, table: str, raw: object) -> dict[date, str]:
    if not isinstance(raw, dict):
        raise RulesError(f"{file}: [{table}] must be a table of date = name", field=table)
    out: dict[date, str] = {}
    for key, name in raw.items():
        try:
            day = date.fromisoformat(str(key))
        except ValueError:
            raise RulesError(
                f"{file}: {table}.{key} is not a YYYY-MM-DD date", field=f"{table}.{key}"
            ) from None
        if not isinstance(name, str):
            raise RulesError(
                f"{file}: {table}.{key} must be a name (string)", field=f"{table}.{key}"
            )
        out[day] = name
    return out


def load_calendar(
    rules_dir: Path | str, *, on_gap: Callable[[CalendarGap], None] | None = None
) -> WorkCalendar:
    """The working-day calendar: official data plus ``rules_dir/calendar_override.toml``."""
    return WorkCalendar(load_override(Path(rules_dir) / OVERRIDE_FILE), on_gap=on_gap)
