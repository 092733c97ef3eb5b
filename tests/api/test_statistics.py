"""GET /statistics on cases driven through a real worker: the counts and rates of
docs/domain.md §7 after closing and evaluating a case, and who may count what."""

from __future__ import annotations

from datetime import timedelta

import pytest

from clock import wall_clock
from store.statistics import percentile
from tests.api.conftest import Api, eventually
from tests.api.test_api import LEAD, OPERATOR, OTHER_OPERATOR, _assignment, _open_case, _problem

pytestmark = pytest.mark.integration

TOWNSHIP, GRID = "371502004", "371502004001002"  # the closed loop's
OTHER_TOWNSHIP, OTHER_GRID = "371502001", "371502001001001"  # left open


def _stats(api: Api, user: str, **params: str) -> dict:
    answer = api.as_(user).get("/statistics", params=params)
    assert answer.status_code == 200, answer.text
    return answer.json()


def _only(stats: dict) -> dict:
    assert len(stats["groups"]) == 1, stats
    return stats["groups"][0]


def _handle(api: Api, case: dict) -> None:
    """The lead claims and handles, every support reports: the case is handled."""
    base = f"/cases/{case['case_id']}/assignments"
    lead = _assignment(case, LEAD)
    assert api.as_(f"{LEAD}-desk").post(f"{base}/{lead}/claim").status_code == 200
    for support in case["assignments"]:
        if support["role"] == "support":
            desk, path = f"{support['department']}-desk", f"{base}/{support['assignment_id']}"
            assert api.as_(desk).post(f"{path}/claim").status_code == 200
            assert api.as_(desk).post(f"{path}/support-done", json={}).status_code == 200
    handled = api.as_(f"{LEAD}-desk").post(f"{base}/{lead}/handle", json={"outcome": "已清运"})
    assert handled.status_code == 200, handled.text


def test_closing_and_evaluating_a_case_shows_in_the_rates(api: Api, grid_report_sample: str):
    started = wall_clock()
    case = _open_case(api, grid_report_sample, GRID)
    case_id = case["case_id"]
    opened = _only(_stats(api, OPERATOR, region=TOWNSHIP))
    assert opened["due_closed"] == 0 and opened["closed"] == 0 and opened["on_time_rate"] is None
    assert opened["dispatched"] == 1 and opened["return_rate"] == 0

    _handle(api, case)
    for action in ("check", "close"):
        answer = api.as_(OPERATOR).post(f"/cases/{case_id}/{action}", json={})
        assert answer.status_code == 200, (action, answer.text)

    def closed() -> dict | None:
        group = _only(_stats(api, OPERATOR, region=TOWNSHIP))
        return group if group["closed"] == 1 else None

    group = eventually(closed, what="the closed case in the statistics")
    assert group["due"] == group["due_closed"] == 1 and group["handling_rate"] == 1.0
    assert group["closed_on_time"] == 1 and group["on_time_rate"] == 1.0
    assert group["due_overdue"] == 0 and group["overdue_rate"] == 0.0
    assert group["checked"] == 1 and group["rework_rate"] == 0.0
    assert group["supervision_rate"] == 0.0 and group["second_return_rate"] == 0.0
    assert group["disputes_finished"] == 0 and group["mediation_success_rate"] is None
    assert group["callbacks_reached"] == 0 and group["satisfaction_rate"] is None
    # every assignment was claimed, each after it was dispatched and within this test
    assert group["time_to_accept"]["count"] == len(case["assignments"])
    assert 0 <= group["time_to_accept"]["p50_seconds"] <= (wall_clock() - started).total_seconds()
    assert group["time_to_resolve"]["count"] == len(case["assignments"])  # lead and supports

    evaluated = api.as_(OPERATOR).post(f"/cases/{case_id}/evaluate",
                                       json={"result": "basically_satisfied"})
    assert evaluated.status_code == 200, evaluated.text

    def satisfied() -> dict | None:
        group = _only(_stats(api, OPERATOR, region=TOWNSHIP))
        return group if group["callbacks_reached"] == 1 else None

    group = eventually(satisfied, what="the callback in the statistics")
    assert group["callbacks_satisfied"] == 1 and group["satisfaction_rate"] == 1.0

    # grouped: by lead department, by the level below the region, within a period
    by_department = _stats(api, OPERATOR, region=TOWNSHIP, group_by="department")
    lead = next(g for g in by_department["groups"] if g["group"] == LEAD)
    assert lead["name"] == "城管/综合执法" and lead["closed"] == 1
    support_times = [g for g in by_department["groups"] if g["group"] != LEAD]
    assert all(g["closed"] == 0 and g["time_to_accept"]["count"] >= 1 for g in support_times)
    community = _only(_stats(api, OPERATOR, region=TOWNSHIP, group_by="region"))
    assert community["group"] == GRID[:12] and community["closed"] == 1
    grids = _only(_stats(api, OPERATOR, region=GRID[:12], group_by="region"))
    assert grids["group"] == GRID
    now = wall_clock()
    hour = timedelta(hours=1)
    within = _only(_stats(api, OPERATOR, region=TOWNSHIP, **{
        "from": (now - hour).isoformat(), "to": (now + hour).isoformat()}))
    assert within["closed"] == 1 and within["callbacks_reached"] == 1
    naive = (now - hour).replace(tzinfo=None).isoformat()  # Beijing time, not UTC
    before = _only(_stats(api, OPERATOR, region=TOWNSHIP, to=naive))
    assert before["dispatched"] == before["closed"] == before["callbacks_reached"] == 0
    assert before["handling_rate"] is None and before["time_to_accept"]["count"] == 0


def test_each_role_counts_only_its_scope(api: Api, grid_report_sample: str):
    _open_case(api, grid_report_sample, OTHER_GRID)

    def counted() -> dict | None:
        stats = _stats(api, OPERATOR, group_by="region")
        return stats if any(g["group"] == OTHER_TOWNSHIP for g in stats["groups"]) else None

    mine = eventually(counted, what="the operator's townships")
    assert mine["region"] == "371502"
    assert all(g["group"].startswith("371502") for g in mine["groups"])

    # an operator of another county: neither the cases nor the region
    other = _stats(api, OTHER_OPERATOR, group_by="region")
    assert other["region"] == "371503"
    assert all(g["group"].startswith("371503") for g in other["groups"])
    assert "outside" in _problem(api.as_(OTHER_OPERATOR).get(
        "/statistics", params={"region": OTHER_TOWNSHIP}), 403)["detail"]

    # a department: only the cases it leads, only its own statistics
    desk = _stats(api, f"{LEAD}-desk", group_by="department")
    assert desk["department"] == LEAD
    assert [g["group"] for g in desk["groups"]] == [LEAD]
    assert _only(desk)["dispatched"] >= 1
    assert _stats(api, "jiaoyu-desk", group_by="department")["groups"] == []
    assert _only(_stats(api, "jiaoyu-desk"))["dispatched"] == 0
    _problem(api.as_("jiaoyu-desk").get("/statistics", params={"department": LEAD}), 403)

    # an administrator: everything, any region
    everything = _only(_stats(api, "admin"))
    assert everything["dispatched"] >= _only(_stats(api, OPERATOR))["dispatched"] >= 1


def test_bad_statistics_parameters_are_validation_problems(api: Api):
    assert _problem(api.as_("admin").get("/statistics", params={"group_by": "grid"}),
                    422)["field"] == "group_by"
    assert _problem(api.as_("admin").get("/statistics", params={"region": "37"}),
                    422)["field"] == "region"
    assert _problem(api.as_("admin").get("/statistics", params={
        "from": "2026-12-01T00:00:00+08:00", "to": "2026-11-01T00:00:00+08:00"}),
        422)["field"] == "to"


def test_percentiles_are_nearest_rank():
    assert percentile([], 0.5) is None
    assert percentile([7.0], 0.9) == 7.0
    samples = [float(n) for n in range(1, 11)]
    assert (percentile(samples, 0.5), percentile(samples, 0.9)) == (5.0, 9.0)
