"""What a department desk and a command-center operator do next, and when (模拟办理).

The pure half of ``gridlink simulate --departments`` (:mod:`simulation.actors`
is the HTTP half). Every function takes ``now`` and a seeded ``random.Random``
and returns the next :class:`Action` — a verb of the REST API, its body and
the moment to send it — or None when there is nothing left to do:

- a department (职能部门) on an assignment: return it (退单, a share of them,
  within the return window, with a reason code) or claim it (签收); the lead
  reports on site (到场); sometimes the department asks for an extension
  (延期申请); it sends progress notes (进展, the lead's first one on a P1
  reports first control); then the lead handles (办结) and a supporting
  department reports its part (配合反馈);
- the command center (综治中心) on a case: register what awaits verification
  (核实立案), re-route a returned case or rule on a disputed lead (改派 / 裁定),
  check, close (or order rework) and call back (核查, 结案, 返工, 回访评价); and
  decide extension requests.

Time is real: the case engine runs on the wall clock and takes no accelerated
one, so delays are seconds. An SLA step is claimed late (after its deadline:
red card, supervision and, further on, take-over) or slow (after the yellow
mark) only when that moment lies within ``Pace.max_wait_seconds``; deadlines
further off (a working day, five working days) are met, at the ordinary pace.
In a short run only the short deadlines are missed: P1 accept (5 min) and
on-site (15 min), P2 accept (30 min).
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from streams.cases import Satisfaction

PROMPT, SLOW, LATE = "prompt", "slow", "late"
"""When a step happened against its deadline: before the yellow mark, after it, after the due."""

DEFAULT_SATISFACTION: tuple[tuple[str, float], ...] = (
    (Satisfaction.SATISFIED, 0.75),  # 满意
    (Satisfaction.BASICALLY_SATISFIED, 0.17),  # 基本满意
    (Satisfaction.DISSATISFIED, 0.06),  # 不满意 → 重办
    (Satisfaction.UNREACHED, 0.02),  # 未接通
)
FALLBACK_DEPARTMENT = "zhongzhi"  # 综治中心: the lead of last resort (兜底)

RETURN_REASONS = (  # reason code, note
    ("not_ours", "不属本部门职责"),
    ("wrong_region", "不属本辖区，请核实属地"),
    ("insufficient_info", "信息不全，无法处置"),
)
PROGRESS_NOTES = (
    "已联系当事人，正在核实情况",
    "已安排人员处置",
    "已协调相关单位配合",
    "处置中，预计今日完成",
)
CONTROL_NOTE = "现场已初步控制"
EXTENSION_REASONS = ("需等待配件到货", "需协调相关单位会商", "当事人外出，需另约时间")
OUTCOMES = ("问题已处置完毕，现场已恢复", "已调解，双方达成一致", "已清理整改到位",
            "已维修，恢复正常")
SUPPORT_NOTES = ("配合完成", "已派员配合处置")
EVALUATION_NOTES: dict[str, str] = {  # keyed by the verdict's value, as draw_satisfaction gives it
    Satisfaction.SATISFIED: "回访满意",
    Satisfaction.BASICALLY_SATISFIED: "回访基本满意",
    Satisfaction.DISSATISFIED: "回访不满意：问题仍未解决",
    Satisfaction.UNREACHED: "回访电话未接通",
}


@dataclass(frozen=True)
class Window:
    """One SLA step's deadline as the API shows it: started, yellow mark, due."""

    start: datetime
    due: datetime
    warn: datetime | None = None

    @property
    def budget_seconds(self) -> float:
        return max((self.due - self.start).total_seconds(), 0.0)

    @property
    def warn_at(self) -> datetime:
        """The yellow mark (80 % of the budget when the API gave none)."""
        return self.warn or self.start + timedelta(seconds=0.8 * self.budget_seconds)

    def timing(self, at: datetime) -> str:
        """``late`` after the due, ``slow`` after the yellow mark, else ``prompt``."""
        if at > self.due:
            return LATE
        return SLOW if at >= self.warn_at else PROMPT


def _share(name: str, value: float) -> None:
    if not 0 <= value <= 1:
        raise ValueError(f"{name} must be within 0..1, not {value}")


def _span(name: str, value: tuple[float, float]) -> None:
    lo, hi = value
    if not 0 <= lo <= hi:
        raise ValueError(f"{name} must be LO,HI with 0 <= LO <= HI, not {lo},{hi}")


@dataclass(frozen=True)
class Pace:
    """How the simulated people behave: delays in seconds and the shares of each choice."""

    step_seconds: tuple[float, float] = (5.0, 60.0)  # one step after the previous one
    work_seconds: tuple[float, float] = (30.0, 300.0)  # handling (办结) when its deadline is far
    max_wait_seconds: float = 3600.0  # no late or slow step is planned further off than this
    late: float = 0.15  # claims and on-site reports after their deadline (red card)
    slow: float = 0.15  # … after the yellow mark but in time (yellow card)
    returns: float = 0.05  # assignments returned (退单) within the return window
    extensions: float = 0.10  # assignments whose department asks for an extension
    progress_notes: tuple[int, int] = (0, 2)  # progress notes per assignment (min, max)
    deny_extension: float = 0.15  # extension requests the command center denies
    rework: float = 0.05  # checked cases sent back for rework (返工), once per case
    satisfaction: tuple[tuple[str, float], ...] = DEFAULT_SATISFACTION  # callback verdicts

    def __post_init__(self) -> None:
        for name in ("late", "slow", "returns", "extensions", "deny_extension", "rework"):
            _share(name, getattr(self, name))
        if self.late + self.slow > 1:
            raise ValueError("late + slow must not exceed 1")
        _span("step_seconds", self.step_seconds)
        _span("work_seconds", self.work_seconds)
        lo, hi = self.progress_notes
        if not 0 <= lo <= hi:
            raise ValueError(f"progress_notes must be MIN,MAX with 0 <= MIN <= MAX, not {lo},{hi}")
        if self.max_wait_seconds < 0:
            raise ValueError("max_wait_seconds must not be negative")
        known = {str(s) for s in Satisfaction}
        for verdict, weight in self.satisfaction:
            if verdict not in known:
                raise ValueError(f"unknown callback verdict {verdict!r} "
                                 f"(one of {', '.join(sorted(known))})")
            if weight < 0:
                raise ValueError(f"the weight of {verdict} must not be negative")
        if sum(weight for _, weight in self.satisfaction) <= 0:
            raise ValueError("the callback verdicts need a positive weight in total")


def parse_satisfaction(text: str) -> tuple[tuple[str, float], ...]:
    """``"satisfied=0.7,basically_satisfied=0.2,dissatisfied=0.1"`` → verdict weights."""
    pairs = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        verdict, sep, weight = part.partition("=")
        try:
            pairs.append((verdict.strip(), float(weight)))
        except ValueError:
            raise ValueError(f"{part!r} is not verdict=weight") from None
        if not sep:
            raise ValueError(f"{part!r} is not verdict=weight")
    Pace(satisfaction=tuple(pairs))  # validates
    return tuple(pairs)


@dataclass(frozen=True)
class Action:
    """One API call to make at ``at``: ``verb`` is the last path segment of the action's
    route (``claim``, ``on-site``, ``approve-extension`` …), ``body`` its JSON body.
    ``window``: the deadline the step answers, to count it prompt, slow or late."""

    at: datetime
    verb: str
    body: Mapping[str, Any] | None = None
    window: Window | None = None


def _seconds(lo_hi: tuple[float, float], rng: random.Random) -> timedelta:
    return timedelta(seconds=rng.uniform(*lo_hi))


def when_to_act(rng: random.Random, now: datetime, window: Window | None, pace: Pace,
                *, span: tuple[float, float] | None = None) -> datetime:
    """When to take a step whose deadline is ``window``: late with ``pace.late``, slow
    with ``pace.slow`` — when that moment is within ``max_wait_seconds`` — else on time,
    after ``span`` seconds (``pace.step_seconds``) but before 60 % of the budget."""
    span = span or pace.step_seconds
    earliest = now + timedelta(seconds=span[0])
    ordinary = now + _seconds(span, rng)
    if window is None:
        return ordinary
    budget = window.budget_seconds
    draw = rng.random()
    target: datetime | None = None
    if draw < pace.late:
        target = window.due + timedelta(seconds=budget * rng.uniform(0.05, 0.6))
    elif draw < pace.late + pace.slow:
        target = window.warn_at + (window.due - window.warn_at) * rng.uniform(0.1, 0.9)
    if target is not None and earliest <= target <= now + timedelta(
            seconds=pace.max_wait_seconds):
        return target
    on_time_by = window.start + timedelta(seconds=0.6 * budget)
    return max(earliest, min(ordinary, on_time_by))


def when_to_return(rng: random.Random, now: datetime, return_by: datetime,
                   pace: Pace) -> datetime | None:
    """A moment within the return window (退单时限) with a margin, or None if none is left."""
    room = (return_by - now).total_seconds()
    latest = return_by - timedelta(seconds=min(60.0, 0.2 * max(room, 0.0)))
    earliest = now + timedelta(seconds=pace.step_seconds[0])
    if latest < earliest:
        return None
    return min(now + _seconds(pace.step_seconds, rng), latest)


# -- a department on its assignment -----------------------------------------------------


@dataclass(frozen=True)
class Work:
    """A department's assignment as the desk knows it, and what the desk means to do."""

    case_id: str
    assignment_id: str
    department: str
    lead: bool
    priority: int
    status: str  # dispatched | accepted | in_progress | handled | returned
    accept: Window | None = None
    on_site: Window | None = None
    resolve: Window | None = None
    return_by: datetime | None = None
    ruled: bool = False  # assigned by a ruling (裁定): cannot be returned
    on_site_done: bool = False
    extensions_used: int = 0
    # intentions, drawn once by plan_work
    return_reason: tuple[str, str] | None = None
    suggested_department: str | None = None
    notes: int = 0
    controlled: bool = False  # the first progress note reports first control (P1 lead)
    ask_extension: bool = False
    # done so far
    notes_done: int = 0
    extension_asked: bool = False


def _parse_time(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _window(started_at: str, due_at: str) -> Window:
    """A window from two times the API always gives (a queue item's dispatch and due times)."""
    return Window(datetime.fromisoformat(started_at), datetime.fromisoformat(due_at))


def _windows(detail: Mapping[str, Any], assignment_id: str) -> dict[str, Window]:
    found: dict[str, Window] = {}
    for row in detail.get("deadlines", ()):
        if row.get("assignment_id") != assignment_id or not row.get("active", True):
            continue
        start, due = _parse_time(row["started_at"]), _parse_time(row["due_at"])
        if start is not None and due is not None:
            found[row["step"]] = Window(start, due, _parse_time(row.get("warn_at")))
    return found


def work_from(item: Mapping[str, Any], detail: Mapping[str, Any] | None, *,
              department: str) -> Work:
    """The facts of ``department``'s assignment: a queue item (``GET
    /departments/{code}/queue``) and, when at hand, its case (``GET /cases/{id}``) for
    the deadlines and the ruling flag."""
    aid = item["assignment_id"]
    windows = _windows(detail or {}, aid)
    row: Mapping[str, Any] = next(
        (a for a in (detail or {}).get("assignments", ()) if a["assignment_id"] == aid), {})
    accept = windows.get("accept")
    if accept is None and item.get("accept_due_at"):
        accept = _window(item["dispatched_at"], item["accept_due_at"])
    resolve = windows.get("resolve")
    if resolve is None and item.get("resolve_due_at"):
        resolve = _window(item["dispatched_at"], item["resolve_due_at"])
    return Work(
        case_id=item["case_id"], assignment_id=aid,
        department=department,
        lead=item["role"] == "lead", priority=int(item["priority"]), status=item["status"],
        accept=accept, on_site=windows.get("on_site"), resolve=resolve,
        return_by=_parse_time(item.get("return_by")), ruled=bool(row.get("ruled", False)),
        on_site_done=bool(item.get("on_site", False)),
        extensions_used=int(row.get("extensions", 0)),
    )


def plan_work(work: Work, rng: random.Random, pace: Pace, *,
              departments: Sequence[str] = ()) -> Work:
    """Draw what the desk will do with ``work``: return it or not (only a fresh,
    returnable one), how many progress notes, whether to ask for an extension."""
    returning = (work.status == "dispatched" and not work.ruled and work.return_by is not None
                 and rng.random() < pace.returns)
    reason = rng.choice(RETURN_REASONS) if returning else None
    others = [d for d in departments if d != work.department]
    suggested = (rng.choice(others) if reason and reason[0] == "not_ours" and others else None)
    notes = rng.randint(*pace.progress_notes)
    controlled = work.lead and work.priority == 1
    if controlled:
        notes = max(notes, 1)
    ask = (work.resolve is not None and work.extensions_used == 0
           and rng.random() < pace.extensions)
    return replace(work, return_reason=reason, suggested_department=suggested, notes=notes,
                   controlled=controlled, ask_extension=ask)


def _extension_days(rng: random.Random, window: Window | None) -> int:
    """1–3 days, within what the engine allows (at most the original budget)."""
    span_days = int(window.budget_seconds // 86_400) if window else 1
    return rng.randint(1, max(1, min(3, span_days // 2)))


def next_department_action(work: Work, rng: random.Random, now: datetime,
                           pace: Pace) -> Action | None:
    """The desk's next step on ``work``, or None when its part is over."""
    if work.status == "dispatched":
        if work.return_reason is not None and work.return_by is not None:
            at = when_to_return(rng, now, work.return_by, pace)
            if at is not None:
                code, note = work.return_reason
                return Action(at, "return", {"reason_code": code, "note": note,
                                             "suggested_department": work.suggested_department})
        return Action(when_to_act(rng, now, work.accept, pace), "claim", None, work.accept)
    if work.status not in ("accepted", "in_progress"):
        return None
    if work.lead and work.on_site is not None and not work.on_site_done:
        return Action(when_to_act(rng, now, work.on_site, pace), "on-site", {"note": "已到场"},
                      work.on_site)
    if work.ask_extension and not work.extension_asked:  # once the job is sized up
        return Action(now + _seconds(pace.step_seconds, rng), "extension",
                      {"days": _extension_days(rng, work.resolve),
                       "reason": rng.choice(EXTENSION_REASONS)})
    if work.notes_done < work.notes:
        first_control = work.controlled and work.notes_done == 0
        note = CONTROL_NOTE if first_control else rng.choice(PROGRESS_NOTES)
        return Action(now + _seconds(pace.step_seconds, rng), "progress",
                      {"note": note, "controlled": first_control})
    at = when_to_act(rng, now, work.resolve, pace, span=pace.work_seconds)
    if work.lead:
        return Action(at, "handle", {"outcome": rng.choice(OUTCOMES)}, work.resolve)
    return Action(at, "support-done", {"note": rng.choice(SUPPORT_NOTES)}, work.resolve)


_DEPARTMENT_STATUS = {"claim": "accepted", "return": "returned", "on-site": "in_progress",
                      "progress": "in_progress", "handle": "handled", "support-done": "handled"}


def after_department_action(work: Work, action: Action) -> Work:
    """``work`` once the API accepted ``action``."""
    status = _DEPARTMENT_STATUS.get(action.verb, work.status)
    if action.verb == "on-site":
        return replace(work, status=status, on_site_done=True)
    if action.verb == "progress":
        return replace(work, status=status, notes_done=work.notes_done + 1)
    if action.verb == "extension":
        return replace(work, extension_asked=True)
    return replace(work, status=status)


# -- the command center on a case ---------------------------------------------------------


@dataclass(frozen=True)
class CaseView:
    """A case as the operator acts on it (from ``GET /cases`` or ``GET /cases/{id}``)."""

    case_id: str
    status: str
    updated_at: str = ""
    lead_department: str | None = None  # the case's lead now
    first_lead: str | None = None  # the lead it was first dispatched to (the routing table's)
    supports: tuple[str, ...] = ()  # the supporting departments still serving
    returned_by: tuple[str, ...] = ()  # departments that returned the lead
    suggested: str | None = None  # the department the last return suggested
    ruling_region: str | None = None  # whose ruling (裁定) is awaited
    reworked: bool = False  # rework (返工) was ordered already
    done: bool = field(default=False, compare=False)  # the operator's part is over


def _number(assignment_id: str) -> int:
    digits = "".join(c for c in assignment_id if c.isdigit())
    return int(digits) if digits else 0


def case_view(case: Mapping[str, Any], *, reworked: bool = False) -> CaseView:
    """A case summary or detail as a :class:`CaseView` (assignments and timeline only
    in a detail)."""
    assignments = sorted(case.get("assignments", ()), key=lambda a: _number(a["assignment_id"]))
    leads = [a for a in assignments if a["role"] == "lead"]
    supports = tuple(dict.fromkeys(  # those still serving; who returned its part is let go
        a["department"] for a in assignments
        if a["role"] == "support" and a["status"] not in ("cancelled", "returned")))
    returns = [e["detail"] for e in case.get("timeline", ())
               if e["type"] == "assignment_returned" and e["detail"].get("role") == "lead"]
    reworked = reworked or any(e["type"] == "rework_ordered" for e in case.get("timeline", ()))
    return CaseView(
        case_id=case["case_id"], status=case["status"], updated_at=str(case.get("updated_at", "")),
        lead_department=case.get("lead_department"),
        first_lead=leads[0]["department"] if leads else case.get("lead_department"),
        supports=supports, returned_by=tuple(r["department"] for r in returns),
        suggested=returns[-1].get("suggested_department") if returns else None,
        ruling_region=case.get("ruling_region"), reworked=reworked)


def _new_lead(case: CaseView, fallback: str) -> str:
    for candidate in (case.suggested, fallback, case.first_lead):
        if candidate and candidate not in case.returned_by:
            return candidate
    return case.first_lead or fallback


def draw_satisfaction(rng: random.Random, pace: Pace) -> str:
    verdicts, weights = zip(*pace.satisfaction, strict=True)
    return str(rng.choices(verdicts, weights=weights)[0])


def next_command_center_action(case: CaseView, rng: random.Random, now: datetime, pace: Pace,
                               *, fallback: str = FALLBACK_DEPARTMENT) -> Action | None:
    """The operator's next step on ``case``, or None when it is the departments' turn."""
    if case.done:
        return None
    at = now + _seconds(pace.step_seconds, rng)
    if case.status == "verifying":
        body: dict[str, Any] = {"note": "核实属实，立案交办", "dispatch": True}
        if not case.lead_department:
            body["routing"] = {"lead": fallback, "supports": []}
        return Action(at, "register", body)
    if case.status == "returned":
        if case.ruling_region:
            lead = case.first_lead or fallback
            return Action(at, "rule", {
                "lead": lead, "supports": [d for d in case.supports if d != lead],
                "reason": f"裁定：按职责清单由 {lead} 牵头办理", "by_region": case.ruling_region})
        lead = _new_lead(case, fallback)
        return Action(at, "reroute", {
            "lead": lead, "supports": [d for d in case.supports if d != lead],
            "reason": f"改派：退单后改由 {lead} 牵头"})
    if case.status == "handled":
        return Action(at, "check", {"note": "开始核查"})
    if case.status == "checking":
        if not case.reworked and rng.random() < pace.rework:
            return Action(at, "rework", {"reason": "核查未通过：现场问题仍存在"})
        return Action(at, "close", {"note": "核查属实，结案"})
    if case.status == "closed":
        verdict = draw_satisfaction(rng, pace)
        return Action(at, "evaluate", {"result": verdict, "note": EVALUATION_NOTES[verdict]})
    return None


_CASE_STATUS = {"check": "checking", "close": "closed"}


def after_command_center_action(case: CaseView, action: Action) -> CaseView:
    """``case`` once the API accepted ``action``: check leads to close (or rework), close to
    the callback; the other actions hand the case to the departments."""
    if action.verb in _CASE_STATUS:
        return replace(case, status=_CASE_STATUS[action.verb])
    return replace(case, done=True, reworked=case.reworked or action.verb == "rework")


def extension_decision(rng: random.Random, now: datetime, pace: Pace,
                       assignment_id: str) -> Action:
    """The dispatching level's answer to an extension request (延期审批)."""
    approved = rng.random() >= pace.deny_extension
    note = "同意延期" if approved else "不同意延期，请按期办结"
    return Action(now + _seconds(pace.step_seconds, rng), "approve-extension",
                  {"assignment_id": assignment_id, "approved": approved, "note": note})


__all__ = [
    "DEFAULT_SATISFACTION",
    "LATE",
    "PROMPT",
    "SLOW",
    "Action",
    "CaseView",
    "Pace",
    "Window",
    "Work",
    "after_command_center_action",
    "after_department_action",
    "case_view",
    "draw_satisfaction",
    "extension_decision",
    "next_command_center_action",
    "next_department_action",
    "parse_satisfaction",
    "plan_work",
    "when_to_act",
    "when_to_return",
    "work_from",
]
