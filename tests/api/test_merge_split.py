"""Merge (合并) and split (拆分) over HTTP, on a real worker, broker and database: the
engine's answer for both cases, the projection of both, and every refusal as a problem."""

from __future__ import annotations

import json
import uuid

import pytest

from api.errors import PROBLEM_JSON
from tests.api.conftest import Api, eventually
from tests.api.test_api import reporter_of

pytestmark = pytest.mark.integration

OPERATOR, OTHER_OPERATOR = "op-dongchangfu", "op-chiping"  # 371502 and 371503
LEAD = "chengguan"


def _report(sample: str, grid_code: str) -> dict:
    report = json.loads(sample)
    report.pop("location", None)
    report.update(report_id=f"GR-MS-{uuid.uuid4().hex[:12]}", grid_code=grid_code)
    return report


def _detail(api: Api, case_id: str) -> dict:
    answer = api.as_("admin").get(f"/cases/{case_id}")
    assert answer.status_code == 200, answer.text
    return answer.json()


def _open_case(api: Api, sample: str, grid_code: str, reports: int = 1) -> dict:
    """``reports`` reports of the same incident in ``grid_code``: one dispatched case."""
    for _ in range(reports):
        answer = api.as_(reporter_of(grid_code)).post("/intake/grid-reports",
                                                      json=_report(sample, grid_code))
        assert answer.status_code == 202, answer.text

    def dispatched() -> dict | None:
        page = api.as_("admin").get("/cases", params={"region": grid_code}).json()
        if page["total"] != 1:
            return None
        case = _detail(api, page["items"][0]["case_id"])
        ready = case["assignments"] and len(case["event_ids"]) == reports
        return case if ready else None

    return eventually(dispatched, what=f"a dispatched case of {reports} reports in {grid_code}")


def _problem(response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    body = response.json()
    assert body["status"] == status and body["detail"]
    return body


def test_merge_a_case_into_another(api: Api, grid_report_sample: str):
    target = _open_case(api, grid_report_sample, "371502004001002")
    source = _open_case(api, grid_report_sample, "371502001001001")
    a, b = target["case_id"], source["case_id"]
    op = api.as_(OPERATOR)

    merged = op.post(f"/cases/{b}/merge", json={"into": a, "reason": "同一事件"})
    assert merged.status_code == 200, merged.text
    body = merged.json()
    assert (body["case_id"], body["status"]) == (b, "merged") and body["seqs"]
    assert (body["into"]["case_id"], body["into"]["status"]) == (a, "dispatched")

    def projected() -> tuple[dict, dict] | None:
        old, new = _detail(api, b), _detail(api, a)
        done = old["status"] == "merged" and "case_absorbed" in {e["type"] for e in
                                                                  new["timeline"]}
        return (old, new) if done else None

    old, new = eventually(projected, what="the merge in the projection")
    assert old["merged_into"] == a and old["next_due_at"] is None
    assert {x["status"] for x in old["assignments"]} == {"cancelled"}
    assert not any(d["active"] for d in old["deadlines"])
    assert old["timeline"][-1]["type"] == "case_merged"
    absorbed = next(e for e in new["timeline"] if e["type"] == "case_absorbed")
    assert absorbed["detail"]["source"] == b and absorbed["actor"] == f"operator:{OPERATOR}"
    assert new["event_ids"] == target["event_ids"] + source["event_ids"]
    assert new["absorbed"] == [b] and new["event_count"] == 2

    # the department's queue no longer holds the merged case
    queue = api.as_(f"{LEAD}-desk").get(f"/departments/{LEAD}/queue").json()
    assert b not in [item["case_id"] for item in queue["items"]]
    assert a in [item["case_id"] for item in queue["items"]]

    # refusals: merged already, into itself, into no case, a case that is merged
    again = _problem(op.post(f"/cases/{b}/merge", json={"into": a, "reason": "r"}), 409)
    assert again["code"] == "transition_rejected" and "merged" in again["detail"]
    assert _problem(op.post(f"/cases/{a}/merge", json={"into": a, "reason": "r"}),
                    422)["field"] == "into"
    assert _problem(op.post(f"/cases/{a}/merge", json={"into": "C-none", "reason": "r"}),
                    422)["field"] == "into"
    into_merged = _problem(op.post(f"/cases/{a}/merge", json={"into": b, "reason": "r"}), 409)
    assert into_merged["detail"].startswith(f"case {b} was merged into case {a}"), into_merged
    assert _detail(api, a)["status"] == "dispatched"  # refused by the target: untouched
    _problem(op.post(f"/cases/{b}/merge", json={"reason": "r"}), 422)  # no target


def test_merge_needs_both_cases_in_the_operators_jurisdiction(api: Api,
                                                               grid_report_sample: str):
    mine = _open_case(api, grid_report_sample, "371502101001001")["case_id"]
    theirs = _open_case(api, grid_report_sample, "371503001001001")["case_id"]
    refused = _problem(api.as_(OPERATOR).post(f"/cases/{mine}/merge",
                                              json={"into": theirs, "reason": "r"}), 403)
    assert theirs in refused["detail"]
    _problem(api.as_(OTHER_OPERATOR).post(f"/cases/{mine}/merge",
                                          json={"into": theirs, "reason": "r"}), 403)
    _problem(api.as_(f"{LEAD}-desk").post(f"/cases/{mine}/merge",
                                          json={"into": theirs, "reason": "r"}), 403)
    assert _detail(api, mine)["status"] == "dispatched"


def test_split_events_off_into_a_new_case(api: Api, grid_report_sample: str):
    case = _open_case(api, grid_report_sample, "371503002001001", reports=2)
    case_id, (first, second) = case["case_id"], case["event_ids"]
    op = api.as_(OTHER_OPERATOR)  # of 371503

    # refusals first: every event, an event the case does not hold, no event, no reason
    every = _problem(op.post(f"/cases/{case_id}/split",
                             json={"event_ids": [first, second], "reason": "r"}), 409)
    assert "at least one must stay" in every["detail"]
    unknown = _problem(op.post(f"/cases/{case_id}/split",
                               json={"event_ids": ["grid:nope"], "reason": "r"}), 422)
    assert unknown["field"] == "event_ids" and "grid:nope" in unknown["detail"]
    _problem(op.post(f"/cases/{case_id}/split", json={"event_ids": [], "reason": "r"}), 422)
    _problem(op.post(f"/cases/{case_id}/split", json={"event_ids": [second]}), 422)
    bad = _problem(op.post(f"/cases/{case_id}/split",
                           json={"event_ids": [second], "reason": "r", "category": "99.99"}), 422)
    assert bad["field"] == "category"

    answer = op.post(f"/cases/{case_id}/split",
                     json={"event_ids": [second], "reason": "另一处", "category": "05.04"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    new_id = body["new_case"]["case_id"]
    assert body["case_id"] == case_id and body["status"] == "dispatched"
    assert new_id == f"{case_id}-S1" and body["new_case"]["status"] == "dispatched"

    def projected() -> dict | None:
        answer = api.as_("admin").get(f"/cases/{new_id}")
        return answer.json() if answer.status_code == 200 and answer.json()["assignments"] \
            else None

    new = eventually(projected, what="the new case in the projection")
    assert new["split_from"] == case_id and new["event_ids"] == [second]
    assert new["category"] == "05.04" and new["lead_department"] == LEAD
    assert new["timeline"][0]["type"] == "case_opened"
    assert new["timeline"][0]["actor"] == f"operator:{OTHER_OPERATOR}"
    old = eventually(lambda: (d := _detail(api, case_id))["event_ids"] == [first] and d,
                     what="the split in the old case")
    assert old["timeline"][-1]["type"] == "events_split"
    assert old["timeline"][-1]["detail"]["new_case_id"] == new_id
    assert old["event_count"] == 1 and old["category"] == "05.03"

    # merged back, the case holds both again
    back = op.post(f"/cases/{new_id}/merge", json={"into": case_id, "reason": "误拆"})
    assert back.status_code == 200, back.text
    assert eventually(lambda: _detail(api, case_id)["event_ids"] == [first, second],
                      what="the events merged back")
