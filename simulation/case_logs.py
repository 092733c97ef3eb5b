"""Realistic case logs, made by driving the pure engine.

Each case starts from a grid report in the demo city, goes through the real
triage functions (locate, classify, prioritise, route) into ``OpenCase``, and
then takes a seeded random walk through the closed loop with the real
``decide``: claims, returns, rulings, re-routes, progress, on-site reports,
extensions, suspensions, escalation, supervision, handling, checks, rework,
closing and callbacks — while the SLA timers fire yellow and red cards as time
passes. A command the machine rejects is simply not taken. Some cases are left
open, as in a live log. Used by the store tests and ``benchmarks/projection.py``.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any, TypeVar

from settings import SHIPPED_REFERENCE_DIR, SHIPPED_RULES_DIR
from streams.calendar import WorkCalendar, load_calendar
from streams.cases import (
    AssignmentStatus,
    CaseEvent,
    CasePolicy,
    CaseState,
    CaseStatus,
    Satisfaction,
    decide,
    fold,
    load_case_policy,
    pending_deadlines,
)
from streams.cases import commands as cmd
from streams.classify import classify, needs_verification
from streams.correlate import new_case_id
from streams.errors import TransitionRejected
from streams.locate import locate
from streams.priority import prioritise
from streams.records import Event, Level, Role, Routing, Source
from streams.reference import City, load_city
from streams.route import route
from streams.triage_rules import TriageRules, load_triage_rules
from streams.zone import TZ

C = TypeVar("C", bound=cmd.Command)

START = datetime(2026, 11, 2, 8, 30, tzinfo=TZ)
MAX_STEPS = 40

REPORTS = (
    "小区3号楼前垃圾桶满溢，垃圾散落路面，无人清运。",
    "楼上漏水引发邻里纠纷，双方多次争吵，住户称将报警。",
    "张大爷与儿子因赡养问题争吵，情绪激动。",
    "建筑工地三十余名农民工聚集在项目部门口讨要拖欠工资，情绪激动。",
    "路灯损坏，夜间道路漆黑。",
    "人行道井盖缺失，存在安全隐患。",
    "临街商铺后厨冒出浓烟，疑似起火，已有居民拨打119。",
    "流动摊贩占道经营，影响行人通行。",
    "夜间施工噪音扰民，居民无法休息。",
    "小区消防通道被车辆长期堵塞。",
    "宅基地边界纠纷，两户争执不下。",
    "暴雨后道路积水严重，车辆无法通行。",
    "居民反映有情况，请核实。",
)
NOTES = ("已联系当事人", "正在现场处置", "已协调相关单位", "处置完毕，现场已恢复")


@dataclass(frozen=True)
class World:
    """The demo city and the shipped rules: what the engine decides with."""

    city: City
    rules: TriageRules
    policy: CasePolicy
    calendar: WorkCalendar

    @property
    def departments(self) -> list[str]:
        return sorted(code for code in self.city.departments if code != "township")


@cache
def world() -> World:
    city = load_city(SHIPPED_REFERENCE_DIR)
    return World(
        city=city,
        rules=load_triage_rules(SHIPPED_RULES_DIR, departments=city.departments),
        policy=load_case_policy(SHIPPED_RULES_DIR),
        calendar=load_calendar(SHIPPED_RULES_DIR),
    )


def case_logs(count: int, *, seed: int = 7, start: datetime = START) -> list[list[CaseEvent]]:
    """``count`` case logs; case ``n`` opens ``n`` × 7 minutes after ``start``."""
    w = world()
    rng = random.Random(seed)
    return [_Driver(w, rng, n, start + timedelta(minutes=7 * n)).run() for n in range(count)]


def merged_log(logs: Sequence[Sequence[CaseEvent]]) -> list[CaseEvent]:
    """The logs of many cases as one topic delivers them: by time, each case in order."""
    keyed = ([(e.at, n, e.seq, e) for e in log] for n, log in enumerate(logs))
    return [item[3] for item in heapq.merge(*keyed)]


def batches(events: Sequence[CaseEvent], size: int) -> Iterator[list[CaseEvent]]:
    for start in range(0, len(events), size):
        yield list(events[start : start + size])


# -- one case's random walk ------------------------------------------------------------------


class _Driver:
    def __init__(self, w: World, rng: random.Random, number: int, start: datetime) -> None:
        self.w = w
        self.rng = rng
        self.number = number
        self.now = start
        self.state: CaseState | None = None
        self.events: list[CaseEvent] = []
        self.commands = 0
        self.case_id = ""

    def run(self) -> list[CaseEvent]:
        self._send(self._open())
        stop_after = self.rng.choice((MAX_STEPS,) * 4 + (3, 6, 10))  # some stay open
        for _ in range(stop_after):
            assert self.state is not None
            if self.state.status in (CaseStatus.REJECTED, CaseStatus.EVALUATED):
                break
            self._wait()
            command = self._next()
            if command is not None:
                self._send(command)
        return self.events

    # -- plumbing

    def _cmd(self, kind: type[C], actor: str, **fields: Any) -> C:
        """A command on the case, now, with a fresh command id."""
        self.commands += 1
        return kind(
            case_id=self.case_id,
            command_id=f"{self.case_id}:{self.commands}",
            actor=actor,
            at=self.now,
            **fields,
        )

    def _send(self, command: cmd.Command, *, now: datetime | None = None) -> bool:
        try:
            events = decide(self.state, command, self.w.policy, self.w.calendar, now or self.now)
        except TransitionRejected:
            return False
        self.state = fold(events, self.state)
        self.events.extend(events)
        return True

    def _wait(self) -> None:
        """Time passes; every deadline falling due meanwhile fires, as the timer would."""
        minutes = self.rng.choice((3, 10, 20, 30, 60, 90, 180, 480, 1440, 2880))
        until = self.now + timedelta(minutes=minutes)
        for _ in range(20):
            due = [d for d in pending_deadlines(self.state) if d.due <= until]
            if not due:
                break
            deadline = due[0]
            self.now = max(self.now, deadline.due)
            self._send(deadline.command(), now=self.now)
        self.now = until

    # -- step 2: a report becomes a case

    def _open(self) -> cmd.OpenCase:
        w, rng = self.w, self.rng
        grid = rng.choice(list(w.city.grids.values()))
        text = rng.choice(REPORTS)
        event = Event(
            event_id=f"grid:GR-{self.number:06d}",
            source=Source.GRID,
            source_id=f"GR-{self.number:06d}",
            occurred_at=self.now - timedelta(minutes=rng.randint(1, 30)),
            reported_at=self.now,
            title=text[:12],
            text=text,
            grid_code=grid.code,
            reporter=f"WGY-{rng.randint(1, 2000):04d}",
            persons=35 if "三十" in text else None,
            self_resolved=rng.random() < 0.04,
        )
        location = locate(event, w.city, max_distance_m=500.0)
        classification = classify(event, w.rules)
        routing = route(classification, event, location, w.rules)
        self.case_id = new_case_id(event, location)
        return self._cmd(
            cmd.OpenCase,
            "system:triage",
            event=event,
            location=location,
            classification=classification,
            priority=prioritise(event, classification, w.rules),
            routing=routing,
            needs_verification=needs_verification(classification, w.rules),
            closed_at_grid=routing.disposition == "closed_at_grid" or event.self_resolved,
        )

    # -- steps 3–6: the walk

    def _next(self) -> cmd.Command | None:
        s = self.state
        assert s is not None
        chooser = _BY_STATUS.get(s.status, _Driver._working)
        return chooser(self, s)

    def _verify(self, s: CaseState) -> cmd.Command:
        operator = "operator:county"
        if self.rng.random() < 0.25:
            return self._cmd(cmd.Reject, operator, reason="重复上报，不予立案")
        lead = self.rng.choice(self.w.departments)
        return self._cmd(
            cmd.Register,
            operator,
            note="核实属实",
            routing=Routing(lead=lead, supports=("township",), rule="operator"),
        )

    def _dispatch(self, s: CaseState) -> cmd.Command:
        return self._cmd(cmd.Dispatch, "operator:county")

    def _returned(self, s: CaseState) -> cmd.Command:
        lead = self.rng.choice(self.w.departments)
        if s.ruling is not None:
            return self._cmd(
                cmd.Rule,
                f"operator:{s.ruling}",
                by_region=s.ruling,
                lead=lead,
                reason="裁定由该部门牵头",
            )
        return self._cmd(
            cmd.Reroute,
            "operator:county",
            routing=Routing(lead=lead, supports=("township",), rule="reroute"),
            reason="原部门退单，改派",
        )

    def _check(self, s: CaseState) -> cmd.Command:
        return self._cmd(cmd.Check, "operator:county", note="开始核查")

    def _close(self, s: CaseState) -> cmd.Command:
        if self.rng.random() < 0.15:
            return self._cmd(cmd.Rework, "operator:county", reason="现场未恢复")
        return self._cmd(cmd.Close, "operator:county", note="核查属实，结案")

    def _evaluate(self, s: CaseState) -> cmd.Command:
        result = self.rng.choices(list(Satisfaction), weights=(6, 2, 2, 1))[0]
        return self._cmd(cmd.Evaluate, "callback:12345", result=result, note="回访")

    def _working(self, s: CaseState) -> cmd.Command | None:
        rng = self.rng
        roll = rng.random()
        if s.suspended_at is not None:
            return self._cmd(cmd.Resume, "operator:county", note="群众已补充材料")
        if roll < 0.03:
            return self._cmd(cmd.Suspend, "operator:county", reason="等待群众补充材料")
        if roll < 0.05 and s.level > Level.CITY:
            return self._cmd(cmd.Escalate, "operator:county", reason="涉及多个部门")
        if roll < 0.07:
            return self._cmd(cmd.Supervise, "operator:city", note="督办")
        if roll < 0.09:
            return self._link()
        open_ = [
            a
            for a in s.assignments
            if a.status not in (AssignmentStatus.HANDLED, AssignmentStatus.RETURNED)
        ]
        if not open_:
            return None
        a = rng.choice(open_)
        actor = f"dept:{a.department}"
        base = {"assignment_id": a.id, "department": a.department}
        if a.requested is not None:
            approved = rng.random() < 0.7
            return self._cmd(
                cmd.ApproveExtension, "operator:county", assignment_id=a.id, approved=approved
            )
        if a.status is AssignmentStatus.DISPATCHED:
            if rng.random() < 0.12:
                return self._cmd(
                    cmd.Return, actor, **base, reason_code="not_in_scope", note="不属于本部门职责"
                )
            return self._cmd(cmd.Claim, actor, **base)
        pick = rng.random()
        if a.role is Role.SUPPORT:
            if pick < 0.6:
                return self._cmd(cmd.SupportDone, actor, **base, note="配合完成")
            return self._cmd(cmd.Progress, actor, **base, note=rng.choice(NOTES))
        if pick < 0.2 and not a.on_site:
            return self._cmd(cmd.ReportOnSite, actor, **base, note="已到场")
        if pick < 0.45:
            controlled = rng.random() < 0.5
            return self._cmd(
                cmd.Progress, actor, **base, note=rng.choice(NOTES), controlled=controlled
            )
        if pick < 0.52:
            return self._cmd(
                cmd.RequestExtension, actor, **base, days=rng.randint(1, 3), reason="需协调多方"
            )
        return self._cmd(cmd.Handle, actor, **base, outcome="已处置完毕", note="办结")

    def _link(self) -> cmd.Command:
        assert self.state is not None
        n = len(self.state.event_ids)
        text = self.rng.choice(REPORTS)
        event = Event(
            event_id=f"grid:GR-{self.number:06d}-{n}",
            source=Source.GRID,
            source_id=f"GR-{self.number:06d}-{n}",
            occurred_at=self.now,
            reported_at=self.now,
            text=text,
            grid_code=self.state.region if len(self.state.region) == 15 else None,
        )
        classification = classify(event, self.w.rules)
        priority = prioritise(event, classification, self.w.rules)
        return self._cmd(cmd.LinkEvent, "system:triage", event=event, priority=priority)


_BY_STATUS: dict[CaseStatus, Callable[[_Driver, CaseState], cmd.Command | None]] = {
    CaseStatus.VERIFYING: _Driver._verify,
    CaseStatus.REPORTED: _Driver._verify,
    CaseStatus.REGISTERED: _Driver._dispatch,
    CaseStatus.RETURNED: _Driver._returned,
    CaseStatus.HANDLED: _Driver._check,
    CaseStatus.CHECKING: _Driver._close,
    CaseStatus.CLOSED: _Driver._evaluate,
}
