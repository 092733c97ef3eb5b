"""Escalation over the five levels (分级响应, docs/domain.md §5), from ``rules/escalation.toml``.

Pure functions the case machine calls:

- :func:`fan_out` — a P1 case notifies township, county and city command
  centers together, plus the departments its category demands (一键通报);
- :func:`ladder_for` — a small dispute climbs grid → community → township
  (2 + 2 + 3 days, 四级七天), then the county supervises;
- :func:`level_up` / :func:`takeover_after` — red card → the next level up
  supervises (督办); red + one working day (or + a share of the budget) →
  the next level takes over coordination (吹哨);
- :func:`ruling_region` — the second return goes to the lowest common ancestor
  of the case's and the departments' jurisdictions for a ruling (裁定);
- :func:`raise_priority` / :func:`is_recurrent` — a reopened case → priority + 1
  and a hot-spot flag (a recurring grid and category is raised by triage; the
  case records the flag).

De-escalation is an operator command checked by the case machine (only the
dispatcher of the current level, with a reason).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec

from streams.errors import RulesError
from streams.jurisdiction import ancestor_at, common_ancestor, level_of
from streams.records import Level, Priority
from streams.sla import Budget, RuleKeyError, Step, check_keys, read_toml, rule_budget

ESCALATION_FILE = "escalation.toml"


class Rung(msgspec.Struct, frozen=True, array_like=True):
    """One rung of the ladder: the case may stay ``stay`` at ``level``."""

    level: Level
    stay: Budget


class Takeover(msgspec.Struct, frozen=True, kw_only=True):
    """吹哨: how long after the red card the next level takes over."""

    after: Budget | None = None  # a fixed time, e.g. one working day
    after_ratio: float | None = None  # or a share of the step's own budget


class EscalationPolicy(msgspec.Struct, frozen=True, kw_only=True):
    fan_out_priorities: frozenset[Priority] = frozenset({Priority.P1})
    fan_out_levels: tuple[Level, ...] = (Level.TOWNSHIP, Level.COUNTY, Level.CITY)
    fan_out_departments: dict[str, tuple[str, ...]] = {}  # category prefix → departments
    ladder_categories: tuple[str, ...] = ()
    ladder_max_persons: int = 4
    ladder_priorities: frozenset[Priority] = frozenset({Priority.P3, Priority.P4})
    ladder: tuple[Rung, ...] = ()
    supervise_levels_up: int = 1
    takeover: dict[Priority, Takeover] = {}
    takeover_steps: frozenset[Step] = frozenset({Step.ACCEPT, Step.ON_SITE, Step.RESOLVE})
    ruling_after_returns: int = 2
    recurrence_count: int = 3
    recurrence_window: timedelta = timedelta(days=30)
    reopen_raise: int = 1
    redo_times: int = 1
    version: str = ""


class FanOut(msgspec.Struct, frozen=True, kw_only=True):
    """Who a serious case notifies at once on ``command.alerts``."""

    centers: tuple[tuple[Level, str], ...]  # (level, jurisdiction code) of each command center
    departments: tuple[str, ...]


def _matches(category: str, prefixes: Iterable[str]) -> bool:
    return any(category.startswith(p) for p in prefixes)


def level_up(level: Level, steps: int = 1) -> Level:
    """``steps`` levels up, never above the city."""
    return Level(max(Level.CITY, level - steps))


def region_at(region_code: str, level: Level) -> str:
    """The jurisdiction code of ``region_code`` at ``level`` (itself if it is higher)."""
    return ancestor_at(region_code, level) or region_code


def fan_out(
    policy: EscalationPolicy, priority: Priority, category: str, region_code: str
) -> FanOut | None:
    """The command centers and departments a case of ``priority`` notifies at open."""
    if priority not in policy.fan_out_priorities:
        return None
    own = level_of(region_code)
    centers = tuple(
        (level, region_at(region_code, level)) for level in policy.fan_out_levels if level <= own
    )
    best = max(
        (p for p in policy.fan_out_departments if category.startswith(p)), key=len, default=None
    )
    departments = policy.fan_out_departments[best] if best is not None else ()
    return FanOut(centers=centers, departments=departments)


def ladder_for(
    policy: EscalationPolicy,
    *,
    level: Level,
    category: str,
    priority: Priority,
    persons: int | None,
) -> tuple[Rung, ...]:
    """The rungs left for a small dispute coordinated at ``level`` (四级七天), or ().

    "Small" is an ordinary priority (violence, gatherings and escalating
    disputes are already P1/P2 by triage) and at most ``ladder_max_persons``."""
    if not _matches(category, policy.ladder_categories) or priority not in policy.ladder_priorities:
        return ()
    if persons is not None and persons > policy.ladder_max_persons:
        return ()
    for index, rung in enumerate(policy.ladder):
        if rung.level == level:
            return policy.ladder[index:]
    return ()


class EscalationTerms(msgspec.Struct, frozen=True, array_like=True):
    """The escalation rules frozen onto one case with its priority."""

    takeover_after: Budget | None = None
    takeover_permille: int | None = None  # share of the step's budget, in ‰
    takeover_steps: tuple[Step, ...] = ()
    supervise_up: int = 1
    ruling_after: int = 2
    redo_times: int = 1
    reopen_raise: int = 1
    version: str = ""


def escalation_terms(policy: EscalationPolicy, priority: Priority) -> EscalationTerms:
    """Freeze what a case of ``priority`` needs from the escalation rules."""
    rule = policy.takeover.get(priority)
    return EscalationTerms(
        takeover_after=None if rule is None else rule.after,
        takeover_permille=None
        if rule is None or rule.after_ratio is None
        else round(rule.after_ratio * 1000),
        takeover_steps=tuple(sorted(policy.takeover_steps)) if rule is not None else (),
        supervise_up=policy.supervise_levels_up,
        ruling_after=policy.ruling_after_returns,
        redo_times=policy.redo_times,
        reopen_raise=policy.reopen_raise,
        version=policy.version,
    )


def takeover_after(terms: EscalationTerms, step: Step, budget: Budget) -> Budget | None:
    """How long after the red card of ``step`` the next level takes over (吹哨)."""
    if step not in terms.takeover_steps:
        return None
    if terms.takeover_permille is not None:
        return budget.scaled(terms.takeover_permille / 1000)
    return terms.takeover_after


def ruling_region(case_region: str, department_regions: Iterable[str]) -> str:
    """Where a disputed lead is ruled (裁定): the lowest common ancestor of the
    case's jurisdiction and those of the departments that returned it."""
    region = case_region
    for other in department_regions:
        region = common_ancestor(region, other)
    return region


def raise_priority(priority: Priority, steps: int = 1) -> Priority:
    """Priority + ``steps`` (more urgent), never beyond P1."""
    return Priority(max(Priority.P1, priority - steps))


def is_recurrent(policy: EscalationPolicy, earlier: Sequence[datetime], now: datetime) -> bool:
    """True when the same grid and category came ≥ ``recurrence_count`` times
    within the window, this one included (``earlier`` are the previous times)."""
    since = now - policy.recurrence_window
    return sum(1 for t in earlier if since <= t <= now) + 1 >= policy.recurrence_count


# -- loading ---------------------------------------------------------------------------


def _level(value: Any, key: str) -> Level:
    try:
        return Level[str(value).upper()]
    except KeyError:
        raise RuleKeyError(
            key, f"{value!r} is not a level (city, county, township, community, grid)"
        ) from None


def _strings(raw: dict[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = raw.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RuleKeyError(f"{where}.{key}", "must be a list of strings")
    return tuple(value)


def _int(raw: dict[str, Any], key: str, where: str, default: int) -> int:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise RuleKeyError(f"{where}.{key}", f"{value!r} must be a whole number ≥ 0")
    return value


def load_escalation_policy(rules_dir: Path | str) -> EscalationPolicy:
    """Load and validate ``rules_dir/escalation.toml``; :class:`RulesError` names file and key."""
    path = Path(rules_dir) / ESCALATION_FILE
    raw = read_toml(path)
    try:
        policy = _parse(raw)
    except RuleKeyError as exc:
        raise RulesError(f"{ESCALATION_FILE}: {exc.key}: {exc.problem}", field=exc.key) from None
    return msgspec.structs.replace(
        policy, version=hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    )


def _parse(raw: dict[str, Any]) -> EscalationPolicy:
    sections = {
        "fan_out",
        "ladder",
        "red",
        "takeover",
        "ruling",
        "recurrence",
        "dissatisfied",
    }
    check_keys(raw, sections, "")
    fan_out_raw = raw.get("fan_out", {})
    check_keys(fan_out_raw, {"priorities", "levels", "departments"}, "fan_out")
    try:
        priorities = frozenset(
            Priority.parse(p) for p in _strings(fan_out_raw, "priorities", "fan_out") or ("P1",)
        )
    except ValueError:
        raise RuleKeyError("fan_out.priorities", "must name priorities P1 … P4") from None
    levels = tuple(_level(v, "fan_out.levels") for v in _strings(fan_out_raw, "levels", "fan_out"))
    departments = {}
    for prefix in fan_out_raw.get("departments", {}):
        if not re.fullmatch(r"\d\d(\.\d\d)?", prefix):
            raise RuleKeyError(
                f"fan_out.departments.{prefix}", "not a category or prefix like 07 or 07.01"
            )
        departments[prefix] = _strings(fan_out_raw["departments"], prefix, "fan_out.departments")

    ladder = raw.get("ladder", {})
    check_keys(ladder, {"categories", "priorities", "max_persons", "rungs"}, "ladder")
    try:
        ladder_priorities = frozenset(
            Priority.parse(p) for p in _strings(ladder, "priorities", "ladder") or ("P3", "P4")
        )
    except ValueError:
        raise RuleKeyError("ladder.priorities", "must name priorities P1 … P4") from None
    rungs = []
    for i, rung in enumerate(ladder.get("rungs", [])):
        where = f"ladder.rungs[{i}]"
        check_keys(rung, {"level", "stay"}, where)
        stay = rule_budget(rung, "stay", where)
        if stay is None:
            raise RuleKeyError(f"{where}.stay", "missing")
        rungs.append(Rung(_level(rung.get("level"), f"{where}.level"), stay))
    for lower, upper in zip(rungs, rungs[1:], strict=False):
        if upper.level != lower.level - 1:
            raise RuleKeyError("ladder.rungs", "each rung must be one level above the previous one")

    red = raw.get("red", {})
    check_keys(red, {"supervise_levels_up"}, "red")

    takeover_raw = raw.get("takeover", {})
    check_keys(takeover_raw, {"steps", "P1", "P2", "P3", "P4"}, "takeover")
    takeover = {}
    for label in ("P1", "P2", "P3", "P4"):
        if label in takeover_raw:
            takeover[Priority.parse(label)] = _takeover(takeover_raw[label], f"takeover.{label}")
    try:
        steps = frozenset(Step(s) for s in _strings(takeover_raw, "steps", "takeover"))
    except ValueError:
        raise RuleKeyError(
            "takeover.steps", f"steps are {', '.join(s.value for s in Step)}"
        ) from None

    ruling = raw.get("ruling", {})
    check_keys(ruling, {"after_returns"}, "ruling")
    recurrence = raw.get("recurrence", {})
    check_keys(recurrence, {"count", "window", "reopened_raise"}, "recurrence")
    window = rule_budget(recurrence, "window", "recurrence") or Budget(30 * 86_400)
    if window.working:
        raise RuleKeyError("recurrence.window", "must be on the wall clock (e.g. 30d)")
    dissatisfied = raw.get("dissatisfied", {})
    check_keys(dissatisfied, {"redo_times"}, "dissatisfied")
    return EscalationPolicy(
        fan_out_priorities=priorities,
        fan_out_levels=levels,
        fan_out_departments=departments,
        ladder_categories=_strings(ladder, "categories", "ladder"),
        ladder_max_persons=_int(ladder, "max_persons", "ladder", 4),
        ladder_priorities=ladder_priorities,
        ladder=tuple(rungs),
        supervise_levels_up=_int(red, "supervise_levels_up", "red", 1),
        takeover=takeover,
        takeover_steps=steps,
        ruling_after_returns=max(1, _int(ruling, "after_returns", "ruling", 2)),
        recurrence_count=_int(recurrence, "count", "recurrence", 3),
        recurrence_window=timedelta(seconds=window.seconds),
        reopen_raise=_int(recurrence, "reopened_raise", "recurrence", 1),
        redo_times=_int(dissatisfied, "redo_times", "dissatisfied", 1),
    )


def _takeover(raw: Any, where: str) -> Takeover:
    check_keys(raw, {"after", "after_ratio"}, where)
    after = rule_budget(raw, "after", where)
    ratio = raw.get("after_ratio")
    if (after is None) == (ratio is None):
        raise RuleKeyError(
            where, "give exactly one of after (a duration) or after_ratio (a fraction)"
        )
    if ratio is not None and (
        isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or ratio <= 0
    ):
        raise RuleKeyError(f"{where}.after_ratio", f"{ratio!r} must be a positive fraction")
    return Takeover(after=after, after_ratio=None if ratio is None else float(ratio))
