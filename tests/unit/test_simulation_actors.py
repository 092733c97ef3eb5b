"""Departments and a command center that act (``gridlink simulate --departments``): the
pure decisions of :mod:`simulation.behaviour`, and :mod:`simulation.actors` driving a
fake API in memory (the real one: tests/api/test_simulated_departments.py)."""

from __future__ import annotations

import collections
import random
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from click.testing import CliRunner

from simulation.actors import (
    Actors,
    ActorsError,
    Tally,
    desks_of,
    load_keys,
    operator_of,
)
from simulation.behaviour import (
    LATE,
    PROMPT,
    RETURN_REASONS,
    SLOW,
    Action,
    CaseView,
    Pace,
    Window,
    Work,
    after_command_center_action,
    after_department_action,
    case_view,
    draw_satisfaction,
    extension_decision,
    next_command_center_action,
    next_department_action,
    parse_satisfaction,
    plan_work,
    when_to_act,
    when_to_return,
    work_from,
)
from simulation.cli import simulate

CST = timezone(timedelta(hours=8))
NOW = datetime(2026, 11, 26, 9, 0, tzinfo=CST)
MIN, HOUR, DAY = timedelta(minutes=1), timedelta(hours=1), timedelta(days=1)
P1_ACCEPT = Window(NOW, NOW + 5 * MIN, NOW + 4 * MIN)
P3_ACCEPT = Window(NOW, NOW + DAY, NOW + 0.8 * DAY)  # one working day, out of reach
DEPARTMENTS = ["chengguan", "sifa", "township", "zhongzhi", "zhujian"]


def p1_lead(**changes: Any) -> Work:
    work = Work(case_id="C-1", assignment_id="A1", department="chengguan", lead=True, priority=1,
                status="dispatched", accept=P1_ACCEPT, on_site=Window(NOW, NOW + 15 * MIN),
                resolve=Window(NOW, NOW + DAY), return_by=NOW + 30 * MIN)
    return replace(work, **changes)


def walk(work: Work, seed: int, pace: Pace, *, now: datetime = NOW) -> list[Action]:
    """Every step the desk takes on ``work``, each when the previous one was answered."""
    rng = random.Random(seed)
    work = plan_work(work, rng, pace, departments=DEPARTMENTS)
    steps: list[Action] = []
    while (action := next_department_action(work, rng, now, pace)) is not None:
        assert action.at >= now
        steps.append(action)
        work, now = after_department_action(work, action), action.at
        assert len(steps) < 20
    return steps


# -- when ---------------------------------------------------------------------------------


def test_a_window_tells_prompt_slow_and_late():
    assert P1_ACCEPT.timing(NOW + MIN) == PROMPT
    assert P1_ACCEPT.timing(NOW + 4 * MIN) == SLOW
    assert P1_ACCEPT.timing(NOW + 5 * MIN) == SLOW
    assert P1_ACCEPT.timing(NOW + 5 * MIN + timedelta(seconds=1)) == LATE
    assert Window(NOW, NOW + 10 * MIN).warn_at == NOW + 8 * MIN  # 80 % without a given mark


def test_steps_come_late_and_slow_in_the_shares_asked_for():
    rng, pace = random.Random(3), Pace(late=0.2, slow=0.3)
    timings = collections.Counter(
        P1_ACCEPT.timing(when_to_act(rng, NOW, P1_ACCEPT, pace)) for _ in range(4000))
    assert timings[LATE] / 4000 == pytest.approx(0.2, abs=0.03)
    assert timings[SLOW] / 4000 == pytest.approx(0.3, abs=0.03)


def test_an_on_time_step_waits_the_ordinary_delay_but_keeps_well_inside_the_budget():
    rng, pace = random.Random(4), Pace(late=0, slow=0, step_seconds=(5, 600))
    for _ in range(500):
        at = when_to_act(rng, NOW, P1_ACCEPT, pace)
        assert NOW + timedelta(seconds=5) <= at <= NOW + 3 * MIN  # 60 % of five minutes


def test_deadlines_beyond_the_longest_wait_are_met_at_the_ordinary_pace():
    """The engine runs on the wall clock: a day-long deadline is not waited out."""
    rng, pace = random.Random(5), Pace(late=0.5, slow=0.5, step_seconds=(5, 60))
    for _ in range(500):
        at = when_to_act(rng, NOW, P3_ACCEPT, pace)
        assert NOW + timedelta(seconds=5) <= at <= NOW + MIN
    longer = Pace(late=1, slow=0, max_wait_seconds=2 * 86_400)
    assert P3_ACCEPT.timing(when_to_act(rng, NOW, P3_ACCEPT, longer)) == LATE


def test_a_step_after_its_deadline_has_passed_comes_at_the_earliest():
    later = NOW + 10 * MIN
    at = when_to_act(random.Random(6), later, P1_ACCEPT, Pace(late=0, slow=0))
    assert later + timedelta(seconds=5) <= at <= later + MIN
    assert P1_ACCEPT.timing(at) == LATE


def test_a_return_comes_within_the_return_window_or_not_at_all():
    rng, pace = random.Random(7), Pace(step_seconds=(5, 3600))
    for _ in range(200):
        at = when_to_return(rng, NOW, NOW + 30 * MIN, pace)
        assert at is not None and NOW + timedelta(seconds=5) <= at < NOW + 30 * MIN
    assert when_to_return(rng, NOW, NOW + timedelta(seconds=3), pace) is None
    assert when_to_return(rng, NOW, NOW - MIN, pace) is None


# -- a department -----------------------------------------------------------------------


def test_a_p1_lead_claims_goes_on_site_reports_first_control_and_handles():
    steps = walk(p1_lead(), seed=1, pace=Pace(returns=0, extensions=0))
    verbs = [s.verb for s in steps]
    assert verbs[:3] == ["claim", "on-site", "progress"] and verbs[-1] == "handle"
    assert set(verbs[3:-1]) <= {"progress"}
    assert steps[2].body == {"note": "现场已初步控制", "controlled": True}
    assert not any(s.body["controlled"] for s in steps[3:-1])
    assert steps[0].window == P1_ACCEPT and steps[-1].body["outcome"]


def test_a_support_claims_and_reports_its_part():
    support = p1_lead(assignment_id="A2", department="township", lead=False, on_site=None)
    verbs = [s.verb for s in walk(support, seed=2, pace=Pace(returns=0, extensions=0,
                                                               progress_notes=(0, 0)))]
    assert verbs == ["claim", "support-done"]


def test_a_share_of_the_assignments_is_returned_with_a_reason_code_in_the_window():
    pace = Pace(returns=0.3)
    walks = [walk(p1_lead(), seed, pace) for seed in range(400)]
    returned = [steps for steps in walks if steps[0].verb == "return"]
    assert len(returned) / 400 == pytest.approx(0.3, abs=0.06)
    codes = {code for code, _ in RETURN_REASONS}
    for (step,) in returned:
        assert step.body["reason_code"] in codes and step.at < NOW + 30 * MIN
        assert step.body["suggested_department"] in (None, *DEPARTMENTS)
        assert step.body["suggested_department"] != "chengguan"
        if step.body["reason_code"] == "not_ours":
            assert step.body["suggested_department"]


def test_no_return_of_a_ruled_assignment_nor_after_the_window():
    pace = Pace(returns=1)
    assert walk(p1_lead(ruled=True), 1, pace)[0].verb == "claim"
    assert walk(p1_lead(), 1, pace, now=NOW + 40 * MIN)[0].verb == "claim"
    assert walk(p1_lead(status="accepted"), 1, pace)[0].verb == "on-site"


def test_an_extension_is_asked_before_handling_within_the_engine_limit():
    steps = walk(p1_lead(priority=3, resolve=Window(NOW, NOW + 7 * DAY)), 3,
                 Pace(returns=0, extensions=1))
    [extension] = [s for s in steps if s.verb == "extension"]
    assert [s.verb for s in steps[:3]] == ["claim", "on-site", "extension"]  # once sized up
    assert 1 <= extension.body["days"] <= 3 and extension.body["reason"]
    one_day = walk(p1_lead(), 3, Pace(returns=0, extensions=1))
    assert [s.body["days"] for s in one_day if s.verb == "extension"] == [1]  # ≤ the 24 h budget
    used = walk(p1_lead(extensions_used=1), 3, Pace(returns=0, extensions=1))
    assert "extension" not in [s.verb for s in used]


def test_the_same_seed_makes_the_same_choices():
    pace = Pace(returns=0.2, extensions=0.3)
    assert walk(p1_lead(), 42, pace) == walk(p1_lead(), 42, pace)
    assert any(walk(p1_lead(), 42, pace) != walk(p1_lead(), s, pace) for s in range(5))


def test_work_comes_from_a_queue_item_and_its_case():
    item = {"case_id": "C-9", "assignment_id": "A3", "role": "lead", "status": "dispatched",
            "priority": 1, "region_code": "371502004", "dispatched_at": NOW.isoformat(),
            "return_by": (NOW + 30 * MIN).isoformat(),
            "accept_due_at": (NOW + 5 * MIN).isoformat(),
            "resolve_due_at": (NOW + DAY).isoformat(), "on_site": False}
    detail = {
        "assignments": [{"assignment_id": "A3", "department": "sifa", "ruled": True,
                         "extensions": 1}],
        "deadlines": [
            {"assignment_id": "A3", "step": step, "started_at": NOW.isoformat(),
             "warn_at": (NOW + warn).isoformat(), "due_at": (NOW + due).isoformat(),
             "active": True}
            for step, warn, due in (("accept", 4 * MIN, 5 * MIN),
                                    ("on_site", 12 * MIN, 15 * MIN))
        ] + [{"assignment_id": "A1", "step": "resolve", "started_at": NOW.isoformat(),
              "warn_at": None, "due_at": NOW.isoformat(), "active": True}],
    }
    work = work_from(item, detail, department="sifa")
    assert (work.case_id, work.assignment_id, work.department, work.lead) == (
        "C-9", "A3", "sifa", True)
    assert work.accept == P1_ACCEPT and work.on_site == Window(NOW, NOW + 15 * MIN,
                                                               NOW + 12 * MIN)
    assert work.resolve == Window(NOW, NOW + DAY)  # from the queue item: none in the detail
    assert work.ruled and work.extensions_used == 1 and work.return_by == NOW + 30 * MIN
    bare = work_from(item, None, department="sifa")
    assert bare.accept == Window(NOW, NOW + 5 * MIN) and not bare.ruled


# -- the command center --------------------------------------------------------------------


def chain(case: CaseView, seed: int = 0, pace: Pace | None = None) -> list[Action]:
    rng, pace, now, steps = random.Random(seed), pace or Pace(rework=0), NOW, []
    while (action := next_command_center_action(case, rng, now, pace)) is not None:
        steps.append(action)
        case, now = after_command_center_action(case, action), action.at
        assert len(steps) < 10
    return steps


def test_a_handled_case_is_checked_closed_and_called_back():
    steps = chain(CaseView(case_id="C-1", status="handled"))
    assert [s.verb for s in steps] == ["check", "close", "evaluate"]
    assert steps[-1].body["result"] in ("satisfied", "basically_satisfied", "dissatisfied",
                                        "unreached")
    assert [s.verb for s in chain(CaseView(case_id="C-1", status="checking"))] == [
        "close", "evaluate"]


def test_rework_is_ordered_for_a_share_of_the_checked_cases_once():
    assert [s.verb for s in chain(CaseView(case_id="C-1", status="handled"),
                                  pace=Pace(rework=1))] == ["check", "rework"]
    again = CaseView(case_id="C-1", status="handled", reworked=True)
    assert [s.verb for s in chain(again, pace=Pace(rework=1))] == ["check", "close", "evaluate"]


def test_a_case_awaiting_verification_is_registered_and_dispatched():
    [register] = chain(CaseView(case_id="C-1", status="verifying", lead_department="sifa"))
    assert register.verb == "register" and register.body["dispatch"] is True
    assert "routing" not in register.body
    [fallback] = chain(CaseView(case_id="C-1", status="verifying"))
    assert fallback.body["routing"] == {"lead": "zhongzhi", "supports": []}


def test_a_returned_case_is_rerouted_to_the_suggested_department_or_the_fallback():
    returned = CaseView(case_id="C-1", status="returned", first_lead="chengguan",
                        supports=("township", "zhujian"), returned_by=("chengguan",),
                        suggested="zhujian")
    [reroute] = chain(returned)
    assert reroute.verb == "reroute" and reroute.body["lead"] == "zhujian"
    assert reroute.body["supports"] == ["township"] and reroute.body["reason"]
    [fallback] = chain(replace(returned, suggested=None))
    assert fallback.body["lead"] == "zhongzhi"
    [back] = chain(replace(returned, suggested="chengguan"))  # who returned it is not asked
    assert back.body["lead"] == "zhongzhi"


def test_a_disputed_lead_gets_a_ruling_by_the_level_awaited():
    disputed = CaseView(case_id="C-1", status="returned", first_lead="chengguan",
                        supports=("township",), returned_by=("chengguan", "zhujian"),
                        ruling_region="371502004")
    [rule] = chain(disputed)
    assert rule.verb == "rule"
    assert rule.body["lead"] == "chengguan" and rule.body["by_region"] == "371502004"
    assert rule.body["supports"] == ["township"]


def test_nothing_to_do_while_the_departments_work():
    for status in ("dispatched", "accepted", "in_progress", "rework", "evaluated"):
        assert chain(CaseView(case_id="C-1", status=status)) == []


def test_callback_verdicts_follow_the_mix():
    pace = Pace(satisfaction=parse_satisfaction("satisfied=6,basically_satisfied=3,"
                                                "dissatisfied=1"))
    rng = random.Random(8)
    verdicts = collections.Counter(draw_satisfaction(rng, pace) for _ in range(5000))
    assert set(verdicts) == {"satisfied", "basically_satisfied", "dissatisfied"}
    assert verdicts["satisfied"] / 5000 == pytest.approx(0.6, abs=0.03)
    assert verdicts["dissatisfied"] / 5000 == pytest.approx(0.1, abs=0.02)


def test_extension_requests_are_mostly_approved():
    rng, pace = random.Random(9), Pace(deny_extension=0.25)
    answers = [extension_decision(rng, NOW, pace, "A1") for _ in range(2000)]
    assert {a.verb for a in answers} == {"approve-extension"}
    assert {a.body["assignment_id"] for a in answers} == {"A1"}
    denied = sum(not a.body["approved"] for a in answers)
    assert denied / 2000 == pytest.approx(0.25, abs=0.03)


def test_a_case_view_comes_from_a_case_detail():
    detail = {
        "case_id": "C-1", "status": "returned", "updated_at": NOW.isoformat(),
        "lead_department": "zhujian", "ruling_region": None,
        "assignments": [
            {"assignment_id": "A10", "department": "sifa", "role": "support",
             "status": "dispatched"},
            {"assignment_id": "A2", "department": "township", "role": "support",
             "status": "cancelled"},
            {"assignment_id": "A1", "department": "chengguan", "role": "lead",
             "status": "returned"},
            {"assignment_id": "A3", "department": "zhujian", "role": "lead",
             "status": "returned"},
        ],
        "timeline": [
            {"type": "assignment_returned", "detail": {"role": "lead", "department": "chengguan",
                                                        "suggested_department": "zhujian"}},
            {"type": "assignment_returned", "detail": {"role": "support",
                                                        "department": "township"}},
            {"type": "assignment_returned", "detail": {"role": "lead", "department": "zhujian",
                                                        "suggested_department": None}},
        ],
    }
    view = case_view(detail)
    assert view.first_lead == "chengguan" and view.supports == ("sifa",)
    assert view.returned_by == ("chengguan", "zhujian") and view.suggested is None
    assert not view.reworked and view.updated_at == NOW.isoformat()


# -- settings ---------------------------------------------------------------------------------


@pytest.mark.parametrize("changes", [
    {"late": 1.5}, {"returns": -0.1}, {"late": 0.6, "slow": 0.6}, {"step_seconds": (10, 5)},
    {"progress_notes": (2, 1)}, {"satisfaction": (("happy", 1.0),)},
    {"satisfaction": (("satisfied", 0.0),)}, {"max_wait_seconds": -1},
])
def test_a_pace_refuses_what_cannot_be(changes: dict[str, Any]):
    with pytest.raises(ValueError):
        Pace(**changes)


def test_satisfaction_is_parsed_from_verdict_weight_pairs():
    assert parse_satisfaction("satisfied=0.9, unreached=0.1") == (("satisfied", 0.9),
                                                                  ("unreached", 0.1))
    for bad in ("satisfied", "satisfied=x", "glad=1"):
        with pytest.raises(ValueError):
            parse_satisfaction(bad)


def test_keys_come_from_the_demo_keys_file(tmp_path):
    path = tmp_path / "keys.txt"
    path.write_text("# demo keys\nadmin k0\nop-city k1\n\nchengguan-desk k2\nsifa-desk k3\n")
    keys = load_keys(path)
    assert desks_of(keys) == {"chengguan": "k2", "sifa": "k3"}
    assert operator_of(keys) == "op-city"
    assert operator_of({"admin": "k", "op-x": "k"}) == "admin"
    assert operator_of({"op-x": "k"}) == "op-x" and operator_of({"a-desk": "k"}) is None
    with pytest.raises(ActorsError, match="no key for user"):
        operator_of(keys, "nobody")
    path.write_text("admin\n")
    with pytest.raises(ActorsError, match="line 1"):
        load_keys(path)
    with pytest.raises(ActorsError, match="cannot read"):
        load_keys(tmp_path / "missing.txt")


def test_the_tally_counts_late_steps_and_verdicts():
    tally = Tally()
    tally.count(Action(NOW, "claim", None, P1_ACCEPT), NOW + 6 * MIN)
    tally.count(Action(NOW, "claim", None, P1_ACCEPT), NOW + 4 * MIN + 30 * timedelta(seconds=1))
    tally.count(Action(NOW, "claim", None, P1_ACCEPT), NOW + MIN)
    tally.count(Action(NOW, "evaluate", {"result": "satisfied"}), NOW)
    tally.count(Action(NOW, "approve-extension", {"approved": False}), NOW)
    line = tally.line()
    assert "claimed 3 (1 late, 1 yellow)" in line and "evaluated 1 (1 满意)" in line
    assert "(1 denied)" in line and "late 1, refused 0, failed 0" in line
    assert tally.late == 1


# -- the actors, on a fake API ------------------------------------------------------------------


class FakeApi:
    """One case, a lead and a support, behind the routes the actors use; statuses move as
    the case engine moves them, and a step out of turn is refused (409)."""

    def __init__(self) -> None:
        self.case = {"case_id": "C-1", "status": "dispatched", "region_code": "371502004",
                     "updated_at": self.now(), "lead_department": "chengguan"}
        self.listing: dict[str, Any] | None = None  # a lagging store: /cases shows this
        self.assignments = {
            "A1": {"department": "chengguan", "role": "lead", "status": "dispatched"},
            "A2": {"department": "township", "role": "support", "status": "dispatched"},
        }
        self.calls: list[tuple[str, str, str]] = []  # (user key, verb, target)
        self.lock = threading.Lock()

    @staticmethod
    def now() -> str:
        return datetime.now(UTC).isoformat()

    def __call__(self, method: str, path: str, *, key: str, params: Any = None,
                 json_body: Any = None) -> tuple[int, Any]:
        with self.lock:
            return self._call(method, path, key, params or {}, json_body)

    def _item(self, aid: str) -> dict[str, Any]:
        a = self.assignments[aid]
        return {"case_id": "C-1", "assignment_id": aid, "role": a["role"], "status": a["status"],
                "case_status": self.case["status"], "priority": 3, "region_code": "371502004",
                "dispatched_at": NOW.isoformat(), "return_by": (NOW + 2 * DAY).isoformat(),
                "accept_due_at": None, "resolve_due_at": None, "on_site": False}

    def _call(self, method: str, path: str, key: str, params: dict, body: Any):
        parts = path.strip("/").split("/")
        if path == "/health":
            return 200, {"status": "ok"}
        if method == "GET":
            if parts[0] == "departments":
                items = [self._item(aid) for aid, a in self.assignments.items()
                         if a["department"] == parts[1]
                         and a["status"] in params.get("status", (a["status"],))]
                return 200, {"items": items, "total": len(items)}
            if path == "/verification-queue":
                return 200, {"items": [], "total": 0}
            if path == "/cases":
                case = self.listing or self.case
                found = [case] if case["status"] in params.get("status", ()) else []
                return 200, {"items": found, "total": len(found)}
            return 200, {**self.case, "assignments": [], "deadlines": [], "timeline": []}
        verb = parts[-1]
        self.calls.append((key, verb, parts[3] if len(parts) > 3 else "C-1"))
        self.case["updated_at"] = self.now()
        if len(parts) > 3:  # a department's action
            a = self.assignments[parts[3]]
            moves = {"claim": ("dispatched", "accepted"), "progress": (None, "in_progress"),
                     "handle": (None, "handled"), "support-done": (None, "handled")}
            before, after = moves.get(verb, (None, a["status"]))
            if before is not None and a["status"] != before:
                return 409, {"detail": f"{parts[3]} is {a['status']}"}
            a["status"] = after
            if all(x["status"] == "handled" for x in self.assignments.values()):
                self.case["status"] = "handled"
            return 200, {"status": self.case["status"]}
        moves = {"check": ("handled", "checking"), "close": ("checking", "closed"),
                 "evaluate": ("closed", "evaluated")}
        before, after = moves[verb]
        if self.case["status"] != before:
            return 409, {"detail": f"case is {self.case['status']}"}
        self.case["status"] = after
        return 200, {"status": after}


def run_until(actors: Actors, done, timeout: float = 20.0) -> None:
    stop = threading.Event()
    thread = threading.Thread(target=actors.run, args=(stop,), kwargs={"progress_seconds": 0.1})
    thread.start()
    try:
        deadline = time.monotonic() + timeout
        while not done() and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()


FAST = Pace(step_seconds=(0, 0.01), work_seconds=(0, 0.01), late=0, slow=0, returns=0,
            extensions=0, rework=0, progress_notes=(1, 1),
            satisfaction=(("basically_satisfied", 1.0),))


def test_the_actors_drive_a_case_from_dispatch_to_evaluation():
    api = FakeApi()
    actors = Actors(api, desks={"chengguan": "cg", "township": "tw", "sifa": "sf"},
                    operator_key="op", pace=FAST, poll_seconds=0.05, grace_seconds=0.3)
    actors.check()
    run_until(actors, lambda: api.case["status"] == "evaluated")
    assert api.case["status"] == "evaluated", api.calls
    verbs = [(key, verb) for key, verb, _ in api.calls]
    assert verbs.count(("cg", "claim")) == 1 and verbs.count(("tw", "claim")) == 1
    assert ("cg", "handle") in verbs and ("tw", "support-done") in verbs
    assert [v for k, v in verbs if k == "op"] == ["check", "close", "evaluate"]
    counts = actors.tally.counts
    assert counts["claim"] == 2 and counts["evaluate:basically_satisfied"] == 1
    assert actors.tally.refused == 0 and actors.tally.failed == 0


def test_a_refused_step_ends_its_plan_and_the_queue_decides_what_is_left():
    api = FakeApi()
    api.assignments["A1"]["status"] = "accepted"  # claimed already, by someone else
    actors = Actors(api, desks={"chengguan": "cg", "township": "tw"}, operator_key=None,
                    pace=FAST, poll_seconds=0.05, grace_seconds=0.3)
    run_until(actors, lambda: api.case["status"] == "handled")
    assert api.case["status"] == "handled"
    assert ("cg", "claim", "A1") not in api.calls  # the queue said accepted: no claim
    assert not [c for c in api.calls if c[0] == "op"]


def test_the_operator_never_acts_twice_on_a_state_the_store_has_not_updated():
    api = FakeApi()
    for a in api.assignments.values():
        a["status"] = "handled"
    api.case["status"] = "handled"
    api.listing = dict(api.case)  # the store keeps showing the case handled, as it was
    actors = Actors(api, desks={}, operator_key="op", pace=FAST, poll_seconds=0.02)
    run_until(actors, lambda: api.case["status"] == "evaluated")
    time.sleep(0.2)
    run_until(actors, lambda: False, timeout=0.3)
    assert [verb for _, verb, _ in api.calls] == ["check", "close", "evaluate"]


def test_the_actors_act_only_within_their_region():
    api = FakeApi()
    actors = Actors(api, desks={"chengguan": "cg", "township": "tw"}, operator_key="op",
                    pace=FAST, poll_seconds=0.05, region="371503")
    run_until(actors, lambda: False, timeout=0.5)
    assert api.calls == []


def test_check_says_when_the_api_refuses_the_keys():
    def refusing(method: str, path: str, **_: Any) -> tuple[int, Any]:
        return (200, {}) if path == "/health" else (401, {"detail": "unknown API key"})

    with pytest.raises(ActorsError, match="unknown API key"):
        Actors(refusing, desks={"sifa": "k"}, operator_key="op").check()
    with pytest.raises(ActorsError, match="does not answer"):
        Actors(lambda *a, **k: (0, "connection refused"), desks={"sifa": "k"},
               operator_key=None).check()


def test_check_waits_for_an_api_that_is_still_starting():
    answers = iter([(0, "connection refused")] * 2 + [(200, {})] * 3)
    Actors(lambda *a, **k: next(answers), desks={"sifa": "k"}, operator_key="op").check(
        wait_seconds=5)
    assert next(answers, None) is None


# -- the command ------------------------------------------------------------------------------


def test_simulate_refuses_departments_without_keys_or_with_a_dry_run(tmp_path):
    runner = CliRunner()
    missing = runner.invoke(simulate, ["--departments", "--no-traffic", "--keys-file",
                                       str(tmp_path / "none.txt")])
    assert missing.exit_code != 0 and "cannot read the keys file" in missing.output
    dry = runner.invoke(simulate, ["--departments", "--dry-run"])
    assert dry.exit_code != 0 and "--dry-run" in dry.output
    alone = runner.invoke(simulate, ["--no-traffic"])
    assert alone.exit_code != 0 and "--no-traffic needs --departments" in alone.output
    bad = runner.invoke(simulate, ["--departments", "--step-delay", "9"])
    assert bad.exit_code != 0 and "LO,HI" in bad.output
