"""SLA clocks per priority and step (时限, docs/domain.md §4), from ``rules/sla.toml``.

A :class:`Budget` is an amount of time on one clock: the wall clock ("5m", "2h",
"3d") or the working-day calendar ("1wd" = one working day = 24 h of working
time). The unit in the rule file decides the clock, so a city can put any step
on either.

When a case opens, :func:`terms_for` freezes the budgets that apply to it into a
small :class:`Terms` record stored in the case, so later edits of the rule file
do not move deadlines of cases in flight. A running step is a :class:`Clock`:
its start, budget, and the instants it fires — yellow card (预警) at
``yellow_at`` of the budget, red card (超期) at the deadline, and optionally a
third instant after the deadline (escalation's take-over, 吹哨). Suspension
(挂起) pauses a clock; resuming extends every instant by the paused amount, on
the clock's own calendar. An approved extension (延期) moves the deadline.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from datetime import datetime, timedelta
from enum import IntFlag, StrEnum
from pathlib import Path
from typing import Any

import msgspec

from streams.calendar import DAY_SECONDS, WorkCalendar
from streams.errors import RulesError
from streams.records import Priority

SLA_FILE = "sla.toml"


class Step(StrEnum):
    """The clocked steps of a case."""

    ACCEPT = "accept"  # 签收, from dispatch
    ON_SITE = "on_site"  # 到场 (lead only)
    FIRST_CONTROL = "first_control"  # P1 初步控制 (lead only)
    RESOLVE = "resolve"  # 办结
    PROGRESS = "progress"  # 进展反馈, restarted by each progress report (lead only)
    FEEDBACK = "feedback"  # 反馈/核查 after the lead has handled, until the case closes
    LADDER = "ladder"  # 四级七天: how long the case may stay at its current level
    VERIFY = "verify"  # 核实: from opening until an operator registers or rejects the case


class Stage(IntFlag):
    """What a clock fires, as bits of ``Clock.fired``."""

    YELLOW = 1  # 黄牌 预警
    RED = 2  # 红牌 超期
    OVER = 4  # after the deadline: take-over (吹哨) or the ladder's climb


_YELLOW_BIT, _RED_BIT, _OVER_BIT = int(Stage.YELLOW), int(Stage.RED), int(Stage.OVER)
_STEPS: dict[str, Step] = {step.value: step for step in Step}


class Budget(msgspec.Struct, frozen=True, array_like=True):
    """An amount of time on one clock; ``seconds`` of working time when ``working``."""

    seconds: int
    working: bool = False

    def __str__(self) -> str:
        if self.working:
            days, rest = divmod(self.seconds, DAY_SECONDS)
            return f"{days}wd" if not rest else f"{self.seconds / DAY_SECONDS:g}wd"
        for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
            if self.seconds % size == 0:
                return f"{self.seconds // size}{unit}"
        return f"{self.seconds}s"

    def human(self) -> str:
        """For people: "2 working days", "30 min", "24 h", "3 days"."""
        if self.working:
            days = self.seconds / DAY_SECONDS
            return f"{days:g} working day{'s' if days != 1 else ''}"
        if self.seconds % 86_400 == 0:
            days = self.seconds // 86_400
            return f"{days} day{'s' if days != 1 else ''}"
        if self.seconds % 3_600 == 0:
            return f"{self.seconds // 3_600} h"
        return f"{self.seconds / 60:g} min"

    def scaled(self, ratio: float) -> Budget:
        return Budget(round(self.seconds * ratio), self.working)

    def plus(self, other: Budget) -> Budget:
        return Budget(self.seconds + other.seconds, self.working)


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|wd)\s*$")
_UNIT = {"s": 1, "m": 60, "h": 3_600, "d": 86_400, "wd": DAY_SECONDS}


def parse_budget(text: str) -> Budget:
    """``"30m"``, ``"2h"``, ``"3d"`` (wall clock) or ``"5wd"`` (working days)."""
    match = _DURATION.match(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"{text!r} is not a duration (e.g. 30m, 2h, 3d, 5wd)")
    amount, unit = float(match[1]), match[2]
    return Budget(round(amount * _UNIT[unit]), unit == "wd")


# -- the clock arithmetic --------------------------------------------------------------


def clock_add(calendar: WorkCalendar, start: datetime, budget: Budget) -> datetime:
    """``start`` + ``budget`` on the budget's own clock."""
    if budget.working:
        return calendar.add_working(start, timedelta(seconds=budget.seconds))
    return start + timedelta(seconds=budget.seconds)


def clock_elapsed(calendar: WorkCalendar, start: datetime, end: datetime, working: bool) -> Budget:
    """Time from ``start`` to ``end`` on one clock (working time when ``working``)."""
    if working:
        return Budget(int(calendar.working_between(start, end).total_seconds()), True)
    return Budget(max(0, int((end - start).total_seconds())), False)


def deadline(calendar: WorkCalendar, start: datetime, budget: Budget) -> datetime:
    """The red-card instant of a step started at ``start`` (超期)."""
    return clock_add(calendar, start, budget)


def yellow_card(calendar: WorkCalendar, start: datetime, budget: Budget, ratio: float) -> datetime:
    """The yellow-card instant (预警): ``ratio`` of the budget, on its own clock."""
    return clock_add(calendar, start, budget.scaled(ratio))


class Clock(msgspec.Struct, frozen=True, array_like=True):
    """One running step of a case or of an assignment, with the instants it fires.

    ``id`` is ``"<assignment>.<step>"`` or ``"case.<step>"`` (so the step and the
    assignment are not stored twice); ``fired`` holds the
    :class:`Stage` bits already fired; ``paused`` is set while suspended (挂起).
    """

    id: str
    start: datetime
    budget: Budget
    due: datetime
    warn: datetime | None = None
    over: datetime | None = None
    over_after: Budget | None = None  # what ``over`` was computed from
    fired: int = 0
    paused: datetime | None = None
    extended: int = 0  # approved extensions (延期)

    @property
    def step(self) -> Step:
        name = self.id.partition(".")[2]
        return _STEPS.get(name) or Step(name)  # a dict look-up: Step(name) is ~10x slower

    @property
    def assignment(self) -> str:
        """The assignment id, "" for a case-level clock."""
        owner = self.id.partition(".")[0]
        return "" if owner == "case" else owner

    def stages(self) -> list[tuple[Stage, datetime]]:
        """The stages still to fire, in order; none while paused."""
        if self.paused is not None:
            return []
        # plain int bits: IntFlag arithmetic makes a flag object per operation, and this
        # runs for every clock the timer index reads
        fired = int(self.fired)
        out = []
        for stage, bit, at in (
            (Stage.YELLOW, _YELLOW_BIT, self.warn),
            (Stage.RED, _RED_BIT, self.due),
            (Stage.OVER, _OVER_BIT, self.over),
        ):
            if at is not None and not fired & bit:
                out.append((stage, at))
        return out

    def next_at(self) -> datetime | None:
        """When the first of :meth:`stages` fires (None: none left or paused), without
        building the list: the timer index asks it of every clock of every case."""
        if self.paused is not None:
            return None
        fired = int(self.fired)
        if self.warn is not None and not fired & _YELLOW_BIT:
            return self.warn
        if not fired & _RED_BIT:
            return self.due
        if self.over is not None and not fired & _OVER_BIT:
            return self.over
        return None


def start_clock(
    calendar: WorkCalendar,
    *,
    step: Step,
    start: datetime,
    budget: Budget,
    yellow_at: float | None,
    over_after: Budget | None = None,
    assignment: str = "",
) -> Clock:
    """A new clock ``"<assignment>.<step>"`` (``"case.<step>"`` without one): yellow
    at ``yellow_at`` of the budget (None: no yellow card), red at the deadline, and
    ``over`` at deadline + ``over_after`` when given."""
    due = deadline(calendar, start, budget)
    return Clock(
        id=f"{assignment or 'case'}.{step}",
        start=start,
        budget=budget,
        due=due,
        warn=None if yellow_at is None else yellow_card(calendar, start, budget, yellow_at),
        over=None if over_after is None else clock_add(calendar, due, over_after),
        over_after=over_after,
    )


def pause_clock(clock: Clock, at: datetime) -> Clock:
    """Suspend (挂起): nothing fires until :func:`resume_clock`."""
    return clock if clock.paused is not None else msgspec.structs.replace(clock, paused=at)


def resume_clock(calendar: WorkCalendar, clock: Clock, at: datetime) -> Clock:
    """Resume: every instant moves later by the paused amount, on the clock's own calendar."""
    if clock.paused is None:
        return clock
    paused = clock_elapsed(calendar, clock.paused, at, clock.budget.working)

    def shift(moment: datetime | None) -> datetime | None:
        return None if moment is None else clock_add(calendar, moment, paused)

    return msgspec.structs.replace(
        clock,
        due=clock_add(calendar, clock.due, paused),
        warn=shift(clock.warn),
        over=shift(clock.over),
        paused=None,
    )


def extend_clock(
    calendar: WorkCalendar, clock: Clock, extra: Budget, *, yellow_at: float | None, now: datetime
) -> Clock:
    """Approved extension (延期): the budget grows by ``extra`` (same clock); the
    deadline moves by ``extra``, the yellow card by ``yellow_at`` of it. Stages
    whose new instant is still ahead may fire again."""
    due = clock_add(calendar, clock.due, extra)
    warn = clock.warn
    if warn is not None and yellow_at is not None:
        warn = clock_add(calendar, warn, extra.scaled(yellow_at))
    over = None if clock.over_after is None else clock_add(calendar, due, clock.over_after)
    fired = clock.fired
    for stage, at in ((Stage.YELLOW, warn), (Stage.RED, due), (Stage.OVER, over)):
        if at is not None and at > now:
            fired &= ~stage
    return msgspec.structs.replace(
        clock,
        budget=clock.budget.plus(extra),
        due=due,
        warn=warn,
        over=over,
        fired=fired,
        extended=clock.extended + 1,
    )


# -- the policy ------------------------------------------------------------------------


class PriorityRow(msgspec.Struct, frozen=True, kw_only=True):
    """One priority's row of the SLA table."""

    accept: Budget
    resolve: Budget
    return_window: Budget
    on_site: Budget | None = None
    on_site_rural: Budget | None = None
    first_control: Budget | None = None
    progress_every: Budget | None = None
    feedback: Budget | None = None
    verify: Budget | None = None
    resolve_by_category: dict[str, Budget] = {}
    yellow_at: float | None = None


class ExtensionRule(msgspec.Struct, frozen=True, kw_only=True):
    max_times: int = 1
    max: Budget = Budget(10 * DAY_SECONDS, True)
    at_most_original: bool = True


class SlaPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """The SLA table as loaded; ``version`` is a digest of the file."""

    priorities: dict[Priority, PriorityRow]
    yellow_at: float = 0.8
    start_on_accept: frozenset[Step] = frozenset()  # steps whose clock starts at 签收, not dispatch
    extension: ExtensionRule = ExtensionRule()
    version: str = ""


class Terms(msgspec.Struct, frozen=True, array_like=True):
    """The budgets frozen onto one case when it opens (or its priority changes)."""

    priority: Priority
    accept: Budget
    resolve: Budget
    return_window: Budget
    on_site: Budget | None = None
    first_control: Budget | None = None
    progress: Budget | None = None
    feedback: Budget | None = None
    yellow_permille: int = 800
    start_on_accept: tuple[Step, ...] = ()
    extension_times: int = 1
    extension_max: Budget = Budget(10 * DAY_SECONDS, True)
    extension_at_most_original: bool = True
    version: str = ""
    verify: Budget | None = None  # 核实, from opening (last: older stored terms decode without it)

    @property
    def yellow_at(self) -> float:
        return self.yellow_permille / 1000

    def budget(self, step: Step) -> Budget | None:
        return {
            Step.ACCEPT: self.accept,
            Step.ON_SITE: self.on_site,
            Step.FIRST_CONTROL: self.first_control,
            Step.RESOLVE: self.resolve,
            Step.PROGRESS: self.progress,
            Step.FEEDBACK: self.feedback,
            Step.VERIFY: self.verify,
        }.get(step)


def is_rural(region_code: str) -> bool:
    """True for a town (镇, 100–199) or township (乡, 200–399); streets (街道,
    001–099) and codes above township level count as city."""
    if len(region_code) < 9 or not region_code[:9].isdigit():
        return False
    return int(region_code[6:9]) >= 100


def _by_prefix(table: dict[str, Budget], category: str) -> Budget | None:
    """The entry with the longest prefix of ``category`` ("01" matches "01.07")."""
    best = None
    for prefix, budget in table.items():
        if category.startswith(prefix) and (best is None or len(prefix) > len(best[0])):
            best = (prefix, budget)
    return None if best is None else best[1]


def terms_for(
    policy: SlaPolicy, priority: Priority, category: str, *, rural: bool = False
) -> Terms:
    """Freeze the budgets for a case of ``priority`` and ``category``."""
    row = policy.priorities[priority]
    on_site = (row.on_site_rural or row.on_site) if rural else row.on_site
    yellow = row.yellow_at if row.yellow_at is not None else policy.yellow_at
    return Terms(
        priority=priority,
        accept=row.accept,
        resolve=_by_prefix(row.resolve_by_category, category) or row.resolve,
        return_window=row.return_window,
        on_site=on_site,
        first_control=row.first_control,
        progress=row.progress_every,
        feedback=row.feedback,
        yellow_permille=round(yellow * 1000),
        start_on_accept=tuple(sorted(policy.start_on_accept)),
        extension_times=policy.extension.max_times,
        extension_max=policy.extension.max,
        extension_at_most_original=policy.extension.at_most_original,
        version=policy.version,
        verify=row.verify,
    )


def extension_limit(terms: Terms, clock: Clock) -> Budget:
    """The largest extension allowed on ``clock``: ≤ the file's maximum (10 working
    days) and, by default, ≤ the original budget (compared in seconds of the
    clock's own kind)."""
    limit = terms.extension_max.seconds
    if terms.extension_at_most_original:
        limit = min(limit, clock.budget.seconds)
    return Budget(limit, clock.budget.working)


# -- loading ---------------------------------------------------------------------------

_ROW_BUDGETS = (
    "accept",
    "resolve",
    "return_window",
    "on_site",
    "on_site_rural",
    "first_control",
    "progress_every",
    "feedback",
    "verify",
)
_REQUIRED = ("accept", "resolve", "return_window")


def load_sla_policy(rules_dir: Path | str) -> SlaPolicy:
    """Load and validate ``rules_dir/sla.toml``; :class:`RulesError` names file and key."""
    path = Path(rules_dir) / SLA_FILE
    raw = read_toml(path)
    try:
        return _parse_policy(raw, hashlib.sha256(path.read_bytes()).hexdigest()[:12])
    except RuleKeyError as exc:
        raise RulesError(f"{SLA_FILE}: {exc.key}: {exc.problem}", field=exc.key) from None


class RuleKeyError(Exception):
    """A problem at one key of a rule file (shared by the rule loaders); the
    loader turns it into :class:`RulesError` naming the file."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key, self.problem = key, problem


def read_toml(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise RulesError(f"{path.name}: missing from the rules directory", field=path.name)
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise RulesError(f"{path.name}: not valid TOML: {exc}", field=path.name) from exc


def _key(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def rule_budget(raw: dict[str, Any], key: str, where: str) -> Budget | None:
    """The budget ``raw[key]`` names, or None when the key is absent."""
    return _present_budget(raw, key, where) if key in raw else None


def _present_budget(raw: dict[str, Any], key: str, where: str) -> Budget:
    try:
        budget = parse_budget(raw[key])
    except ValueError as exc:
        raise RuleKeyError(_key(where, key), str(exc)) from None
    if budget.seconds <= 0:
        raise RuleKeyError(_key(where, key), "must be positive")
    return budget


def _ratio(raw: dict[str, Any], key: str, where: str) -> float | None:
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise RuleKeyError(_key(where, key), f"{value!r} must be a fraction between 0 and 1")
    return float(value)


def check_keys(raw: object, allowed: set[str], where: str) -> None:
    if not isinstance(raw, dict):
        raise RuleKeyError(where, "must be a table")
    for key in raw:
        if key not in allowed:
            raise RuleKeyError(_key(where, key), "unknown key")


def _parse_policy(raw: dict[str, Any], version: str) -> SlaPolicy:
    check_keys(raw, {"yellow_at", "clock_start", "extension", "priority"}, "")
    yellow = _ratio(raw, "yellow_at", "") or 0.8
    starts = raw.get("clock_start", {})
    check_keys(starts, {"on_site", "first_control", "resolve"}, "clock_start")
    on_accept = set()
    for step, when in starts.items():
        if when not in ("dispatch", "accept"):
            raise RuleKeyError(f"clock_start.{step}", f"{when!r} must be 'dispatch' or 'accept'")
        if when == "accept":
            on_accept.add(Step(step))
    ext_raw = raw.get("extension", {})
    check_keys(ext_raw, {"max_times", "max", "at_most_original"}, "extension")
    times = ext_raw.get("max_times", 1)
    if not isinstance(times, int) or times < 0:
        raise RuleKeyError("extension.max_times", "must be a whole number ≥ 0")
    extension = ExtensionRule(
        max_times=times,
        max=rule_budget(ext_raw, "max", "extension") or ExtensionRule().max,
        at_most_original=bool(ext_raw.get("at_most_original", True)),
    )
    table = raw.get("priority")
    if not isinstance(table, dict):
        raise RuleKeyError("priority", "missing: one [priority.P1] … [priority.P4] table each")
    rows: dict[Priority, PriorityRow] = {}
    for label in ("P1", "P2", "P3", "P4"):
        if label not in table:
            raise RuleKeyError(f"priority.{label}", "missing")
        rows[Priority.parse(label)] = _parse_row(table[label], f"priority.{label}")
    check_keys(table, {"P1", "P2", "P3", "P4"}, "priority")
    return SlaPolicy(
        priorities=rows,
        yellow_at=yellow,
        start_on_accept=frozenset(on_accept),
        extension=extension,
        version=version,
    )


def _parse_row(raw: dict[str, Any], where: str) -> PriorityRow:
    check_keys(raw, set(_ROW_BUDGETS) | {"resolve_by_category", "yellow_at"}, where)
    for key in _REQUIRED:
        if key not in raw:
            raise RuleKeyError(f"{where}.{key}", "missing")
    # read in the order of _ROW_BUDGETS, then the categories, then yellow_at: a file with
    # several mistakes is told of the first
    return PriorityRow(
        accept=_present_budget(raw, "accept", where),
        resolve=_present_budget(raw, "resolve", where),
        return_window=_present_budget(raw, "return_window", where),
        on_site=rule_budget(raw, "on_site", where),
        on_site_rural=rule_budget(raw, "on_site_rural", where),
        first_control=rule_budget(raw, "first_control", where),
        progress_every=rule_budget(raw, "progress_every", where),
        feedback=rule_budget(raw, "feedback", where),
        verify=rule_budget(raw, "verify", where),
        resolve_by_category=_resolve_by_category(raw, where),
        yellow_at=_ratio(raw, "yellow_at", where),
    )


def _resolve_by_category(raw: dict[str, Any], where: str) -> dict[str, Budget]:
    by_category: dict[str, Budget] = {}
    for prefix in raw.get("resolve_by_category", {}):
        if not re.fullmatch(r"\d\d(\.\d\d)?", prefix):
            raise RuleKeyError(
                f"{where}.resolve_by_category.{prefix}", "not a category or prefix like 01 or 06.02"
            )
        by_category[prefix] = _present_budget(
            raw["resolve_by_category"], prefix, f"{where}.resolve_by_category"
        )
    return by_category
