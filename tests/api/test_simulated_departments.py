"""Departments that act (``gridlink simulate --departments``) on the real API, worker and
broker: the actors take a reported case through the whole loop by HTTP alone, and the
store shows it closed and evaluated."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from simulation.actors import Actors, client_transport, desks_of
from simulation.behaviour import Pace
from store.models import Case, EvaluationRow
from tests.api.conftest import Api, eventually

pytestmark = pytest.mark.integration

OPERATOR = "op-dongchangfu"  # 371502
QUICK = {"step_seconds": (0.05, 0.2), "work_seconds": (0.1, 0.3), "late": 0, "slow": 0,
         "rework": 0, "progress_notes": (1, 1)}


def _report(api: Api, sample: str, grid_code: str) -> str:
    """Report the sample overflowing bins in ``grid_code``; the case id once dispatched."""
    report = json.loads(sample)
    report.pop("location", None)
    report.update(report_id=f"GR-SIM-{uuid.uuid4().hex[:12]}", grid_code=grid_code)
    answer = api.as_(OPERATOR).post("/intake/grid-reports", json=report)
    assert answer.status_code == 202, answer.text

    def opened() -> str | None:
        page = api.as_("admin").get("/cases", params={"region": grid_code}).json()
        return page["items"][0]["case_id"] if page["total"] == 1 else None

    return eventually(opened, what=f"a case in grid {grid_code}")


@contextmanager
def acting(client: TestClient, keys: dict[str, str], pace: Pace) -> Iterator[Actors]:
    actors = Actors(client_transport(client), desks=desks_of(keys), operator_key=keys[OPERATOR],
                    pace=pace, seed=11, poll_seconds=0.3, region="371502", concurrency=4,
                    grace_seconds=2.0)
    actors.check()
    stop = threading.Event()
    thread = threading.Thread(target=actors.run, args=(stop,), name="actors")
    thread.start()
    try:
        yield actors
    finally:
        stop.set()
        thread.join(30)
        assert not thread.is_alive()


def _evaluated(api: Api, case_id: str) -> dict:
    def probe() -> dict | None:
        detail = api.as_(OPERATOR).get(f"/cases/{case_id}").json()
        return detail if detail["status"] == "evaluated" else None

    return eventually(probe, timeout=120, what=f"case {case_id} evaluated")


def _stored(client: TestClient, case_id: str) -> tuple[Case, list[EvaluationRow]]:
    with client.app.state.store.sessions() as session:
        case = session.get(Case, case_id)
        evaluations = session.scalars(select(EvaluationRow).where(
            EvaluationRow.case_id == case_id)).all()
        return case, list(evaluations)


def _steps(detail: dict) -> list[tuple[str, str]]:
    return [(entry["type"], entry["actor"].split(":")[0]) for entry in detail["timeline"]]


def test_the_actors_take_a_case_from_dispatch_to_closed_and_evaluated(
        client: TestClient, keys: dict[str, str], api: Api, grid_report_sample: str):
    case_id = _report(api, grid_report_sample, "371502004002001")
    pace = Pace(**{**QUICK, "work_seconds": (2.0, 2.5)},  # the decision comes before 办结
                returns=0, extensions=1, deny_extension=0, satisfaction=(("satisfied", 1.0),))
    with acting(client, keys, pace) as actors:
        detail = _evaluated(api, case_id)
    steps = _steps(detail)
    for step in (("assignment_claimed", "department"), ("on_site_reported", "department"),
                 ("progress_reported", "department"), ("extension_requested", "department"),
                 ("extension_approved", "operator"), ("assignment_handled", "department"),
                 ("case_handled", "department"), ("check_started", "operator"),
                 ("case_closed", "operator"), ("case_evaluated", "operator")):
        assert step in steps, (step, steps)
    supports = [a for a in detail["assignments"] if a["role"] == "support"]
    assert all(a["status"] == "handled" for a in detail["assignments"])
    assert len([t for t, _ in steps if t == "assignment_handled"]) == 1 + len(supports)
    assert detail["evaluations"][0]["result"] == "satisfied"

    case, evaluations = _stored(client, case_id)
    assert case.status == "evaluated" and case.closed_at is not None
    assert case.satisfaction == "satisfied"
    assert [(e.result, e.actor) for e in evaluations] == [("satisfied", f"operator:{OPERATOR}")]
    assert actors.tally.counts["close"] == 1 and actors.tally.counts["evaluate:satisfied"] == 1
    assert actors.tally.failed == 0, list(actors.tally.reasons)


def test_returned_leads_are_rerouted_then_ruled_and_the_case_still_closes(
        client: TestClient, keys: dict[str, str], api: Api, grid_report_sample: str):
    case_id = _report(api, grid_report_sample, "371502001002001")
    pace = Pace(**QUICK, returns=1, extensions=0,
                satisfaction=(("basically_satisfied", 1.0),))
    with acting(client, keys, pace) as actors:
        detail = _evaluated(api, case_id)
    steps = _steps(detail)
    returns = [s for s in steps if s == ("assignment_returned", "department")]
    assert len(returns) >= 2  # the lead twice, and supports
    for step in (("assignment_cancelled", "operator"), ("ruling_requested", "department"),
                 ("ruling_made", "operator"), ("case_closed", "operator"),
                 ("case_evaluated", "operator")):
        assert step in steps, (step, steps)
    ruled = [a for a in detail["assignments"] if a["ruled"]]
    assert [a["department"] for a in ruled] == ["chengguan"]  # the routing table's lead
    assert ruled[0]["status"] == "handled"

    case, evaluations = _stored(client, case_id)
    assert case.status == "evaluated" and case.satisfaction == "basically_satisfied"
    assert [e.result for e in evaluations] == ["basically_satisfied"]
    assert actors.tally.counts["reroute"] == 1 and actors.tally.counts["rule"] == 1
