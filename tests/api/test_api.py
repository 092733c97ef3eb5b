"""The REST API on a real worker, broker and database: intake to evaluation over HTTP,
who may see and do what, and every error as problem details."""

from __future__ import annotations

import json
import uuid

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.errors import PROBLEM_JSON
from settings import Settings
from tests.api.conftest import Api, eventually

pytestmark = pytest.mark.integration

OPERATOR, OTHER_OPERATOR = "op-dongchangfu", "op-chiping"  # 371502 and 371503
LEAD = "chengguan"  # overflowing bins (05.03) are urban management's


def _report(sample: str, grid_code: str) -> dict:
    """The sample overflowing-bins report, as a fresh report in ``grid_code``."""
    report = json.loads(sample)
    report.pop("location", None)
    report.update(report_id=f"GR-API-{uuid.uuid4().hex[:12]}", grid_code=grid_code)
    return report


def reporter_of(grid_code: str) -> str:
    """The operator whose jurisdiction holds ``grid_code`` (one reports only there)."""
    return OPERATOR if grid_code.startswith("371502") else OTHER_OPERATOR


def _open_case(api: Api, sample: str, grid_code: str) -> dict:
    """Report through /intake and return the case once the projection shows it dispatched."""
    answer = api.as_(reporter_of(grid_code)).post("/intake/grid-reports",
                                                  json=_report(sample, grid_code))
    assert answer.status_code == 202, answer.text

    def dispatched() -> dict | None:
        page = api.as_("admin").get("/cases", params={"region": grid_code}).json()
        if page["total"] != 1:
            return None
        case = api.as_("admin").get(f"/cases/{page['items'][0]['case_id']}").json()
        return case if case["assignments"] else None

    return eventually(dispatched, what=f"a dispatched case in grid {grid_code}")


def _assignment(case: dict, department: str) -> str:
    return next(a["assignment_id"] for a in case["assignments"] if a["department"] == department)


def _problem(response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    body = response.json()
    assert {"type", "title", "status", "detail", "instance"} <= set(body)
    assert body["status"] == status
    return body


def test_a_report_walks_the_closed_loop_over_http(api: Api, grid_report_sample: str):
    case = _open_case(api, grid_report_sample, "371502004001002")
    case_id = case["case_id"]
    assert case["lead_department"] == LEAD and case["status"] == "dispatched"

    queue = api.as_(f"{LEAD}-desk").get(f"/departments/{LEAD}/queue").json()
    assert [item["case_id"] for item in queue["items"]] == [case_id]
    lead = _assignment(case, LEAD)
    base = f"/cases/{case_id}/assignments"

    claimed = api.as_(f"{LEAD}-desk").post(f"{base}/{lead}/claim")
    assert claimed.status_code == 200, claimed.text
    assert claimed.json()["status"] == "accepted" and claimed.json()["seqs"]

    again = _problem(api.as_(f"{LEAD}-desk").post(f"{base}/{lead}/claim"), 409)
    assert again["code"] == "transition_rejected"
    assert again["detail"] == f"assignment {lead} is already claimed by {LEAD}", again

    assert api.as_(f"{LEAD}-desk").post(f"{base}/{lead}/on-site",
                                        json={"note": "已到场"}).status_code == 200
    for support in case["assignments"]:
        if support["role"] == "support":
            desk, path = f"{support['department']}-desk", f"{base}/{support['assignment_id']}"
            assert api.as_(desk).post(f"{path}/claim").status_code == 200
            assert api.as_(desk).post(f"{path}/support-done",
                                      json={"note": "配合完成"}).status_code == 200
    handled = api.as_(f"{LEAD}-desk").post(f"{base}/{lead}/handle", json={"outcome": "垃圾已清运"})
    assert handled.status_code == 200 and handled.json()["status"] == "handled", handled.text

    for action, body in (("check", None), ("close", {"note": "核查属实"}),
                         ("evaluate", {"result": "satisfied", "note": "回访满意"})):
        answer = api.as_(OPERATOR).post(f"/cases/{case_id}/{action}", json=body)
        assert answer.status_code == 200, (action, answer.text)
    assert answer.json()["status"] == "evaluated"

    def evaluated() -> dict | None:
        detail = api.as_(OPERATOR).get(f"/cases/{case_id}").json()
        return detail if detail["status"] == "evaluated" else None

    detail = eventually(evaluated, what="the evaluated case in the projection")
    steps = [(entry["type"], entry["actor"]) for entry in detail["timeline"]]
    desk, operator = f"department:{LEAD}-desk", f"operator:{OPERATOR}"
    for step in (("assignment_claimed", desk), ("on_site_reported", desk),
                 ("assignment_handled", desk), ("check_started", operator),
                 ("case_closed", operator), ("case_evaluated", operator)):
        assert step in steps, (step, steps)
    assert steps[0][0] == "case_opened"
    assert [entry["seq"] for entry in detail["timeline"]] == list(range(1, len(steps) + 1))
    assert detail["evaluations"][0]["result"] == "satisfied"
    assert detail["evaluations"][0]["actor"] == operator


def test_users_see_and_act_only_within_their_scope(api: Api, grid_report_sample: str):
    case = _open_case(api, grid_report_sample, "371502001001001")
    case_id, lead = case["case_id"], _assignment(case, LEAD)
    claim = f"/cases/{case_id}/assignments/{lead}/claim"

    # another department: neither the case, nor the assignment, nor the queue
    outsider = api.as_("jiaoyu-desk")
    assert "department chengguan" in _problem(outsider.post(claim), 403)["detail"]
    _problem(outsider.get(f"/cases/{case_id}"), 403)
    _problem(outsider.get(f"/departments/{LEAD}/queue"), 403)
    assert outsider.get("/cases").json()["total"] == 0
    _problem(outsider.post(f"/cases/{case_id}/check"), 403)  # a command-center action

    # an operator of another county
    other = api.as_(OTHER_OPERATOR)
    assert "outside" in _problem(other.get(f"/cases/{case_id}"), 403)["detail"]
    _problem(other.post(f"/cases/{case_id}/supervise", json={"note": "督办"}), 403)
    assert case_id not in [c["case_id"] for c in other.get("/cases").json()["items"]]
    _problem(api.as_(OPERATOR).post(claim), 403)  # operators do not claim for departments

    # the ones in scope
    assert api.as_(OPERATOR).get(f"/cases/{case_id}").status_code == 200
    assert api.as_(f"{LEAD}-desk").get(f"/cases/{case_id}").status_code == 200
    supervised = api.as_(OPERATOR).post(f"/cases/{case_id}/supervise", json={"note": "督办"})
    assert supervised.status_code == 200, supervised.text
    assert api.as_(OPERATOR).get("/verification-queue").status_code == 200
    _problem(api.as_(f"{LEAD}-desk").get("/verification-queue"), 403)

    # the queue's filters: status, overdue, priority; paginated
    desk = api.as_(f"{LEAD}-desk")
    queue = f"/departments/{LEAD}/queue"
    mine = [i["case_id"] for i in desk.get(queue, params={"status": "dispatched"}).json()["items"]]
    assert case_id in mine
    assert case_id not in [i["case_id"] for i in desk.get(
        queue, params={"status": "handled"}).json()["items"]]
    assert case_id not in [i["case_id"] for i in desk.get(
        queue, params={"overdue": True}).json()["items"]]
    assert case_id not in [i["case_id"] for i in desk.get(
        queue, params={"priority": [1, 2]}).json()["items"]]
    page = desk.get(queue, params={"limit": 1}).json()
    assert len(page["items"]) == 1 and page["total"] >= 1 and page["limit"] == 1
    assert _problem(desk.get(queue, params={"status": "lost"}), 422)["field"] == "status.0"

    # unknown case and assignment
    assert _problem(api.as_(OPERATOR).get("/cases/C-none"), 404)["code"] == "not_found"
    _problem(api.as_(f"{LEAD}-desk").post(f"/cases/{case_id}/assignments/A99/claim"), 404)


def test_requests_without_a_known_key_are_refused(client: TestClient, api: Api):
    assert _problem(client.get("/cases"), 401)["code"] == "not_authenticated"
    assert "X-API-Key" in _problem(client.get("/cases/C-1"), 401)["detail"]
    _problem(client.get("/cases", headers={"X-API-Key": "not-a-key"}), 401)
    bearer = {"Authorization": f"Bearer {api.keys['admin']}"}
    assert client.get("/cases", headers=bearer).status_code == 200
    assert client.get("/health").status_code == 200


def test_a_bad_intake_body_is_a_problem_naming_the_field(api: Api, grid_report_sample: str):
    report = _report(grid_report_sample, "371502101001001")
    del report["description"]
    body = _problem(api.as_(OPERATOR).post("/intake/grid-reports", json=report), 422)
    assert body["code"] == "schema" and body["field"] == "description", body
    assert _problem(api.as_(OPERATOR).post("/intake/police-110", content=b"{not json"),
                    422)["code"] == "not_json"


def test_a_bad_request_field_is_a_validation_problem(api: Api):
    body = _problem(api.as_("admin").get("/cases", params={"limit": 0}), 422)
    assert body["code"] == "validation" and body["field"] == "limit", body
    assert _problem(api.as_("admin").get("/cases", params={"region": "37"}), 422)["field"] \
        == "region"


def test_without_a_users_file_every_request_but_health_is_refused(tmp_path):
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'gridlink.db'}", users_file=None)
    client = TestClient(create_app(settings))  # no lifespan: no broker needed to refuse
    assert "GRIDLINK_USERS_FILE" in _problem(client.get("/cases"), 401)["detail"]
    _problem(client.post("/intake/grid-reports", json={}), 401)
    assert client.get("/health").status_code == 200
    assert client.get("/metrics").status_code == 200


def test_no_answer_from_the_engine_is_a_504_problem(api: Api, api_settings: Settings,
                                                    grid_report_sample: str):
    """The same database, but commands go to topics no worker reads."""
    from api.commands import CommandGateway
    from tests.integration.kafka_client import KafkaTestClient

    case_id = _open_case(api, grid_report_sample, "371503001001001")["case_id"]
    silent = api_settings.model_copy(update={"topic_prefix": f"silent{uuid.uuid4().hex[:6]}."})
    kafka = KafkaTestClient(silent)
    kafka.create_topics()
    kafka.close()
    app = create_app(silent, gateway=CommandGateway(silent, timeout_seconds=1.0))
    with TestClient(app) as client:
        answer = client.post(f"/cases/{case_id}/check", headers={"X-API-Key": api.keys["admin"]})
    body = _problem(answer, 504)
    assert body["code"] == "engine_timeout" and case_id in body["detail"]
